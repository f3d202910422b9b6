"""The numpy API over liblre: `Optimizer` and `LREError` (the operations of lre.hpp)."""

from __future__ import annotations

import ctypes
import enum
import operator
import os
import weakref
from typing import Callable, NamedTuple, Optional

import numpy as np

from . import _library

_lib = _library.load()


class Status(enum.IntEnum):
    """`lre_status` of include/lre.h."""

    LRE_OK = 0
    LRE_ERR_NULL_POINTER = 1
    LRE_ERR_INVALID_ARGUMENT = 2
    LRE_ERR_SPEC = 3
    LRE_ERR_UNSUPPORTED = 4
    LRE_ERR_CALLBACK = 5
    LRE_ERR_NUMERICAL = 6
    LRE_ERR_STATE = 7
    LRE_ERR_IO = 8
    LRE_ERR_DEVICE = 9
    LRE_ERR_BUFFER_TOO_SMALL = 10
    LRE_ERR_CALL_ORDER = 11
    LRE_ERR_OUT_OF_MEMORY = 12
    LRE_ERR_PANIC = 13
    LRE_ERR_BUSY = 14


class LREError(Exception):
    """A failed LRE call: `status` (an `lre_status`), `status_name` ("LRE_ERR_SPEC", ...) and the
    library's `message` (what was wrong and what would be right)."""

    def __init__(self, status: int, message: str):
        super().__init__(status, message)
        self.status = int(status)
        try:
            self.status_name = Status(status).name
        except ValueError:  # a status appended after this binding was written
            self.status_name = f"status {status}"
        self.message = message

    def __str__(self) -> str:
        description = _lib.lre_status_string(self.status).decode()
        return f"{self.status_name} ({description}): {self.message}"


def _error(status: int) -> LREError:
    # The message is this thread's last error: read it right after the failed call.
    return LREError(status, _lib.lre_last_error_message().decode(errors="replace"))


def _check(status: int) -> None:
    if status != Status.LRE_OK:
        raise _error(status)


def version() -> str:
    """The version of the loaded library ("MAJOR.MINOR.PATCH")."""
    return _lib.lre_version().decode()


def abi_version() -> int:
    """The ABI version of the loaded library."""
    return _lib.lre_abi_version()


class _Entries(NamedTuple):
    """The C entry points of one dtype."""

    dtype: np.dtype
    pointer: type  # ctypes pointer to one element
    hvp: type  # the callback's CFUNCTYPE; hvp() is the NULL callback
    step: Callable
    begin: Callable
    probes: Callable
    finish: Callable
    step_batch: Callable


def _entries(suffix: str, dtype, ctype, hvp) -> _Entries:
    ops = ("step", "begin", "probes", "finish", "step_batch")
    functions = (getattr(_lib, f"lre_optimizer_{op}_{suffix}") for op in ops)
    return _Entries(np.dtype(dtype), ctypes.POINTER(ctype), hvp, *functions)


# Keyed by the optimizer's dtype code (get_param("dtype"): an lre_dtype).
_ENTRIES = {
    1: _entries("f32", np.float32, ctypes.c_float, _library.HVP_F32),
    2: _entries("f64", np.float64, ctypes.c_double, _library.HVP_F64),
}

_DTYPE_CODES = {1: np.dtype(np.float32), 2: np.dtype(np.float64), 3: np.dtype(np.uint64),
                # A GGT window in 16-bit storage: bfloat16 has no NumPy type, so its bits.
                4: np.dtype(np.uint16), 5: np.dtype(np.float16)}
_BUFFER_KINDS = {0: "host", 1: "vectors", 2: "batch_sized", 3: "within"}


class BufferInfo(NamedTuple):
    """One buffer of an optimizer's state at its largest (`Optimizer.state_layout()`): its name in
    the state blob, its kind ("vectors": `rows` = n and `cols` n-vectors in the params' dtype;
    "host": `rows` small elements; "batch_sized": as large as the batch, no fixed size;
    "within": n-vectors kept among the columns of the "vectors" buffer before it, with no caller
    memory of their own), element type and bytes."""

    name: str
    kind: str
    dtype: np.dtype
    rows: int
    cols: int
    bytes: int


def _lent(arrays: list, writable: bool):
    """ctypes arrays of the data pointers and byte sizes of numpy arrays lent to the library."""
    for i, a in enumerate(arrays):
        if not a.flags.c_contiguous or (writable and not a.flags.writeable):
            raise ValueError(f"buffer {i} must be a C-contiguous{' writable' if writable else ''} "
                             "numpy array")
    pointers = (ctypes.c_void_p * max(len(arrays), 1))(*[a.ctypes.data for a in arrays])
    sizes = (ctypes.c_size_t * max(len(arrays), 1))(*[a.nbytes for a in arrays])
    return pointers, sizes


def lent_state_blob(small: bytes, arrays: list) -> bytes:
    """The complete state blob (as `Optimizer.state()` returns it) of a small state and its
    n-sized buffers (`Optimizer.lend`); the arrays are only read."""
    pointers, sizes = _lent(arrays, writable=False)
    data, size = _bytes(small)
    length = ctypes.c_size_t()
    _check(_lib.lre_lent_state_save(data, size, pointers, sizes, len(arrays), None, 0,
                                    ctypes.byref(length)))
    blob = np.zeros(length.value, np.uint8)
    _check(_lib.lre_lent_state_save(
        data, size, pointers, sizes, len(arrays),
        blob.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8)), blob.size, ctypes.byref(length)))
    return blob.tobytes()


def _bytes(blob):
    """(pointer, length) of a bytes-like object, not copied (a state can be hundreds of MB)."""
    try:
        data = np.frombuffer(blob, dtype=np.uint8)
    except TypeError:
        raise TypeError(
            f"blob must be bytes-like (bytes, bytearray, memoryview), got {type(blob).__name__}"
        ) from None
    return data.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8)), data.size


class Optimizer:
    """An LRE optimizer over n parameters of the dtype its spec names (float32 unless "dtype=f64").

    Arrays are numpy arrays of exactly that dtype, C-contiguous, never copied or converted:
    `params` is updated in place. Every failing call raises `LREError` and changes nothing.

    One optimizer serves one call at a time (the library is called without the GIL): a call that
    overlaps another on the same optimizer, from a second thread or from the optimizer's own hvp
    callback, raises `LREError` with status `LRE_ERR_BUSY` at once and changes nothing. Threads
    that share an optimizer must take turns (with a lock, say); distinct optimizers are
    independent.
    """

    def __init__(self, spec: str = "", n: Optional[int] = None):
        """An optimizer for n parameters from a spec string ("" = the default configuration)."""
        if n is None:
            raise TypeError("Optimizer() needs n, the number of parameters")
        if not isinstance(spec, str):
            raise TypeError(f"spec must be a str, got {type(spec).__name__}")
        n = operator.index(n)
        if not 0 <= n < 2**64:  # size_t would wrap it; 0 is a shard without rows
            raise ValueError(f"n must be a non-negative integer below 2**64, got {n}")
        handle = _library.OptPtr()
        _check(_lib.lre_optimizer_new(spec.encode(), n, ctypes.byref(handle)))
        self._adopt(handle)

    @classmethod
    def from_state(cls, blob) -> Optimizer:
        """An optimizer, spec, n and dtype included, from a blob of `state()`."""
        handle = _library.OptPtr()
        _check(_lib.lre_optimizer_from_state(*_bytes(blob), ctypes.byref(handle)))
        opt = cls.__new__(cls)
        opt._adopt(handle)
        return opt

    def _adopt(self, handle) -> None:
        """Takes ownership of a handle from the C API."""
        self._handle = handle
        # Frees the handle exactly once: at close(), at garbage collection, or at exit.
        self._free = weakref.finalize(self, _lib.lre_optimizer_free, handle)
        self._num_probes = None  # of the begun split step; None when none is begun
        self._n = int(self.get_param("ndim"))
        dtype = int(self.get_param("dtype"))
        if dtype not in _ENTRIES:
            self.close()
            raise NotImplementedError(f"this binding supports f32 and f64, not dtype code {dtype}")
        self._entries = _ENTRIES[dtype]

    def close(self) -> None:
        """Frees the optimizer now; further calls raise ValueError. Closing twice is a no-op."""
        self._free()

    @property
    def closed(self) -> bool:
        return not self._free.alive

    def __enter__(self) -> Optimizer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __reduce__(self):
        # copy, deepcopy and pickle go through the state blob, so no two objects share a handle.
        return Optimizer.from_state, (self.state(),)

    def __repr__(self) -> str:
        return f"<lre.Optimizer n={self._n} dtype={self.dtype}{' closed' if self.closed else ''}>"

    @property
    def _ptr(self):
        if self.closed:
            raise ValueError("the optimizer is closed")
        return self._handle

    @property
    def n(self) -> int:
        """The number of parameters."""
        return self._n

    @property
    def dtype(self) -> np.dtype:
        """The element type of params, gradients and HVPs."""
        return self._entries.dtype

    @property
    def spec(self) -> str:
        """The canonical spec, every default filled in."""
        return self._read(_lib.lre_optimizer_spec, ctypes.c_char, terminator=1).value.decode()

    def set_param(self, key: str, value: float) -> None:
        """Sets "lr", or "loss" (the next step's loss, for the curvatures that use it)."""
        _check(_lib.lre_optimizer_set_param(self._ptr, key.encode(), float(value)))

    def get_param(self, key: str) -> float:
        """Reads "lr", "step", "rank", "ndim", "num_probes", "update_freq", "init_steps", "seed",
        "threads", "symmetrize", "dtype" (1 = f32, 2 = f64), "needs_loss" or "needs_samples"."""
        value = ctypes.c_double()
        _check(_lib.lre_optimizer_get_param(self._ptr, key.encode(), ctypes.byref(value)))
        return value.value

    def component(self, family: str) -> str:
        """The canonical name of the "curvature" or the "basis" in use."""
        def fill(opt, buf, cap, size):
            return _lib.lre_optimizer_component(opt, family.encode(), buf, cap, size)
        return self._read(fill, ctypes.c_char, terminator=1).value.decode()

    def small_state_bound(self) -> int:
        """The most bytes of this optimizer's small state (`lend`)."""
        bound = ctypes.c_size_t()
        _check(_lib.lre_optimizer_small_state_bound(self._ptr, ctypes.byref(bound)))
        return bound.value

    def lend(self, arrays: list) -> bytes:
        """Moves a copy of the state out to caller memory: the n-sized buffers (the "vectors"
        entries of `state_layout()`, in order) into `arrays` (writable, C-contiguous numpy
        arrays of exactly their bytes), the rest returned as the small state
        (docs/state-format.md). The optimizer is unchanged."""
        pointers, sizes = _lent(arrays, writable=True)
        small = np.zeros(self.small_state_bound(), np.uint8)
        length = ctypes.c_size_t()
        _check(_lib.lre_optimizer_lend(
            self._ptr, pointers, sizes, len(arrays),
            small.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8)), small.size,
            ctypes.byref(length)))
        return small[:length.value].tobytes()

    def state_layout(self) -> list:
        """Every buffer the state can hold, at its largest, as `BufferInfo`s (the components'
        declarations, from which `state_bound()` also follows)."""
        return [
            BufferInfo(b.name.decode(), _BUFFER_KINDS[b.kind], _DTYPE_CODES[b.dtype], b.rows,
                       b.cols, b.bytes)
            for b in self._read(_lib.lre_optimizer_state_layout, _library.lre_buffer_info)
        ]

    def set_allreduce(self, allreduce: Callable[[np.ndarray], None]) -> None:
        """Sharded mode (spec keys `global_ndim`, `shard_offset`): `allreduce(buf)` must sum the
        float64 array `buf` in place across all ranks, giving every rank the same bits (e.g.
        mpi4py's reduce to rank 0, then broadcast). An exception in it fails the step with
        LRE_ERR_CALLBACK (this rank's params and state unchanged); the exception itself is not
        re-raised."""
        if not callable(allreduce):
            raise TypeError(f"allreduce must be callable, got {type(allreduce).__name__}")

        def callback(buf, length, _user):
            try:
                allreduce(np.ctypeslib.as_array(buf, (length,)))
                return 0
            except Exception:  # must not unwind through the library
                return 1

        c_callback = _library.ALLREDUCE(callback)
        _check(_lib.lre_optimizer_set_allreduce(self._ptr, c_callback, None))
        self._allreduce = c_callback  # the library calls it during later steps

    def chain_push(self, component: str) -> None:
        """Appends an inner optimizer (e.g. "lion") to the chain; before the first step only."""
        _check(_lib.lre_optimizer_chain_push(self._ptr, component.encode()))

    def eigenvalues(self) -> np.ndarray:
        """The regularized eigenvalues the chain used in the last step, ascending (float64)."""
        return np.ctypeslib.as_array(self._read(_lib.lre_optimizer_eigenvalues, ctypes.c_double))

    def state(self) -> bytes:
        """The complete state (a versioned, checksummed blob, the same in every binding)."""
        return bytes(self._read(_lib.lre_optimizer_state_save, ctypes.c_uint8))

    def state_bound(self) -> int:
        """The most bytes `state()` can ever take with this spec and n (LRE_ERR_UNSUPPORTED for
        per-sample-batch configurations, which have no fixed bound)."""
        size = ctypes.c_size_t()
        _check(_lib.lre_optimizer_state_bound(self._ptr, ctypes.byref(size)))
        return size.value

    def load_state(self, blob) -> None:
        """Replaces the state with a blob of `state()` from an optimizer with the same spec (lr and
        threads aside), n and dtype."""
        _check(_lib.lre_optimizer_state_load(self._ptr, *_bytes(blob)))

    def save_file(self, path) -> None:
        """Writes the state to a file atomically (a crash mid-save keeps the previous file)."""
        _check(_lib.lre_optimizer_save_file(self._ptr, os.fsencode(path)))

    def load_file(self, path) -> None:
        """Replaces the state with a file written by `save_file` (as `load_state`)."""
        _check(_lib.lre_optimizer_load_file(self._ptr, os.fsencode(path)))

    def step(
        self,
        params: np.ndarray,
        grad: np.ndarray,
        hvp: Optional[Callable[[np.ndarray], np.ndarray]] = None,
    ) -> None:
        """One step: reads grad and updates params in place (both of shape (n,)).

        Curvatures that use Hessian-vector products call `hvp(v)`, which returns H·v of shape
        (n,); an exception it raises aborts the step (nothing changes) and is re-raised here.
        """
        e = self._entries
        p = self._array("params", params, (self._n,), writable=True)
        g = self._array("grad", grad, (self._n,))
        if hvp is None:
            _check(e.step(self._ptr, p, g, e.hvp(), None))
        else:
            self._call_with_hvp(hvp, lambda callback: e.step(self._ptr, p, g, callback, None))

    def begin(self, grad: np.ndarray) -> int:
        """Split step, phase one: validates grad and returns how many HVPs the step needs (0 on
        steps that do not update the curvature)."""
        count = ctypes.c_size_t()
        g = self._array("grad", grad, (self._n,))
        _check(self._entries.begin(self._ptr, g, ctypes.byref(count)))
        self._num_probes = count.value
        return count.value

    def probes(self) -> np.ndarray:
        """Split step: the begun step's probe vectors, shape (num_probes, n)."""
        out = np.empty((self._num_probes or 0, self._n), self.dtype)
        _check(self._entries.probes(self._ptr, out.ctypes.data_as(self._entries.pointer)))
        return out

    def finish(self, params: np.ndarray, hvps: Optional[np.ndarray]) -> None:
        """Split step, phase two: hvps[i] = H·probes()[i], shape (num_probes, n) (None when
        num_probes is 0); moves params. Non-finite HVPs raise LRE_ERR_NUMERICAL and the step stays
        begun."""
        p = self._array("params", params, (self._n,), writable=True)
        k = self._num_probes
        # Without a begun step there is nothing to check hvps against; the library reports it.
        skip = k is None or (k == 0 and hvps is None)
        h = None if skip else self._array("hvps", hvps, (k, self._n))
        _check(self._entries.finish(self._ptr, p, h))
        self._num_probes = None

    def cancel(self) -> None:
        """Abandons a begun split step; nothing changes."""
        _check(_lib.lre_optimizer_cancel(self._ptr))
        self._num_probes = None

    def step_batch(
        self,
        params: np.ndarray,
        per_sample_grads: np.ndarray,
        per_sample_values: Optional[np.ndarray] = None,
    ) -> None:
        """A batch step: per_sample_grads has shape (batch, n), one sample's gradient (or one
        residual's gradient) per row; per_sample_values, shape (batch,), are the residuals for
        gauss_newton (None where the curvature needs none)."""
        e = self._entries
        p = self._array("params", params, (self._n,), writable=True)
        g = self._array("per_sample_grads", per_sample_grads, (None, self._n))
        batch = per_sample_grads.shape[0]
        v = per_sample_values
        if v is not None:
            v = self._array("per_sample_values", v, (batch,))
        _check(e.step_batch(self._ptr, p, g, batch, v, e.hvp(), None))

    def _array(self, name: str, a, shape: tuple, writable: bool = False):
        """The C pointer to `a` after checking it is exactly what the C call reads or writes (None
        in shape: any size). Nothing is converted: params must be updated in place, and a silent
        conversion of an input would hide a mismatch."""
        dtype = self.dtype
        if not isinstance(a, np.ndarray):
            kind = type(a).__name__
            raise TypeError(f"{name} must be a numpy.ndarray of dtype {dtype}, not {kind}")
        if a.dtype != dtype:
            raise TypeError(f"{name} has dtype {a.dtype}, expected {dtype} (the optimizer's dtype)")
        fits = a.ndim == len(shape) and all(w is None or h == w for h, w in zip(a.shape, shape))
        if not fits:
            expected = ", ".join("batch" if d is None else str(d) for d in shape)
            expected += "," if len(shape) == 1 else ""
            raise ValueError(f"{name} has shape {a.shape}, expected ({expected})")
        if not (a.flags.c_contiguous and a.flags.aligned):
            raise ValueError(
                f"{name} must be C-contiguous and aligned (np.ascontiguousarray makes such a copy)"
            )
        if writable and not a.flags.writeable:
            raise ValueError(f"{name} is read-only, but it is updated in place")
        return a.ctypes.data_as(self._entries.pointer)

    def _call_with_hvp(self, hvp: Callable, c_call: Callable[[object], int]) -> None:
        """Runs `c_call(callback)`, a C call that may invoke an HVP callback, with `hvp` behind it.
        An exception must not unwind through the library's frames, so the callback stores it and
        returns non-zero (the call then fails with LRE_ERR_CALLBACK and changes nothing), and it is
        raised here, with that LREError as its cause, once the C call has returned."""
        if not callable(hvp):
            raise TypeError(f"hvp must be callable as hvp(v) -> H·v, got {type(hvp).__name__}")
        raised = []

        def callback(_user, v, hv, n):
            try:
                # A copy: v is the library's buffer, valid only during this call.
                result = np.asarray(hvp(np.ctypeslib.as_array(v, (n,)).copy()))
                if result.shape != (n,):
                    raise ValueError(f"hvp returned shape {result.shape}, expected ({n},)")
                np.copyto(np.ctypeslib.as_array(hv, (n,)), result, casting="same_kind")
                return 0
            except BaseException as exc:  # KeyboardInterrupt included: nothing may unwind into C
                raised.append(exc)
                return 1

        status = c_call(self._entries.hvp(callback))
        if raised:
            raise raised[0] from _error(status)
        _check(status)

    def _read(self, fill: Callable, element, terminator: int = 0):
        """Reads through a two-call C function `fill(opt, buf, cap, &len)`: a size query with
        buf = NULL, then the copy into a ctypes array (`terminator` extra elements for a NUL)."""
        size = ctypes.c_size_t()
        _check(fill(self._ptr, None, 0, ctypes.byref(size)))
        buf = (element * (size.value + terminator))()
        _check(fill(self._ptr, buf, len(buf), ctypes.byref(size)))
        return buf


# Checkpoints across rank counts (sharded mode); at the end: that module uses Optimizer.
from ._state_shards import gather_state, split_state  # noqa: E402,F401
