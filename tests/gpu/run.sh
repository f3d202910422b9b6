#!/usr/bin/env bash
# The GPU check, for a machine with an NVIDIA GPU and no Rust toolchain (the device tool's
# H100/H200): runs what tests/gpu/prepare.sh built on the CPU machine (tests/gpu/bin); it never
# calls cargo. One command, a few minutes.
#
# What it checks: the driver and cuBLAS 13 load; the committed PTX loads on the device (the
# driver JIT-compiles it) and every kernel matches numpy in f64 on awkward sizes
# (tests/gpu/kernels.py, with CuPy); then, from the binaries in tests/gpu/binaries.txt, with
# LRE_REQUIRE_GPU=1 so that a missing GPU fails: device=cuda:0 creates a GPU optimizer; the
# backend conformance suite on the CUDA backend (f32, f64); CPU vs GPU trajectories of the
# default, ggt+[adam], eigen+[adam] and full_hutchinson_hessian in f32 and f64 (tolerance in
# tests/gpu_trajectories.rs); checkpoints written on the GPU resumed on the CPU and the
# reverse; the speed line (default step at n = 1e7, m = 100, f32, against two cuBLAS SGEMVs);
# examples/cuda/train.cu (the C++ binding with cudaMalloc'd vectors and the caller's stream);
# the JAX GPU step (lre.jax's CUDA handlers under jit) against lre.core (tests/gpu/jax_step.py,
# which needs jax with its CUDA plugin, jax[cuda13], and optax on this machine's python3; where
# they are missing it prints NOT RUN and the check fails).
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=tests/gpu/bin
test -d "$bin" || { echo "run.sh: no $bin; run tests/gpu/prepare.sh on the build machine" >&2; exit 1; }

echo "== machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || echo "nvidia-smi not available"
ldconfig -p | grep -E "libcuda\.so|libcublas\.so" || echo "no libcuda/libcublas in the linker cache"

# cudarc finds cuBLAS by name: where it is not installed system-wide, use the pip wheel's.
if ! ldconfig -p | grep -q "libcublas\.so\.13"; then
    wheel=$(python3 -c '
import glob, os, site
bases = site.getsitepackages() + [site.getusersitepackages()]
found = [p for b in bases for p in glob.glob(os.path.join(b, "nvidia", "**", "libcublas.so.13"), recursive=True)]
print(os.path.dirname(found[0]) if found else "")')
    if [ -n "$wheel" ]; then
        echo "cuBLAS 13 from $wheel"
        export LD_LIBRARY_PATH="$wheel:${LD_LIBRARY_PATH:-}"
    fi
fi

status=0
echo "== every kernel of the committed PTX on the device, against numpy (CuPy)"
python3 tests/gpu/kernels.py src/backend/cuda/kernels.ptx || status=1

export LRE_REQUIRE_GPU=1
while read -r name; do
    echo "== test binary $name"
    # One test at a time: they share the GPU, and the speed line must run alone.
    timeout 240 "$bin/$name" --test-threads=1 --nocapture || status=1
done < <(grep -v '^#' tests/gpu/binaries.txt | grep .)

echo "== examples/cuda/train.cu: the C API with cudaMalloc'd vectors"
timeout 120 "$bin/cuda-train" || status=1

echo "== the JAX GPU step (lre.jax's CUDA handlers) against lre.core"
LRE_LIBRARY="$PWD/$bin/liblre.so.1" PYTHONPATH="$PWD/bindings/python/src${PYTHONPATH:+:$PYTHONPATH}" \
    timeout 300 python3 tests/gpu/jax_step.py || status=1

echo "== device=cuda:0 as the library reports it"
LRE_DEVICE_TEST_CHILD=1 "$bin/device" --exact cuda_device_is_refused_clearly_and_silently \
    --nocapture 2>/dev/null | grep -E "STATUS|MESSAGE|CREATED" || status=1
exit $status
