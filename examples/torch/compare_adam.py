"""Trains a small tanh MLP with lre.torch and with torch.optim.Adam on one regression task.

The task: 512 inputs in R^8 and the outputs of a fixed random "teacher" MLP (8-16-1, tanh); the
student is an 8-32-1 tanh MLP (321 parameters), trained full batch from one initialization with
the usual loop (`zero_grad`, `backward`, `step`). Every optimizer gets its learning rate from
the same grid, chosen by final loss, and the script prints one table row per optimizer, with the
first step at which it reached Adam's final loss.

    LRE_LIBRARY=target/release/liblre.so PYTHONPATH=bindings/python/src \\
        python examples/torch/compare_adam.py [--steps N] [--quick]

Exits non-zero if a loss becomes NaN/inf or an optimizer fails to lower the loss.
"""

import argparse
import math
import sys

import torch

import lre.torch

# One grid for every optimizer. It reaches 3 because LRE's default chain ends in
# clip_norm_by_ema(normalize=true), which rescales the update to a global norm of about lr, while
# Adam moves every coordinate by about lr (examples/jax/digits.py has the same grid).
GRID = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0, 3.0)
QUICK_LR = 1e-2  # --quick: one learning rate for everyone, no search


def make_task():
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(512, 8, generator=generator)
    teacher = [torch.randn(8, 16, generator=generator) / math.sqrt(8),
               torch.randn(16, 1, generator=generator) / math.sqrt(16)]
    targets = torch.tanh(inputs @ teacher[0]) @ teacher[1]
    return inputs, targets


def make_model():
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))


OPTIMIZERS = {
    "adam": lambda params, lr: torch.optim.Adam(params, lr=lr),
    "lre()": lambda params, lr: lre.torch.LRE(params, "", lr=lr),
    "lre(basis=ggt(history_size=50))":
        lambda params, lr: lre.torch.LRE(params, "basis=ggt(history_size=50)", lr=lr),
}


def train(make_optimizer, lr, steps, task):
    """The loss after each step."""
    inputs, targets = task
    model = make_model()
    optimizer = make_optimizer(model.parameters(), lr)
    criterion = torch.nn.MSELoss()
    losses = []
    for _ in range(steps):
        loss = criterion(model(inputs), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--quick", action="store_true", help="20 steps, lr 1e-2 only")
    args = parser.parse_args()
    steps = 20 if args.quick else args.steps
    grid = (QUICK_LR,) if args.quick else GRID
    task = make_task()
    initial = torch.nn.MSELoss()(make_model()(task[0]), task[1]).item()
    print(f"initial loss {initial:.4g}; {steps} full-batch steps; lr grid {list(grid)}\n")
    print("| optimizer | best lr | loss @100 | final loss | steps to Adam's final loss |")
    print("| --- | --- | --- | --- | --- |")
    failed = False
    adam_final = None  # OPTIMIZERS lists Adam first
    for name, make_optimizer in OPTIMIZERS.items():
        runs = {lr: train(make_optimizer, lr, steps, task) for lr in grid}
        finite = {lr: losses for lr, losses in runs.items() if math.isfinite(losses[-1])}
        if not finite:
            print(f"| {name} | - | - | diverged | - |")
            failed = True
            continue
        lr = min(finite, key=lambda lr: finite[lr][-1])
        losses = finite[lr]
        adam_final = losses[-1] if adam_final is None else adam_final
        reached = next((t + 1 for t, loss in enumerate(losses) if loss <= adam_final), None)
        at_100 = f"{losses[99]:.3g}" if len(losses) >= 100 else "-"
        print(f"| {name} | {lr:g} | {at_100} | {losses[-1]:.3g} | {reached or 'never'} |")
        failed |= not losses[-1] < initial
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
