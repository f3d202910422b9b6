"""Bundles liblre.so into the package when it is found at build time: $LRE_LIBRARY, else
<repo>/target/release/liblre.so. Without one the package installs alone and finds the library
through LRE_LIBRARY at run time."""

import os
from pathlib import Path

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py


def find_library():
    explicit = os.environ.get("LRE_LIBRARY")
    if explicit:
        if not Path(explicit).is_file():
            raise FileNotFoundError(f"LRE_LIBRARY={explicit!r} is not a file")
        return Path(explicit)
    # pip may build from a temporary copy of this folder, where the repository is not above it.
    built = Path(__file__).resolve().parent.parent.parent / "target" / "release" / "liblre.so"
    return built if built.is_file() else None


LIBRARY = find_library()


class BuildPyWithLibrary(build_py):
    def run(self):
        super().run()
        if LIBRARY is None:
            self.warn("liblre.so not found (LRE_LIBRARY unset, no target/release/liblre.so); "
                      "the package will need LRE_LIBRARY at run time")
        else:
            self.copy_file(str(LIBRARY), os.path.join(self.build_lib, "lre", "liblre.so"))


class LibraryDistribution(Distribution):
    # A wheel that carries liblre.so is specific to this platform, not py3-none-any.
    def has_ext_modules(self):
        return LIBRARY is not None


setup(cmdclass={"build_py": BuildPyWithLibrary}, distclass=LibraryDistribution)
