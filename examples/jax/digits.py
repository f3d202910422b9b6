"""Trains a 64-32-10 tanh MLP on scikit-learn's digits with LRE (lre.jax) and with optax.adam.

Full batch, fixed seed, the whole step under one `jax.jit` with params and optimizer state
donated. Every optimizer gets its learning rate from the same grid, chosen by final training
loss, and the script prints one table row per optimizer (README.md next to this file).

    LRE_LIBRARY=target/release/liblre.so PYTHONPATH=bindings/python/src \\
        python examples/jax/digits.py [--steps N] [--quick] [--plot PATH] [--spec SPEC ...]

Exits non-zero if a loss becomes NaN/inf or an optimizer fails to lower the loss.
"""

import argparse
import math
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import lre.jax

# One grid for every optimizer. It reaches 3 because LRE's default chain ends in
# clip_norm_by_ema(normalize=true), which rescales the update to a global norm of about lr (after
# a warm-up from 0.1·lr), while Adam moves every coordinate by about lr: here (n=2410) Adam's
# first steps have norm ~50·lr. Adam's best lr is inside the grid, LRE's would be past a grid
# that stopped at 0.1.
GRID = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0, 3.0)
QUICK_LR = 0.1  # --quick: one learning rate for everyone, no search
DEFAULT_SPECS = ("", "basis=ggt(history_size=50)")
HIDDEN = 32


def load_data():
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)  # pixels are 0..16
    x_tr, x_te, y_tr, y_te = train_test_split(x, digits.target, test_size=0.25,
                                              random_state=0, stratify=digits.target)
    return tuple(jnp.asarray(a) for a in (x_tr, y_tr, x_te, y_te))


def init_params(key, n_in=64, n_out=10):
    k1, k2 = jax.random.split(key)
    # LeCun-normal weights keep tanh out of saturation at the start.
    return {"w1": jax.random.normal(k1, (n_in, HIDDEN)) / math.sqrt(n_in),
            "b1": jnp.zeros(HIDDEN),
            "w2": jax.random.normal(k2, (HIDDEN, n_out)) / math.sqrt(HIDDEN),
            "b2": jnp.zeros(n_out)}


def logits(params, x):
    return jnp.tanh(x @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"]


def loss_fn(params, x, y):
    return optax.softmax_cross_entropy_with_integer_labels(logits(params, x), y).mean()


def make_step(opt):
    def step(params, state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss
    # Donating params and state lets XLA update both in place (the LRE custom call aliases its
    # state operand to its state result).
    return jax.jit(step, donate_argnums=(0, 1))


def train(opt, params0, data, steps):
    """Returns the loss after t updates for t = 0..steps, the final params and ms/step."""
    x_tr, y_tr = data[0], data[1]
    step = make_step(opt)
    fresh = lambda: jax.tree.map(jnp.copy, params0)  # params0 would be consumed by donation
    # Warm-up: compile and run once on throwaway copies, so the timing below is steady state.
    p, s = fresh(), opt.init(params0)
    jax.block_until_ready(step(p, s, x_tr, y_tr))
    params, state = fresh(), opt.init(params0)
    losses = []
    start = time.perf_counter()
    for _ in range(steps):
        params, state, loss = step(params, state, x_tr, y_tr)
        losses.append(loss)  # stays on the device: no host sync inside the loop
    jax.block_until_ready((params, state))
    ms = (time.perf_counter() - start) * 1e3 / steps
    curve = np.append(np.asarray(jnp.stack(losses)), float(loss_fn(params, x_tr, y_tr)))
    return curve, params, ms


def accuracy(params, x, y):
    return float(jnp.mean(jnp.argmax(logits(params, x), axis=-1) == y))


def steps_to(curve, target):
    hit = np.nonzero(curve <= target)[0]
    return str(hit[0]) if hit.size else "—"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--quick", action="store_true",
                    help=f"20 steps, lr={QUICK_LR} for every optimizer (CI smoke test)")
    ap.add_argument("--plot", metavar="PATH", help="loss curves PNG (default without --quick: "
                    "digits.png next to this script)")
    ap.add_argument("--spec", action="append", help="LRE spec to compare (repeatable; default: "
                    + ", ".join(repr(s) for s in DEFAULT_SPECS) + ")")
    args = ap.parse_args()
    steps = 20 if args.quick else args.steps
    grid = (QUICK_LR,) if args.quick else GRID
    plot = args.plot or (None if args.quick else str(pathlib.Path(__file__).with_name("digits.png")))
    specs = args.spec if args.spec is not None else DEFAULT_SPECS

    data = load_data()
    params0 = init_params(jax.random.PRNGKey(0))
    n = sum(a.size for a in jax.tree.leaves(params0))
    print(f"digits: {data[0].shape[0]} train / {data[2].shape[0]} test, MLP 64-{HIDDEN}-10 tanh, "
          f"n={n}, full batch, {steps} steps, lr grid {list(grid)}, jax {jax.__version__} "
          f"on {jax.devices()[0].platform}")

    optimizers = [("adam", optax.adam)]
    optimizers += [(f"lre({s!r})", lambda lr, s=s: lre.jax.lre(s, learning_rate=lr)) for s in specs]
    failures, best = [], {}
    for name, make in optimizers:
        runs = {}
        for lr in grid:
            curve, params, ms = train(make(lr), params0, data, steps)
            runs[lr] = (curve, params, ms)
            if not np.all(np.isfinite(curve)):
                failures.append(f"{name} lr={lr:g}: loss became {curve[~np.isfinite(curve)][0]} "
                                f"at step {np.argmin(np.isfinite(curve))}")
        finals = "  ".join(f"{lr:g}: {runs[lr][0][-1]:.3e}" for lr in grid)
        print(f"  {name:32} final train loss by lr  {finals}")
        # NaN sorts as +inf, so a diverged run is never chosen; ties go to the smaller lr.
        lr = min(grid, key=lambda lr: np.nan_to_num(runs[lr][0][-1], nan=np.inf))
        best[name] = (lr, *runs[lr])
        if not runs[lr][0][-1] < runs[lr][0][0]:
            failures.append(f"{name}: the loss did not decrease ({runs[lr][0][0]:.3e} -> "
                            f"{runs[lr][0][-1]:.3e})")

    target = best["adam"][1][-1]
    print(f"\n| optimizer | lr | final train loss | test accuracy | steps to Adam's final loss "
          f"| ms/step |\n|---|---|---|---|---|---|")
    for name, (lr, curve, params, ms) in best.items():
        print(f"| {name} | {lr:g} | {curve[-1]:.3e} | {accuracy(params, *data[2:]):.4f} "
              f"| {steps_to(curve, target)} | {ms:.3f} |")

    if plot:
        try:
            import matplotlib
            matplotlib.use("Agg")  # no display needed
            import matplotlib.pyplot as plt
        except ImportError:
            print(f"\nmatplotlib is not installed: skipping {plot}")
        else:
            fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
            for name, (lr, curve, _, _) in best.items():
                # A loss of exactly 0 (float32 saturates once every margin is > ~17) has no
                # place on a log axis: the line ends there instead.
                ax.plot(np.where(curve > 0, curve, np.nan), label=f"{name}, lr={lr:g}")
            ax.set(yscale="log", xlabel="step", ylabel="train loss (full batch)",
                   title=f"digits, MLP 64-{HIDDEN}-10, best lr of {len(grid)} each")
            ax.legend()
            fig.tight_layout()
            fig.savefig(plot)
            print(f"\nwrote {plot}")

    if failures:
        print("\nFAILED:\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
