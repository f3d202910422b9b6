"""The tests import the source tree (pyproject's pythonpath), which holds no liblre.so: without
LRE_LIBRARY they use the repository's release build."""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
os.environ.setdefault("LRE_LIBRARY", str(REPO / "target" / "release" / "liblre.so"))
