"""The JAX GPU step against lre.core, for tests/gpu/run.sh: lre.jax steps a diagonal quadratic
on the GPU (its CUDA handlers, under jit, the state donated and kept on the device) while
lre.core steps the same problem on the CPU; after every step the parameters agree within the
tolerance of the CPU-vs-GPU trajectories (tests/gpu_trajectories.rs: max |x_gpu - x_cpu| <=
TOL * max |x0|, TOL = 1e-3 in f32, 1e-9 in f64). Covers a one-call step and a split step
(probes, then the HVPs JAX computes).

Usage: python3 jax_step.py (LRE_LIBRARY names the library; bindings/python/src on PYTHONPATH).
Prints one line per check; exits 1 if any fails, 2 if jax has no CUDA platform here."""

import os
import sys

import numpy as np

N = 10_000
STEPS = 8
LR = 0.125
SPECS = [
    "",  # the default
    "basis=ggt(history_size=8); chain=[adam]",
    "curvature=full_hutchinson_hessian; chain=[adam, l_inv]",
]
TOL = {np.float32: 1e-3, np.float64: 1e-9}
DTYPES = {np.float32: "f32", np.float64: "f64"}
# The platform to step on: "cuda" on the GPU machine; "cpu" checks this script without a GPU.
PLATFORM = os.environ.get("LRE_JAX_PLATFORM", "cuda")


def check(spec, dtype):
    import jax
    import jax.numpy as jnp
    import optax

    import lre.core
    import lre.jax

    scale = np.linspace(1.0, 4.0, N).astype(dtype)
    x0 = np.random.default_rng(0).normal(size=N).astype(dtype)
    gpu = jax.devices(PLATFORM)[0]

    def loss(p):
        return 0.5 * jnp.sum(jnp.asarray(scale) * p ** 2)

    opt = lre.jax.lre(spec, learning_rate=LR)
    params = jax.device_put(jnp.asarray(x0), gpu)
    state = jax.device_put(opt.init(params), gpu)
    split = "hessian" in spec

    def step(params, state):
        if split:
            grads, hvp = lre.jax.grad_and_hvp(loss, params)
            updates, state = opt.update(grads, state, params, hvp_fn=hvp)
        else:
            updates, state = opt.update(jax.grad(loss)(params), state, params)
        return optax.apply_updates(params, updates), state

    step = jax.jit(step, donate_argnums=(1,))
    name = np.dtype(dtype).name
    core_spec = "; ".join(s for s in (spec, f"lr={LR}", f"dtype={DTYPES[dtype]}") if s)
    core = lre.core.Optimizer(core_spec, N)
    x = x0.copy()
    limit = TOL[dtype] * float(np.max(np.abs(x0)))
    worst = 0.0
    for _ in range(STEPS):
        params, state = step(params, state)
        grads = scale * x
        if split:
            count = core.begin(grads)
            probes = core.probes()
            core.finish(x, (probes * scale).astype(dtype).reshape(count, -1))
        else:
            core.step(x, grads)
        worst = max(worst, float(np.max(np.abs(np.asarray(params) - x))))
    on_gpu = all(gpu in leaf.devices() for leaf in jax.tree_util.tree_leaves(state))
    ok = worst <= limit and on_gpu and int(lre.jax.skipped_steps(state)) == 0
    print(f"{'PASS' if ok else 'FAIL'} jax on {gpu.device_kind} vs lre.core, {name}, "
          f"spec {spec or '(default)'!r}: max |x_gpu - x_cpu| = {worst:.3e} (limit {limit:.3e}), "
          f"state on {gpu.platform}: {on_gpu}")
    return ok


def main():
    import jax

    try:
        jax.devices(PLATFORM)
    except RuntimeError as e:
        print(f"NOT RUN: jax has no {PLATFORM} platform here ({e}); install jax[cuda13]")
        return 2
    import lre.jax

    platforms = lre.jax._register()
    print(f"lre.jax registered its handlers for {platforms}")
    if PLATFORM == "cuda" and "CUDA" not in platforms:
        print("FAIL: the library does not export the CUDA handlers")
        return 1
    ok = True
    for dtype in (np.float32, np.float64):
        jax.config.update("jax_enable_x64", dtype == np.float64)
        for spec in SPECS:
            try:
                ok &= check(spec, dtype)
            except Exception as e:  # report every configuration, then fail
                print(f"FAIL {np.dtype(dtype).name} spec {spec!r}: {type(e).__name__}: {e}")
                ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
