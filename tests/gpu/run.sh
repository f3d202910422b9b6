#!/usr/bin/env bash
# The GPU check, for a machine with an NVIDIA GPU and no Rust toolchain (the device tool's
# H100/H200): runs what tests/gpu/prepare.sh built on the CPU machine (tests/gpu/bin); it never
# calls cargo. One command, a few minutes.
#
# What it checks today (src/backend/cuda/mod.rs: the device is found, the n-sized operations
# are not implemented on it yet): the driver and cuBLAS 13 load; the committed PTX loads on
# the device (the driver JIT-compiles it) and every kernel matches numpy in f64 on awkward
# sizes (tests/gpu/kernels.py, with CuPy, the launch shapes the backend is to use); device 0
# is found and described,
# and creating an optimizer on it is refused with LRE_ERR_UNSUPPORTED rather than a panic or
# LRE_ERR_DEVICE; the conformance suite runs (CPU backend). The CUDA backend's conformance run,
# the CPU-vs-GPU trajectories, checkpoints across devices, the JAX GPU step and the n = 1e7
# speed comparison against two cuBLAS SGEMVs belong here when the backend exists.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=tests/gpu/bin
test -d "$bin" || { echo "run.sh: no $bin; run tests/gpu/prepare.sh on the build machine" >&2; exit 1; }

echo "== machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || echo "nvidia-smi not available"
ldconfig -p | grep -E "libcuda\.so|libcublas\.so" || echo "no libcuda/libcublas in the linker cache"

status=0
echo "== every kernel of the committed PTX on the device, against numpy (CuPy)"
python3 tests/gpu/kernels.py src/backend/cuda/kernels.ptx || status=1

while read -r name; do
    echo "== test binary $name"
    "$bin/$name" --test-threads=4 || status=1
done < <(grep -v '^#' tests/gpu/binaries.txt | grep .)

echo "== device=cuda:0 as the library reports it"
LRE_DEVICE_TEST_CHILD=1 "$bin/device" --exact cuda_device_is_refused_clearly_and_silently \
    --nocapture 2>/dev/null | grep -E "STATUS|MESSAGE" || status=1
exit $status
