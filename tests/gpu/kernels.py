"""Runs every kernel of the committed PTX (src/backend/cuda/kernels.ptx) on the GPU with CuPy
and compares it with numpy in f64, before the Rust CUDA backend exists: the launch shapes here
are the ones that backend is to use. Usage: python3 kernels.py PATH/kernels.ptx
Prints one line per check; exits 1 if any fails. tests/gpu_scripts.rs checks the numpy
reference of the Gaussian stream against the Rust one."""

import math
import sys

import numpy as np

cp = None  # CuPy, imported by main(): the numpy reference is importable without a GPU

GAMMA = 0x9E3779B97F4A7C15
MASK = (1 << 64) - 1
THREADS = 256
BLOCKS = 120  # row blocks of the reductions (a multiple of the SM count is not required)
failures = []


def check(what, ok, detail=""):
    print(("OK   " if ok else "FAIL ") + what + ("" if ok else f": {detail}"))
    if not ok:
        failures.append(what)


def mix(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def stream_base(key, stream):
    return mix(key ^ mix((stream + GAMMA) & MASK))


def normal_column(base, n):
    """The stream of src/backend/normal.rs with numpy's log/sin/cos (agrees to ~1e-15)."""
    pairs = (n + 1) // 2
    i = np.arange(pairs, dtype=np.uint64)
    with np.errstate(over="ignore"):
        h = [np.uint64(base) + (2 * i + np.uint64(k)) * np.uint64(GAMMA) for k in (1, 2)]
        h = [z ^ (z >> np.uint64(30)) for z in h]
        h = [z * np.uint64(0xBF58476D1CE4E5B9) for z in h]
        h = [z ^ (z >> np.uint64(27)) for z in h]
        h = [z * np.uint64(0x94D049BB133111EB) for z in h]
        h = [z ^ (z >> np.uint64(31)) for z in h]
    u = [((z >> np.uint64(12)) | np.uint64(0x3FF0000000000000)).view(np.float64) - 1.0 for z in h]
    radius = np.sqrt(-2.0 * np.log(1.0 - u[0]))
    out = np.empty(2 * pairs)
    out[0::2] = radius * np.cos(2 * math.pi * u[1])
    out[1::2] = radius * np.sin(2 * math.pi * u[1])
    return out[:n]


def finish(module, partials, count, blocks):
    out = cp.zeros(count, dtype=cp.float64)
    module.get_function("finish_sums")(
        ((count + THREADS - 1) // THREADS,), (THREADS,),
        (partials, np.int32(blocks), np.int32(count), out))
    return cp.asnumpy(out)


def run(module, dtype, suffix, n):
    rng = np.random.default_rng(n)
    tol = 1e-13
    rounding = 2.0 ** -24 if dtype == np.float32 else 2.0 ** -53
    k = 11
    host = rng.uniform(-2, 2, size=(k, n)).astype(dtype)  # column j is host[j]
    m = cp.asarray(host)
    f = lambda name: module.get_function(f"{name}_{suffix}")
    tag = f"{suffix} n={n}"

    # load_checked
    x = host[3].copy()
    if n > 3:
        x[n // 2] = np.nan
        x[n - 1] = np.inf
    src, dst = cp.asarray(x), cp.zeros(n, dtype=dtype)
    partials = cp.zeros(BLOCKS, dtype=cp.float64)
    bad = cp.full(1, MASK, dtype=cp.uint64)
    f("load_checked")((BLOCKS,), (THREADS,), (src, dst, np.int64(n), partials, bad))
    first = int(cp.asnumpy(bad)[0])
    check(f"load_checked copies {tag}", np.array_equal(cp.asnumpy(dst), x, equal_nan=True))
    check(f"load_checked first non-finite {tag}",
          first == (n // 2 if n > 3 else MASK), f"{first}")
    if n <= 3:
        sq = finish(module, partials, 1, BLOCKS)[0]
        exact = float(np.sum(x.astype(np.float64) ** 2))
        check(f"load_checked sum of squares {tag}", abs(sq - exact) <= tol * exact, f"{sq} {exact}")

    # column_dots over a wrapped window
    cols = np.array([8, 9, 10, 0, 1, 2], dtype=np.int32)
    xv = host[5]
    partials = cp.zeros(len(cols) * BLOCKS, dtype=cp.float64)
    f("column_dots")((BLOCKS, (len(cols) + 7) // 8), (THREADS,),
                     (m, np.int64(n), cp.asarray(cols), np.int32(len(cols)), cp.asarray(xv), partials))
    got = finish(module, partials, len(cols), BLOCKS)
    h64 = host.astype(np.float64)
    exact = h64[cols] @ h64[5]
    scale = np.abs(h64[cols]) @ np.abs(h64[5])
    check(f"column_dots {tag}", np.all(np.abs(got - exact) <= tol * scale), f"{got - exact}")

    # cross, symmetric and not
    for left, right, symmetric in [(cols, cols, 1), (cols[:5], np.array([3, 7, 1], np.int32), 0)]:
        tiles = ((len(left) + 3) // 4) * ((len(right) + 3) // 4)
        partials = cp.zeros(len(left) * len(right) * BLOCKS, dtype=cp.float64)
        f("cross")((BLOCKS, tiles), (THREADS,),
                   (m, np.int64(n), cp.asarray(left), np.int32(len(left)), cp.asarray(right),
                    np.int32(len(right)), np.int32(symmetric), partials))
        got = finish(module, partials, len(left) * len(right), BLOCKS).reshape(len(left), len(right))
        exact = h64[left] @ h64[right].T
        scale = np.abs(h64[left]) @ np.abs(h64[right]).T
        keep = np.triu(np.ones_like(got, dtype=bool)) if symmetric else np.ones_like(got, dtype=bool)
        check(f"cross symmetric={symmetric} {tag}",
              np.all(np.abs(got - exact)[keep] <= tol * scale[keep]), f"{(got - exact)[keep]}")

    # combine in place over a wrapped window, with an added vector
    inputs = np.array([9, 10, 0, 1, 2], dtype=np.int32)
    outputs = np.array([0, 9, 4], dtype=np.int32)
    coef = rng.uniform(-1, 1, size=(len(outputs) + 1, len(inputs)))
    y0 = rng.uniform(-1, 1, size=n).astype(dtype)
    y = cp.asarray(y0)
    f("combine")(((n + 31) // 32,), (32, 8),
                 (m, np.int64(n), cp.asarray(inputs), np.int32(len(inputs)), cp.asarray(outputs),
                  np.int32(len(outputs)), cp.asarray(coef.ravel()), y),
                 shared_mem=len(inputs) * 32 * 8)
    after = cp.asnumpy(m).astype(np.float64)
    for j, out in enumerate(outputs):
        exact = coef[j] @ h64[inputs]
        check(f"combine output {out} {tag}",
              np.all(np.abs(after[out] - exact) <= rounding * np.abs(exact) + tol * (np.abs(coef[j]) @ np.abs(h64[inputs]))))
    exact = y0.astype(np.float64) + coef[-1] @ h64[inputs]
    check(f"combine added vector {tag}",
          np.all(np.abs(cp.asnumpy(y) - exact) <= rounding * np.abs(exact) + 1e-12 * (1 + np.abs(exact))))
    untouched = [c for c in range(k) if c not in outputs]
    check(f"combine leaves other columns {tag}", np.array_equal(after[untouched], h64[untouched]))

    # gaussian: the CPU's stream
    gcols = np.array([10, 0, 3], dtype=np.int32)
    bases = np.array([stream_base(0xFEED, j) for j in range(len(gcols))], dtype=np.uint64)
    f("gaussian")(((n // 2 + THREADS) // THREADS, len(gcols)), (THREADS,),
                  (m, np.int64(n), cp.asarray(gcols), cp.asarray(bases)))
    after = cp.asnumpy(m).astype(np.float64)
    for j, c in enumerate(gcols):
        exact = normal_column(int(bases[j]), n)
        err = np.max(np.abs(after[c] - exact) - rounding * np.abs(exact))
        check(f"gaussian stream {j} {tag}", err <= 1e-13, f"{err}")

    # clamp, axpy, scale, add_f64, to_f64
    before = cp.asnumpy(m)
    f("clamp_columns")(((n + THREADS - 1) // THREADS, 1), (THREADS,),
                       (m, np.int64(n), cp.asarray(np.array([3], np.int32)), np.float64(0.75)))
    check(f"clamp {tag}", np.array_equal(cp.asnumpy(m)[3], np.clip(before[3], -0.75, 0.75)))
    grid = ((n + THREADS - 1) // THREADS,)
    a, b = cp.asarray(host[1]), cp.asarray(host[2])
    f("axpy")(grid, (THREADS,), (np.float64(-0.375), a, b, np.int64(n)))
    exact = -0.375 * h64[1] + h64[2]
    slack = rounding * np.abs(exact) + 1e-16 * (0.375 * np.abs(h64[1]) + np.abs(h64[2]))
    check(f"axpy {tag}", np.all(np.abs(cp.asnumpy(b) - exact) <= slack))
    f("scale")(grid, (THREADS,), (np.float64(0.3), a, np.int64(n)))
    check(f"scale {tag}", np.array_equal(cp.asnumpy(a), (0.3 * h64[1]).astype(dtype)))
    w = rng.uniform(-1, 1, size=n)
    c = cp.asarray(host[4])
    f("add_f64")(grid, (THREADS,), (c, cp.asarray(w), np.int64(n)))
    check(f"add_f64 {tag}", np.array_equal(cp.asnumpy(c), (h64[4] + w).astype(dtype)))
    out = cp.zeros(n, dtype=cp.float64)
    f("to_f64")(grid, (THREADS,), (cp.asarray(host[6]), out, np.int64(n)))
    check(f"to_f64 {tag}", np.array_equal(cp.asnumpy(out), h64[6]))


def main():
    global cp
    import cupy

    cp = cupy
    module = cp.RawModule(path=sys.argv[1])
    print("device:", cp.cuda.runtime.getDeviceProperties(0)["name"].decode())
    for n in [1, 2, 7, 1025, 100_003]:
        run(module, np.float32, "f32", n)
        run(module, np.float64, "f64", n)
    print(f"{len(failures)} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
