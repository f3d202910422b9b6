#!/usr/bin/env bash
# The GPU check, for a machine with an NVIDIA GPU (the device tool's H100/H200): one command,
# a few minutes. Today the CUDA backend only finds the device (src/backend/cuda.rs); this script
# checks that on real hardware: the driver and cuBLAS 13 load, device 0 is found and described,
# and creating an optimizer on it is refused with LRE_ERR_UNSUPPORTED (not implemented yet)
# rather than a panic or LRE_ERR_DEVICE. When the backend's n-sized operations land, its
# CUDA-vs-CPU trajectory tests and the n = 1e7 speed benchmark belong here.
set -euo pipefail
cd "$(dirname "$0")/../.."

echo "== machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || echo "nvidia-smi not available"
ldconfig -p | grep -E "libcuda\.so|libcublas\.so" || echo "no libcuda/libcublas in the linker cache"

echo "== build (feature cuda is on by default)"
cargo build --release --tests 2>&1 | tail -n 2

echo "== device test"
cargo test --release --test device -- --nocapture 2>&1 | tail -n 8
LRE_DEVICE_TEST_CHILD=1 cargo test --release --test device -- --exact \
    cuda_device_is_refused_clearly_and_silently --nocapture 2>/dev/null | grep -E "STATUS|MESSAGE"
