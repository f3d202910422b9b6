"""Finds and loads liblre, and declares the C signature of every function in include/lre.h."""

import ctypes
import functools
import os
from ctypes import POINTER, c_char, c_char_p, c_double, c_float, c_int32, c_size_t, c_uint8
from ctypes import c_uint32, c_void_p

ABI_VERSION = 1  # LRE_ABI_VERSION of the lre.h this module mirrors
LIBRARY_ENV = "LRE_LIBRARY"
BUNDLED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "liblre.so")


class lre_optimizer_t(ctypes.Structure):
    """The opaque handle; only ever used through a pointer."""


OptPtr = POINTER(lre_optimizer_t)


class lre_buffer_info(ctypes.Structure):
    """One buffer of an optimizer's state (lre_optimizer_state_layout)."""

    _fields_ = [
        ("name", c_char * 64),
        ("kind", c_uint32),
        ("dtype", c_uint32),
        ("rows", ctypes.c_uint64),
        ("cols", ctypes.c_uint64),
        ("bytes", ctypes.c_uint64),
    ]

HVP_F32 = ctypes.CFUNCTYPE(c_int32, c_void_p, POINTER(c_float), POINTER(c_float), c_size_t)
HVP_F64 = ctypes.CFUNCTYPE(c_int32, c_void_p, POINTER(c_double), POINTER(c_double), c_size_t)
ALLREDUCE = ctypes.CFUNCTYPE(c_int32, POINTER(c_double), c_size_t, c_void_p)

_status = c_int32
_f32p, _f64p, _u8p = POINTER(c_float), POINTER(c_double), POINTER(c_uint8)

# name: (restype, argtypes), in the order of lre.h. const and mutable pointers share a type.
SIGNATURES = {
    "lre_abi_version": (c_uint32, []),
    "lre_version": (c_char_p, []),
    "lre_status_string": (c_char_p, [c_int32]),
    "lre_last_error_message": (c_char_p, []),
    "lre_optimizer_new": (_status, [c_char_p, c_size_t, POINTER(OptPtr)]),
    "lre_optimizer_free": (None, [OptPtr]),
    "lre_optimizer_chain_push": (_status, [OptPtr, c_char_p]),
    "lre_optimizer_spec": (_status, [OptPtr, POINTER(c_char), c_size_t, POINTER(c_size_t)]),
    "lre_optimizer_set_param": (_status, [OptPtr, c_char_p, c_double]),
    "lre_optimizer_get_param": (_status, [OptPtr, c_char_p, POINTER(c_double)]),
    "lre_optimizer_eigenvalues": (_status, [OptPtr, _f64p, c_size_t, POINTER(c_size_t)]),
    "lre_optimizer_state_bound": (_status, [OptPtr, POINTER(c_size_t)]),
    "lre_optimizer_state_save": (_status, [OptPtr, _u8p, c_size_t, POINTER(c_size_t)]),
    "lre_optimizer_state_load": (_status, [OptPtr, _u8p, c_size_t]),
    "lre_optimizer_from_state": (_status, [_u8p, c_size_t, POINTER(OptPtr)]),
    "lre_optimizer_save_file": (_status, [OptPtr, c_char_p]),
    "lre_optimizer_load_file": (_status, [OptPtr, c_char_p]),
    "lre_optimizer_state_layout": (
        _status, [OptPtr, POINTER(lre_buffer_info), c_size_t, POINTER(c_size_t)]),
    "lre_optimizer_component": (
        _status, [OptPtr, c_char_p, POINTER(c_char), c_size_t, POINTER(c_size_t)]),
    "lre_optimizer_set_allreduce": (_status, [OptPtr, ALLREDUCE, c_void_p]),
    "lre_optimizer_step_f32": (_status, [OptPtr, _f32p, _f32p, HVP_F32, c_void_p]),
    "lre_optimizer_step_f64": (_status, [OptPtr, _f64p, _f64p, HVP_F64, c_void_p]),
    "lre_optimizer_begin_f32": (_status, [OptPtr, _f32p, POINTER(c_size_t)]),
    "lre_optimizer_begin_f64": (_status, [OptPtr, _f64p, POINTER(c_size_t)]),
    "lre_optimizer_probes_f32": (_status, [OptPtr, _f32p]),
    "lre_optimizer_probes_f64": (_status, [OptPtr, _f64p]),
    "lre_optimizer_finish_f32": (_status, [OptPtr, _f32p, _f32p]),
    "lre_optimizer_finish_f64": (_status, [OptPtr, _f64p, _f64p]),
    "lre_optimizer_cancel": (_status, [OptPtr]),
    "lre_optimizer_set_stream": (_status, [OptPtr, c_void_p]),
    "lre_optimizer_step_batch_f32": (
        _status, [OptPtr, _f32p, _f32p, c_size_t, _f32p, HVP_F32, c_void_p]),
    "lre_optimizer_step_batch_f64": (
        _status, [OptPtr, _f64p, _f64p, c_size_t, _f64p, HVP_F64, c_void_p]),
    "lre_optimizer_small_state_bound": (_status, [OptPtr, POINTER(c_size_t)]),
    "lre_optimizer_lend": (
        _status, [OptPtr, POINTER(c_void_p), POINTER(c_size_t), c_size_t, _u8p, c_size_t,
                  POINTER(c_size_t)]),
    "lre_lent_state_save": (
        _status, [_u8p, c_size_t, POINTER(c_void_p), POINTER(c_size_t), c_size_t, _u8p, c_size_t,
                  POINTER(c_size_t)]),
    "lre_lent_step_f32": (
        _status, [_u8p, c_size_t, POINTER(c_void_p), POINTER(c_size_t), c_size_t, _f32p, _f32p,
                  HVP_F32, c_void_p, _u8p, c_size_t, POINTER(c_size_t)]),
    "lre_lent_step_f64": (
        _status, [_u8p, c_size_t, POINTER(c_void_p), POINTER(c_size_t), c_size_t, _f64p, _f64p,
                  HVP_F64, c_void_p, _u8p, c_size_t, POINTER(c_size_t)]),
}

_HOW_TO_FIX = (
    "Build the library with `cargo build --release` in the LRE repository and reinstall this "
    "package (pip install ./bindings/python copies target/release/liblre.so into it), or set "
    f"{LIBRARY_ENV} to the path of liblre.so."
)


@functools.lru_cache(maxsize=None)
def load() -> ctypes.CDLL:
    """The loaded liblre with every function's signature declared (loaded once per process)."""
    path = os.environ.get(LIBRARY_ENV)
    if path:
        # An explicit setting that does not work is an error, not a reason to fall back.
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            raise ImportError(
                f"cannot load liblre from {LIBRARY_ENV}={path!r}: {e}. {_HOW_TO_FIX}"
            ) from e
    elif os.path.isfile(BUNDLED):
        lib = ctypes.CDLL(BUNDLED)
    else:
        raise ImportError(
            f"liblre not found: {LIBRARY_ENV} is not set and there is no {BUNDLED}. {_HOW_TO_FIX}")
    # Checked first: a library of another ABI would misread (or lack) the functions below.
    lib.lre_abi_version.restype, lib.lre_abi_version.argtypes = SIGNATURES["lre_abi_version"]
    abi = lib.lre_abi_version()
    if abi != ABI_VERSION:
        raise ImportError(
            f"{lib._name} has ABI version {abi}, but this lre package was written for ABI version "
            f"{ABI_VERSION}; use the liblre of the same LRE release as the package.")
    for name, (restype, argtypes) in SIGNATURES.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes
    return lib
