"""LRE as an optax gradient transformation whose step runs as XLA custom calls inside `jit`.

    import lre.jax
    opt = lre.jax.lre("basis=ggt(history_size=50)", learning_rate=1e-2)
    state = opt.init(params)
    updates, state = opt.update(grads, state, params)
    params = optax.apply_updates(params, updates)

* Parameters may be any pytree of arrays. Its floating-point leaves, in `jax.tree_util.tree_leaves`
  order and each row-major, are the optimizer's `n` parameters. They are stepped in float64 if a
  leaf is float64 (with `jax_enable_x64`), else in float32: bfloat16 and float16 leaves are cast
  up, and their updates cast back to the leaf's dtype. Integer and bool leaves get zero updates,
  as in optax.
* The state is `LREState(count, blob, skipped)`, a pytree of arrays, so orbax/equinox
  checkpointing works unchanged. `blob` is a fixed-size uint8 buffer holding the C library's state blob
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
* A non-finite gradient or HVP skips the step inside the compiled call: params and state stay
  as they were, `count` does not advance and `skipped_steps(state)` counts it (raising there
  would lose a donated state).
* Concurrency: there is no optimizer handle to share (each call steps an optimizer of its own,
  decoded from the state it is given or taken whole from the library's one-entry cache of the
  last step), so `lre.core`'s `LRE_ERR_BUSY` cannot happen here. Stepping one state
  concurrently (two threads, or two calls with the same state) is safe but forks it: each call
  returns the state one step from the given one, independently; keep one of them. A donated state
  belongs to the first call that gets it (JAX refuses to use a donated array again).
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

from . import _library, core

# Bytes before the blob in `LREState.blob` (src/ffi/xla/handlers.rs, PREFIX): the blob's length
# and a token naming the step that wrote it (0 for states made here).
_PREFIX = 16

_DTYPES = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}


class LREState(NamedTuple):
    """The optimizer state: steps taken (for schedules), the C state in a fixed buffer, and the
    steps skipped for a non-finite gradient or HVP (`skipped_steps`)."""

    count: jax.Array  # int32 scalar
    blob: jax.Array  # uint8[capacity]: u64 byte count, u64 token, the state blob, zeros
    skipped: jax.Array  # int32 scalar


def skipped_steps(state: LREState) -> jax.Array:
    """How many steps were skipped because the gradient or an HVP was not finite (NaN or Inf):
    such a step leaves params and state unchanged, as `optax.apply_if_finite` does, instead of
    raising inside the compiled step, which would lose a donated state."""
    return state.skipped


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


def _is_float(leaf: Any) -> bool:
    return jnp.issubdtype(leaf.dtype, jnp.floating)


def _working_dtype(params: Any) -> np.dtype:
    """The dtype the optimizer steps in: float64 if a float leaf is float64, else float32
    (bfloat16 and float16 leaves are stepped in float32 and their updates cast back)."""
    floats = [leaf for leaf in jax.tree_util.tree_leaves(params) if _is_float(leaf)]
    if not floats:
        raise ValueError("params have no floating-point leaves")
    wide = any(np.dtype(leaf.dtype) == np.float64 for leaf in floats)
    return np.dtype(np.float64 if wide else np.float32)


def _flatten(tree: Any, like: Any, dtype: np.dtype, what: str):
    """The float leaves of `tree` (shaped like the params `like`) as one vector of `dtype`, in
    `tree_leaves` order, each row-major; and the inverse, which casts each float leaf back to
    its params dtype and gives the other leaves (integers, bools) zero updates, as optax does."""
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    ref, ref_def = jax.tree_util.tree_flatten(like)
    if treedef != ref_def:
        raise ValueError(f"{what} has structure {treedef}, params have {ref_def}")
    for i, (leaf, p) in enumerate(zip(leaves, ref)):
        if _is_float(leaf) != _is_float(p):
            raise TypeError(f"{what} leaf {i} is {leaf.dtype} but the params leaf is {p.dtype}")
    if _size(tree) != _size(like):
        raise ValueError(f"{what} have {_size(tree)} floating-point elements but params have "
                         f"{_size(like)}")
    parts = []
    for i, (leaf, p) in enumerate(zip(leaves, ref)):
        if leaf.shape != p.shape:
            raise ValueError(f"{what} leaf {i} has shape {list(leaf.shape)} but the params leaf "
                             f"has {list(p.shape)}")
        if _is_float(p):
            parts.append(jnp.ravel(leaf).astype(dtype))
    flat = jnp.concatenate(parts) if len(parts) > 1 else parts[0]

    def unflatten(vector: jax.Array) -> Any:
        out, at = [], 0
        for p in ref:
            if _is_float(p):
                out.append(vector[at:at + p.size].reshape(p.shape).astype(p.dtype))
                at += p.size
            else:
                out.append(jnp.zeros_like(p))
        return jax.tree_util.tree_unflatten(ref_def, out)

    return flat, unflatten


def _size(params: Any) -> int:
    """n: the number of floating-point parameters."""
    return sum(int(np.prod(leaf.shape)) for leaf in jax.tree_util.tree_leaves(params)
               if _is_float(leaf))


def _state_from_blob(blob: bytes, capacity: int, count: int) -> LREState:
    if _PREFIX + len(blob) > capacity:
        raise ValueError(f"state_capacity={capacity} is smaller than the state "
                         f"({_PREFIX + len(blob)} bytes)")
    buffer = np.zeros(capacity, np.uint8)
    buffer[:8] = np.frombuffer(len(blob).to_bytes(8, "little"), np.uint8)
    buffer[_PREFIX:_PREFIX + len(blob)] = np.frombuffer(blob, np.uint8)
    return LREState(count=jnp.asarray(count, jnp.int32), blob=jnp.asarray(buffer),
                    skipped=jnp.asarray(0, jnp.int32))


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
        return core.Optimizer(_spec_with_dtype(self.spec, _working_dtype(params)),
                              _size(params))

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
        curvature = probe_opt.component("curvature")

    def update(grads: Any, state: LREState, params: Any = None, *,
               hvp_fn: Optional[Callable[[Any], Any]] = None, **extra_args: Any):
        del extra_args  # meant for other members of an optax chain
        if params is None:
            raise ValueError("lre needs params: call update(grads, state, params)")
        dtype = _working_dtype(params)
        flat_grads, unravel = _flatten(grads, params, dtype, "grads")
        flat_params, _ = _flatten(params, params, dtype, "params")
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
            hvps = jax.vmap(
                lambda v: _flatten(hvp_fn(unravel(v)), params, dtype, "hvp_fn's result")[0]
            )(probes)
            operands.append(hvps)
        blob, flat_updates, skipped = jax.ffi.ffi_call(
            "lre_xla_step",
            (jax.ShapeDtypeStruct(state.blob.shape, jnp.uint8),
             jax.ShapeDtypeStruct(flat_params.shape, dtype),
             jax.ShapeDtypeStruct((), jnp.int32)),
            vmap_method="sequential",
            input_output_aliases={0: 0},
        )(*operands)
        # A skipped step (non-finite gradient or HVP) changed nothing and is not counted.
        return unravel(flat_updates), LREState(count=state.count + 1 - skipped, blob=blob,
                                               skipped=state.skipped + skipped)

    return LRE(_Init(spec, state_capacity), update)
