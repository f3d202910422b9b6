#!/usr/bin/env bash
# Builds, on this machine, everything tests/gpu/run.sh runs on the GPU machine (which has no Rust
# toolchain): the release test binaries named in tests/gpu/binaries.txt, stripped, into tests/gpu/bin (git-ignored, carried to the GPU machine with the working
# tree). The folder must stay under the 64 MiB the device tool carries; this script fails if not.
set -euo pipefail
cd "$(dirname "$0")/../.."

out=tests/gpu/bin
mapfile -t names < <(grep -v '^#' tests/gpu/binaries.txt | grep .)
args=()
for name in "${names[@]}"; do args+=(--test "$name"); done

rm -rf "$out"
mkdir -p "$out"
# cargo prints one JSON line per artifact; keep the executables of the named tests.
cargo test --release --no-run "${args[@]}" --message-format=json \
    | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["target"]["name"], m["executable"])
' | while read -r name exe; do
    cp "$exe" "$out/$name"
    strip "$out/$name"
done
for name in "${names[@]}"; do
    test -x "$out/$name" || { echo "prepare.sh: no binary for test $name" >&2; exit 1; }
done

# examples/cuda/train.cu against the release library, with nvcc 13.0 from the wheels that the
# test setup installs (tests/cuda_kernels.rs, tests/cuda_example.rs create target/tmp/cuda-env).
nvcc=$(ls target/tmp/cuda-env/lib/python3*/site-packages/nvidia/cu13/bin/nvcc 2>/dev/null | head -1)
test -n "$nvcc" || { echo "prepare.sh: no nvcc in target/tmp/cuda-env; run cargo test --test cuda_example first" >&2; exit 1; }
cp target/release/deps/liblre.so "$out/liblre.so.1"
strip "$out/liblre.so.1"
ln -sf liblre.so.1 "$out/liblre.so"
PATH="$(dirname "$nvcc"):$PATH" "$nvcc" -std=c++17 -Iinclude -Ibindings/cpp examples/cuda/train.cu \
    -o "$out/cuda-train" -L"$out" -L"$(dirname "$nvcc")/../lib" -llre '-Xlinker=-rpath,$ORIGIN'
strip "$out/cuda-train"

limit=$((64 * 1024 * 1024))
size=$(du -sb "$out" | cut -f1)
ls -l "$out"
echo "tests/gpu/bin: $size bytes (limit $limit)"
if [ "$size" -ge "$limit" ]; then
    echo "prepare.sh: tests/gpu/bin is over the 64 MiB the device tool carries" >&2
    exit 1
fi
