"""scipy's L-BFGS-B on a convergence-benchmark task, for the reference rows.

The task lives in the Rust benchmark: this script writes each point it wants evaluated to stdout
(one line of floats) and reads the loss and gradient back from stdin (one line: f, then ∇f). The
benchmark sends the starting point first.

    python3 benches/data/lbfgs.py MEMORY MAX_EVALUATIONS
"""

import sys

import numpy as np
from scipy.optimize import minimize


def read_floats() -> np.ndarray:
    return np.array(sys.stdin.readline().split(), dtype=np.float64)


def main() -> None:
    memory, budget = int(sys.argv[1]), int(sys.argv[2])
    x0 = read_floats()

    def loss_grad(x):
        print(" ".join(repr(float(v)) for v in x), flush=True)
        values = read_floats()
        return values[0], values[1:]

    # No tolerance stops it early: the budget of gradient evaluations is the only limit.
    minimize(
        loss_grad,
        x0,
        jac=True,
        method="L-BFGS-B",
        options={"maxcor": memory, "maxfun": budget, "maxiter": budget, "ftol": 0.0, "gtol": 0.0},
    )
    print("done", flush=True)


if __name__ == "__main__":
    main()
