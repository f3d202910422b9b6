"""What running LRE as XLA custom calls costs over the C library's own step, and how far both
are from the memory-bandwidth floor.

An lre.jax step builds an optimizer from the small (k-sized) state and steps the state's n-sized
arrays in place (the handlers are pure; no n-sized state is copied, encoded or checksummed).
This prints, for each n, the time per step of lre.core (the handle API, state kept in memory),
of a jitted, donating lre.jax step on the same gradients, and of the streaming floor: two
streaming reads of the n×m f32 window (numpy `window.sum()` twice on an array of the window's
shape — a host floor: a GGT step reads its window twice), and the ratios. The three are timed
alternately in the same run, so they see the same load. Same spec, f32, one thread.

    python bindings/python/benchmarks/step_overhead.py [--sizes 100000,1000000] [--spec SPEC]
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import lre.core
import lre.jax


def median_ms(run, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--spec", default="basis=ggt(history_size=100)")
    parser.add_argument("--warmup", type=int, default=110, help="steps before timing (fill the window)")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"spec: {args.spec}")
    print("| n | lre.core ms/step | lre.jax ms/step | floor ms | jax/core | core/floor | jax/floor |")
    print("|---|---|---|---|---|---|---|")
    for n in [int(s) for s in args.sizes.split(",")]:
        grads = [rng.standard_normal(n).astype(np.float32) for _ in range(8)]
        x = np.zeros(n, np.float32)
        core = lre.core.Optimizer(args.spec, n)
        opt = lre.jax.lre(args.spec)
        params = jnp.zeros(n, jnp.float32)
        state = opt.init(params)
        step = jax.jit(lambda g, s, p: opt.update(g, s, p), donate_argnums=(1,))
        jgrads = [jnp.asarray(g) for g in grads]
        for t in range(args.warmup):
            core.step(x, grads[t % 8])
            _, state = step(jgrads[t % 8], state, params)
        jax.block_until_ready(state)
        counter = iter(range(10**9))

        def core_step():
            core.step(x, grads[next(counter) % 8])

        def jax_step():
            nonlocal state
            _, state = step(jgrads[next(counter) % 8], state, params)
            jax.block_until_ready(state)

        window = np.asarray(state.buffers["basis/window"])
        floor_window = np.random.default_rng(1).standard_normal(window.shape).astype(np.float32)

        def floor():
            floor_window.sum()
            floor_window.sum()

        times = {"core": [], "jax": [], "floor": []}
        for _ in range(args.repeats):
            for name, run in (("core", core_step), ("jax", jax_step), ("floor", floor)):
                times[name].append(median_ms(run, 1))
        core_ms, jax_ms, floor_ms = (float(np.median(times[k])) for k in ("core", "jax", "floor"))
        print(f"| {n} | {core_ms:.2f} | {jax_ms:.2f} | {floor_ms:.2f} | {jax_ms / core_ms:.2f} | "
              f"{core_ms / floor_ms:.2f} | {jax_ms / floor_ms:.2f} |", flush=True)


if __name__ == "__main__":
    main()
