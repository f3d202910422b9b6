"""Plots the convergence benchmark's loss curves: for every task in the CSV that
`cargo bench --bench convergence` writes, docs/img/convergence-<task>.png with each
configuration's best run against steps and against wall time. The y axis (log) is the excess
loss f − f* where the task's minimum f* is known (the CSV's `excess` column), else the loss;
the time axis is log too, as it spans the cheap and the Hessian-vector-product configurations.

    pip install matplotlib
    python3 benches/plot_convergence.py [target/bench/convergence.csv] [docs/img]
"""

import csv
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

ROOT = Path(__file__).resolve().parents[1]


class Curve:
    """One configuration's best run on one task."""

    def __init__(self) -> None:
        self.lr = None
        self.steps, self.values, self.seconds = [], [], []


def read_curves(path: Path) -> dict:
    """{task: (uses_excess, {config: Curve})} from the benchmark's CSV."""
    tasks = defaultdict(lambda: defaultdict(Curve))
    excess_known = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            task = row["task"]
            excess_known.setdefault(task, row["excess"] != "")
            curve = tasks[task][row["config"]]
            curve.lr = float(row["lr"])
            curve.steps.append(int(row["step"]))
            curve.values.append(float(row["excess"] if excess_known[task] else row["loss"]))
            curve.seconds.append(float(row["seconds"]))
    return {task: (excess_known[task], curves) for task, curves in tasks.items()}


def plot_task(task: str, uses_excess: bool, curves: dict, out: Path) -> None:
    fig, (by_step, by_time) = plt.subplots(1, 2, figsize=(11, 4.2))
    for config, curve in curves.items():
        # L-BFGS-B rows have no lr (NaN in the CSV); their steps are gradient evaluations.
        label = config if curve.lr != curve.lr else f"{config} (lr={curve.lr:g})"
        (line,) = by_step.plot(curve.steps, curve.values, label=label, linewidth=1.2)
        timed = [(t, v) for t, v in zip(curve.seconds, curve.values) if t > 0]
        by_time.plot(*zip(*timed), color=line.get_color(), linewidth=1.2)
    by_time.set_xscale("log")
    for ax, xlabel in ((by_step, "step (L-BFGS-B: gradient evaluation)"), (by_time, "wall time (s)")):
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("loss − f*" if uses_excess else "loss")
        ax.grid(True, which="major", alpha=0.3)
    by_step.legend(fontsize=8)
    fig.suptitle(f"convergence: {task} (best lr of the grid per configuration, f32)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    print(f"wrote {out}")


def main() -> None:
    csv_path = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "target" / "bench" / "convergence.csv"
    out_dir = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "docs" / "img"
    out_dir.mkdir(parents=True, exist_ok=True)
    for task, (uses_excess, curves) in read_curves(csv_path).items():
        plot_task(task, uses_excess, curves, out_dir / f"convergence-{task}.png")


if __name__ == "__main__":
    main()
