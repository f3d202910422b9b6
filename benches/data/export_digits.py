"""Writes scikit-learn's bundled `digits` data set as CSV for the convergence benchmark.

1797 rows of 64 pixel features scaled to [0, 1] (pixel / 16) and the label (0-9) last, with a
header line. No network access: the data ships inside the scikit-learn wheel.

    pip install scikit-learn
    python3 benches/data/export_digits.py            # writes target/bench-data/digits.csv
    python3 benches/data/export_digits.py out.csv
"""

import csv
import sys
from pathlib import Path

from sklearn.datasets import load_digits

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "target" / "bench-data" / "digits.csv"
    digits = load_digits()
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([f"pixel{i}" for i in range(digits.data.shape[1])] + ["label"])
        for pixels, label in zip(digits.data / 16.0, digits.target):
            writer.writerow([f"{p:.6g}" for p in pixels] + [int(label)])
    print(f"wrote {len(digits.target)} samples to {out}")


if __name__ == "__main__":
    main()
