"""Which library the tests use when LRE_LIBRARY is unset: run from the source tree
(pyproject's pythonpath, which holds no liblre.so), the repository's release build; run
against an installed package (tests/python.rs empties it: `-o pythonpath=`), the library the
package bundles."""

import importlib.util
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
_package = importlib.util.find_spec("lre")
if _package is None or not (Path(_package.origin).parent / "liblre.so").is_file():
    os.environ.setdefault("LRE_LIBRARY", str(REPO / "target" / "release" / "liblre.so"))


@pytest.fixture(scope="session")
def resume_program(tmp_path_factory):
    """resume.cpp, built against the library the tests load: continues a run in C++."""
    import lre

    out = tmp_path_factory.mktemp("cpp") / "resume"
    library = Path(lre._library.load()._name).resolve()
    # The program records the library's soname, liblre.so.<ABI version>, which only an install
    # creates: a directory of links gives it that name.
    libdir = tmp_path_factory.mktemp("lib")
    (libdir / f"liblre.so.{lre.abi_version()}").symlink_to(library)
    (libdir / "liblre.so").symlink_to(library)
    subprocess.run(
        ["g++", "-std=c++17", "-O2", "-Wall", "-Werror", f"-I{REPO / 'include'}",
         f"-I{REPO / 'bindings' / 'cpp'}", str(Path(__file__).with_name("resume.cpp")),
         "-o", str(out), f"-L{libdir}", "-llre", f"-Wl,-rpath,{libdir}"],
        check=True)
    return out
