"""Which library the tests use when LRE_LIBRARY is unset: run from the source tree
(pyproject's pythonpath, which holds no liblre.so), the repository's release build; run
against an installed package (tests/python.rs empties it: `-o pythonpath=`), the library the
package bundles."""

import importlib.util
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
_package = importlib.util.find_spec("lre")
if _package is None or not (Path(_package.origin).parent / "liblre.so").is_file():
    os.environ.setdefault("LRE_LIBRARY", str(REPO / "target" / "release" / "liblre.so"))
