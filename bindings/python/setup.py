"""Packages liblre.so with the Python code (README.md, "Packages", says why plain setuptools).

The library is $LRE_LIBRARY when it is set (a prebuilt liblre.so), else it is built with
`cargo build --release` from the Rust crate: the repository two folders up, or the copy under
rust/ that the sdist carries. The wheel is tagged py3-none-<platform>: the Python code is loaded
by ctypes on any Python 3, while the library is specific to the platform; on Linux the platform
is manylinux_2_<N>_<arch>, N being the newest glibc symbol version the library needs.
"""

import functools
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Distribution, setup
from setuptools.command.bdist_wheel import bdist_wheel
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

HERE = Path(__file__).resolve().parent
LIBRARY_NAME = "liblre.so"
# What the sdist copies from the crate into rust/: enough for `cargo build --release --lib`
# (the manifest names the benches, so cargo wants them present).
CRATE_FILES = ["Cargo.toml", "Cargo.lock", "src", "benches"]


def crate_root():
    """The Rust crate to build: the sdist's copy, else the repository around this folder."""
    for root in (HERE / "rust", HERE.parent.parent):
        if (root / "Cargo.toml").is_file() and (root / "src" / "lib.rs").is_file():
            return root
    return None


@functools.lru_cache(maxsize=None)
def library():
    """The liblre.so to bundle: $LRE_LIBRARY, or one built now with cargo."""
    explicit = os.environ.get("LRE_LIBRARY")
    if explicit:
        if not Path(explicit).is_file():
            raise FileNotFoundError(f"LRE_LIBRARY={explicit!r} is not a file")
        return Path(explicit)
    root = crate_root()
    if root is None:
        raise RuntimeError("no Rust crate next to this package (rust/ or ../../) and LRE_LIBRARY "
                           "is unset: build from the repository or an sdist, or install a wheel")
    cargo = shutil.which("cargo")
    if cargo is None:
        raise RuntimeError("building lre from source needs Rust (cargo on PATH, "
                           "https://rustup.rs), or LRE_LIBRARY set to a built liblre.so; "
                           "a wheel installs without either")
    target = Path(os.environ.get("CARGO_TARGET_DIR", root / "target"))
    command = [cargo, "build", "--release", "--lib", "--manifest-path", str(root / "Cargo.toml")]
    print(" ".join(command), file=sys.stderr)
    subprocess.run(command, check=True, env=dict(os.environ, CARGO_TARGET_DIR=str(target)))
    return target / "release" / LIBRARY_NAME


def glibc_minor(path):
    """N of the newest GLIBC_2.N symbol version `path` refers to (its dynamic string table
    names every version it needs; nothing else in the library is a NUL-terminated
    "GLIBC_2.N"). tests/python.rs checks the resulting tag with auditwheel."""
    versions = re.findall(rb"(?<=\0)GLIBC_2\.(\d+)(?:\.\d+)?(?=\0)", path.read_bytes())
    # No glibc symbol versions at all: the oldest manylinux baseline (manylinux2014's 2.17).
    return max((int(v) for v in versions), default=17)


class BuildPyWithLibrary(build_py):
    def run(self):
        super().run()
        self.copy_file(str(library()), os.path.join(self.build_lib, "lre", LIBRARY_NAME))


class PlatformWheel(bdist_wheel):
    """py3-none-<platform>: any Python 3, this platform's library."""

    def get_tag(self):
        _, _, plat = super().get_tag()
        if sys.platform.startswith("linux"):
            plat = f"manylinux_2_{glibc_minor(library())}_{platform.machine()}"
        return "py3", "none", plat


class SdistWithCrate(sdist):
    """Adds the Rust crate under rust/, so the sdist builds the library where Rust is present."""

    def make_release_tree(self, base_dir, files):
        super().make_release_tree(base_dir, files)
        root = crate_root()
        if root is None:
            raise RuntimeError("the sdist carries the Rust crate: build it from the repository")
        for name in CRATE_FILES:
            source, dest = root / name, Path(base_dir) / "rust" / name
            if source.is_dir():
                shutil.copytree(source, dest, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, dest)


class LibraryDistribution(Distribution):
    # The wheel carries liblre.so: platform files, not a pure-Python (purelib) wheel.
    def has_ext_modules(self):
        return True


setup(
    cmdclass={"build_py": BuildPyWithLibrary, "bdist_wheel": PlatformWheel,
              "sdist": SdistWithCrate},
    distclass=LibraryDistribution,
)
