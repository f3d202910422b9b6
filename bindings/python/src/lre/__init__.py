"""LRE — low-rank eigenbasis optimizers: a numpy binding of liblre's C API.

    import numpy as np, lre
    x = np.ones(8, np.float32)
    with lre.Optimizer("basis=ggt(history_size=50); lr=0.1", x.size) as opt:
        opt.step(x, np.arange(1, 9, dtype=np.float32) * x)   # updates x in place

The JAX/optax integration is the separate submodule `lre.jax` (import it explicitly).
"""

from .core import LREError, Optimizer, Status, abi_version, version

__version__ = "0.1.0"  # equals the Rust crate's version (a test checks both)

__all__ = ["LREError", "Optimizer", "Status", "abi_version", "version", "__version__"]
