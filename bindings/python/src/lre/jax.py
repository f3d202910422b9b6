"""LRE as an optax gradient transformation whose step runs as XLA custom calls inside `jit`.

    import lre.jax
    opt = lre.jax.lre("basis=ggt(history_size=50)", learning_rate=1e-2)
    state = opt.init(params)
    updates, state = opt.update(grads, state, params)
    params = optax.apply_updates(params, updates)

* Parameters may be any pytree of float32 (or, with `jax_enable_x64`, float64) arrays. They are
  flattened with `jax.flatten_util.ravel_pytree`: leaves in `jax.tree_util.tree_leaves` order,
  each leaf row-major. That vector is the optimizer's `n` parameters.
* The state is `LREState(count, blob)`, a pytree of two arrays, so orbax/equinox checkpointing
  works unchanged. `blob` is a fixed-size uint8 buffer holding the C library's state blob
  (docs/state-format.md) behind its byte count; `to_c_state` / `LRE.from_c_state` convert to and
  from the blob that `lre.core`, the C++ wrapper and Julia save and load.
* `learning_rate` is a float or an optax schedule (a function of the step count); it is an input
  of the custom call, not a compile-time constant.
* Weight decay: put `weight_decay=wd` in the spec. LRE's updates are final (already scaled by
  -lr), so `optax.add_decayed_weights(wd)` after it adds +wd*params: the wrong sign, without the
  lr. Before it, as `optax.chain(optax.add_decayed_weights(wd), lre(...))`, the decay joins the
  gradient (L2 regularization: it feeds the curvature and goes through the basis and the inner
  chain), which is not decoupled decay. The spec key gives AdamW's update
  params - lr*wd*params - lr*Q*u with each step's lr (schedules included), skips init steps, and
  travels in the state. For a constant lr, `optax.chain(lre(spec, lr),
  optax.add_decayed_weights(-lr * wd, mask))` is the same decay when some leaves must be excluded.
* The custom calls are pure; donate the state (`jax.jit(step, donate_argnums=...)`) and XLA
  updates it in place (`input_output_aliases`).
* Curvatures built from Hessian-vector products (full_hutchinson_hessian, bfgs, sr1) take
  `hvp_fn` in `update`: a function from a params-shaped tangent to H·tangent, e.g. from
  `grad_and_hvp(loss, params, *args)`. One custom call emits the probe vectors, JAX computes
  their products (forward-over-reverse), a second call absorbs them.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from . import _library, core

# Bytes before the blob in `LREState.blob` (src/ffi/xla/handlers.rs, PREFIX): the blob's length
# and a token naming the step that wrote it (0 for states made here).
_PREFIX = 16

_DTYPES = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}


class LREState(NamedTuple):
    """The optimizer state: steps taken (for schedules) and the C state in a fixed buffer."""

    count: jax.Array  # int32 scalar
    blob: jax.Array  # uint8[capacity]: u64 byte count, u64 token, the state blob, zeros


@functools.lru_cache(maxsize=None)
def _register() -> None:
    """Registers the handlers with XLA once per process. Only the CPU handlers exist today: a
    library with GPU handlers exports them as `<name>_cuda`, and they are registered when
    present."""
    lib = _library.load()
    for name in ("lre_xla_step", "lre_xla_probes"):
        jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(getattr(lib, name)), platform="cpu")
        if hasattr(lib, name + "_cuda"):
            capsule = jax.ffi.pycapsule(getattr(lib, name + "_cuda"))
            jax.ffi.register_ffi_target(name, capsule, platform="CUDA")


def _spec_with_dtype(spec: str, dtype: np.dtype) -> str:
    """The spec with the parameters' dtype; a spec naming another dtype is refused."""
    with core.Optimizer(spec, 1) as opt:
        named = opt.dtype
    if named == dtype:
        return spec
    with_dtype = f"{spec}; dtype={_DTYPES[dtype]}" if spec.strip() else f"dtype={_DTYPES[dtype]}"
    try:
        core.Optimizer(with_dtype, 1).close()
    except core.LREError:  # the spec names its dtype itself
        raise TypeError(f"the spec says dtype={_DTYPES[named]} but the parameters are "
                        f"{dtype.name}") from None
    return with_dtype


def _flat_dtype(tree: Any, what: str) -> np.dtype:
    leaves = jax.tree_util.tree_leaves(tree)
    if not leaves:
        raise ValueError(f"{what} has no leaves")
    dtypes = {np.dtype(leaf.dtype) for leaf in leaves}
    if len(dtypes) != 1 or next(iter(dtypes)) not in _DTYPES:
        names = sorted(d.name for d in dtypes)
        raise TypeError(f"{what} must all be float32 or all float64, got {names}")
    return next(iter(dtypes))


def _state_from_blob(blob: bytes, capacity: int, count: int) -> LREState:
    if _PREFIX + len(blob) > capacity:
        raise ValueError(f"state_capacity={capacity} is smaller than the state "
                         f"({_PREFIX + len(blob)} bytes)")
    buffer = np.zeros(capacity, np.uint8)
    buffer[:8] = np.frombuffer(len(blob).to_bytes(8, "little"), np.uint8)
    buffer[_PREFIX:_PREFIX + len(blob)] = np.frombuffer(blob, np.uint8)
    return LREState(count=jnp.asarray(count, jnp.int32), blob=jnp.asarray(buffer))


def to_c_state(state: LREState) -> bytes:
    """The C library's state blob inside `state` (for `lre.core.Optimizer.from_state`, the C++
    `lre::Optimizer::from_state`, Julia, or a file)."""
    buffer = np.asarray(state.blob)
    if buffer.ndim != 1 or buffer.dtype != np.uint8 or buffer.size < _PREFIX:
        raise ValueError(f"not an LRE state buffer: {buffer.dtype}{list(buffer.shape)}")
    length = int.from_bytes(buffer[:8].tobytes(), "little")
    if _PREFIX + length > buffer.size:
        raise ValueError(f"the state buffer says its blob has {length} bytes but holds "
                         f"{buffer.size - _PREFIX}")
    return buffer[_PREFIX:_PREFIX + length].tobytes()


def clear_cache() -> None:
    """Frees the optimizer the library keeps from the last step (one copy of the state) to skip
    decoding it in the next; the next step decodes instead. Results never depend on it."""
    _library.load().lre_xla_clear_memo()


def grad_and_hvp(loss: Callable[..., jax.Array], params: Any, *args: Any):
    """The gradient of `loss(params, *args)` and a function tangent -> H·tangent at `params`
    (forward-over-reverse; the linearization is computed once and reused for every probe)."""
    grads, hvp = jax.linearize(lambda p: jax.grad(loss)(p, *args), params)
    return grads, hvp


class _Init:
    """`init(params)`, knowing the spec and capacity, which `from_c_state` needs too."""

    def __init__(self, spec: str, state_capacity: Optional[int]):
        self.spec = spec
        self.state_capacity = state_capacity

    def _optimizer(self, params: Any) -> core.Optimizer:
        flat, _ = ravel_pytree(params)
        return core.Optimizer(_spec_with_dtype(self.spec, _flat_dtype(params, "params")),
                              flat.size)

    def _capacity(self, opt: core.Optimizer) -> int:
        return self.state_capacity or _PREFIX + opt.state_bound()

    def __call__(self, params: Any) -> LREState:
        with self._optimizer(params) as opt:
            return _state_from_blob(opt.state(), self._capacity(opt), 0)

    def from_c_state(self, blob: bytes, params: Any) -> LREState:
        with self._optimizer(params) as opt:
            opt.load_state(blob)
            return _state_from_blob(blob, self._capacity(opt), int(opt.get_param("step")))


class LRE(optax.GradientTransformationExtraArgs):
    """An optax `GradientTransformationExtraArgs` (`init`, `update`; `hvp_fn` is an extra
    argument that `optax.chain` forwards) that also converts C state blobs."""

    __slots__ = ()

    def from_c_state(self, blob: bytes, params: Any) -> LREState:
        """The JAX state for a C state blob saved by any binding. The blob must come from an
        optimizer with this spec (lr and threads aside) and as many parameters as `params`
        has; otherwise `lre.core.LREError` says what differs. `count` resumes at the blob's
        step count."""
        return self.init.from_c_state(blob, params)


def lre(
    spec: str = "",
    learning_rate: Union[float, Callable[[jax.Array], jax.Array], None] = None,
    *,
    state_capacity: Optional[int] = None,
) -> LRE:
    """An LRE optimizer configured by `spec` (the grammar of the README; "" is the default).

    `learning_rate` is a float, an optax schedule, or None for the spec's `lr`.
    `state_capacity` is the state buffer's size in bytes; by default the library's upper bound
    for this spec and parameter count (`lre_optimizer_state_bound`), which configurations with
    per-sample batches do not have.
    """
    _register()
    with core.Optimizer(spec, 1) as probe_opt:
        num_probes = int(probe_opt.get_param("num_probes"))
        spec_lr = probe_opt.get_param("lr")
        curvature = probe_opt.spec.split("curvature=")[1].split(";")[0]

    def update(grads: Any, state: LREState, params: Any = None, *,
               hvp_fn: Optional[Callable[[Any], Any]] = None, **extra_args: Any):
        del extra_args  # meant for other members of an optax chain
        if params is None:
            raise ValueError("lre needs params: call update(grads, state, params)")
        flat_grads, unravel = ravel_pytree(grads)
        flat_params, _ = ravel_pytree(params)
        dtype = _flat_dtype(params, "params")
        if _flat_dtype(grads, "grads") != dtype:
            raise TypeError(f"grads are {flat_grads.dtype.name} but params are {dtype.name}")
        if flat_grads.shape != flat_params.shape:
            raise ValueError(f"grads have {flat_grads.size} elements but params have "
                             f"{flat_params.size}")
        if not isinstance(state, LREState) or state.blob.dtype != jnp.uint8 or state.blob.ndim != 1:
            raise TypeError("state must be the LREState that init returned")
        lr = learning_rate(state.count) if callable(learning_rate) else (
            spec_lr if learning_rate is None else learning_rate)
        operands = [state.blob, flat_grads, flat_params, jnp.asarray(lr, dtype)]
        if num_probes:
            if hvp_fn is None:
                raise ValueError(f"curvature={curvature} needs Hessian-vector products: pass "
                                 "update(grads, state, params, hvp_fn=...), e.g. from "
                                 "lre.jax.grad_and_hvp(loss, params, *args)")
            probes = jax.ffi.ffi_call(
                "lre_xla_probes",
                jax.ShapeDtypeStruct((num_probes, flat_params.size), dtype),
                vmap_method="sequential",
            )(state.blob, flat_grads)
            hvps = jax.vmap(lambda v: ravel_pytree(hvp_fn(unravel(v)))[0])(probes)
            operands.append(hvps.astype(dtype))
        blob, flat_updates = jax.ffi.ffi_call(
            "lre_xla_step",
            (jax.ShapeDtypeStruct(state.blob.shape, jnp.uint8),
             jax.ShapeDtypeStruct(flat_params.shape, dtype)),
            vmap_method="sequential",
            input_output_aliases={0: 0},
        )(*operands)
        return unravel(flat_updates), LREState(count=state.count + 1, blob=blob)

    return LRE(_Init(spec, state_capacity), update)
