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
* The state is `LREState(count, small, buffers, skipped)`, a pytree of real arrays, so orbax,
  equinox or `jax.tree_util` + numpy save it like any pytree. `buffers` maps each n-sized buffer
  of the optimizer (`lre.core.Optimizer.state_layout()`, kind "vectors") to an array of shape
  (vectors, n) in the parameters' dtype, e.g. `buffers["basis/window"]`: f32[history_size, n]
  for GGT, whose rows are the gradients it keeps (a ring: the row order is the library's). `small`
  is a fixed-size uint8 buffer with the rest (k-sized: Gram matrix, eigen-coefficients, counters;
  docs/state-format.md, small states). The custom calls step `small` and the buffers in place,
  copying no n-sized data. `to_c_state` / `LRE.from_c_state` convert to and from the blob that
  `lre.core`, the C++ wrapper and Julia save and load.
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
  built from the state it is given), so `lre.core`'s `LRE_ERR_BUSY` cannot happen here. Stepping one state
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

# Bytes before the small state in `LREState.small` (src/ffi/xla/handlers.rs, PREFIX): its length.
_PREFIX = 8

# Room for the spec recorded in the small state to grow when a schedule changes the learning
# rate (written in it with its shortest exact decimal form).
_SPEC_SLACK = 64

_DTYPES = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}


class LREState(NamedTuple):
    """The optimizer state: steps taken (for schedules), the small (k-sized) state in a fixed
    buffer, the n-sized buffers as arrays by name, and the steps skipped for a non-finite
    gradient or HVP (`skipped_steps`)."""

    count: jax.Array  # int32 scalar
    small: jax.Array  # uint8[capacity]: u64 byte count, the small state, zeros
    buffers: dict  # name -> array (vectors, n), in the parameters' dtype
    skipped: jax.Array  # int32 scalar


def skipped_steps(state: LREState) -> jax.Array:
    """How many steps were skipped because the gradient or an HVP was not finite (NaN or Inf):
    such a step leaves params and state unchanged, as `optax.apply_if_finite` does, instead of
    raising inside the compiled step, which would lose a donated state."""
    return state.skipped


_TARGETS = ("lre_xla_step", "lre_xla_probes")
# The sharded step (lre.jax_sharded) has no CUDA handler yet.
_CPU_ONLY_TARGETS = ("lre_xla_sharded_step",)


@functools.lru_cache(maxsize=None)
def _register() -> tuple[str, ...]:
    """Registers the handlers with XLA once per process and returns the platforms they were
    registered for. The CPU handlers always; the CUDA ones (`<name>_cuda`, exported by a library
    built with the cargo feature "cuda") only where the library exports them and jax has a CUDA
    platform, so a CPU-only install registers nothing for a GPU and prints nothing."""
    lib = _library.load()
    cuda = all(hasattr(lib, name + "_cuda") for name in _TARGETS) and _has_cuda()
    for name in _TARGETS + _CPU_ONLY_TARGETS:
        jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(getattr(lib, name)), platform="cpu")
        if cuda and name in _TARGETS:
            capsule = jax.ffi.pycapsule(getattr(lib, name + "_cuda"))
            jax.ffi.register_ffi_target(name, capsule, platform="CUDA")
    return ("cpu", "CUDA") if cuda else ("cpu",)


def _has_cuda() -> bool:
    """Whether jax has a CUDA platform with a device (jaxlib's CUDA plugin and a GPU)."""
    try:
        return bool(jax.devices("cuda"))
    except RuntimeError:
        return False


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


def _vector_buffers(opt: core.Optimizer) -> list:
    """The optimizer's n-sized buffers (name, shape (vectors, n), dtype), in layout order: the
    order of the custom calls' arrays."""
    return [(b.name, (b.cols, b.rows), b.dtype)
            for b in opt.state_layout() if b.kind == "vectors"]


def _state_from(opt: core.Optimizer, capacity: int, count: int) -> LREState:
    """The JAX state of a C optimizer: its n-sized buffers as arrays, the rest as a small state."""
    arrays = {name: np.zeros(shape, dtype) for name, shape, dtype in _vector_buffers(opt)}
    small = opt.lend(list(arrays.values()))
    if _PREFIX + len(small) > capacity:
        raise ValueError(f"state_capacity={capacity} is smaller than the small state "
                         f"({_PREFIX + len(small)} bytes)")
    buffer = np.zeros(capacity, np.uint8)
    buffer[:_PREFIX] = np.frombuffer(len(small).to_bytes(_PREFIX, "little"), np.uint8)
    buffer[_PREFIX:_PREFIX + len(small)] = np.frombuffer(small, np.uint8)
    return LREState(count=jnp.asarray(count, jnp.int32), small=jnp.asarray(buffer),
                    buffers={name: jnp.asarray(a) for name, a in arrays.items()},
                    skipped=jnp.asarray(0, jnp.int32))


def _header(small: bytes):
    """(spec, n) from a state's header (docs/state-format.md: magic, format version, library
    version, spec, n)."""
    at = 12
    skip = int.from_bytes(small[at:at + 4], "little")
    at += 4 + skip
    length = int.from_bytes(small[at:at + 4], "little")
    spec = small[at + 4:at + 4 + length].decode()
    at += 4 + length
    return spec, int.from_bytes(small[at:at + 8], "little")


def to_c_state(state: LREState) -> bytes:
    """The C library's state blob of `state` (for `lre.core.Optimizer.from_state`, the C++
    `lre::Optimizer::from_state`, Julia, or a file)."""
    buffer = np.asarray(state.small)
    if buffer.ndim != 1 or buffer.dtype != np.uint8 or buffer.size < _PREFIX:
        raise ValueError(f"not an LRE state buffer: {buffer.dtype}{list(buffer.shape)}")
    length = int.from_bytes(buffer[:_PREFIX].tobytes(), "little")
    if _PREFIX + length > buffer.size:
        raise ValueError(f"the state buffer says its small state has {length} bytes but holds "
                         f"{buffer.size - _PREFIX}")
    small = buffer[_PREFIX:_PREFIX + length].tobytes()
    with core.Optimizer(*_header(small)) as opt:
        names = [name for name, _, _ in _vector_buffers(opt)]
    arrays = [np.ascontiguousarray(state.buffers[name]) for name in names]
    return core.lent_state_blob(small, arrays)


def grad_and_hvp(loss: Callable[..., jax.Array], params: Any, *args: Any):
    """The gradient of `loss(params, *args)` and a function tangent -> H·tangent at `params`
    (forward-over-reverse; the linearization is computed once and reused for every probe)."""
    grads, hvp = jax.linearize(lambda p: jax.grad(loss)(p, *args), params)
    return grads, hvp


def _capacity_for(opt: core.Optimizer, state_capacity: Optional[int]) -> int:
    """The small state buffer's size: `state_capacity`, or by default the library's bound."""
    return state_capacity or _PREFIX + opt.small_state_bound() + _SPEC_SLACK


class _Init:
    """`init(params)`, knowing the spec and capacity, which `from_c_state` needs too."""

    def __init__(self, spec: str, state_capacity: Optional[int]):
        self.spec = spec
        self.state_capacity = state_capacity

    def _optimizer(self, params: Any) -> core.Optimizer:
        return core.Optimizer(_spec_with_dtype(self.spec, _working_dtype(params)),
                              _size(params))

    def _capacity(self, opt: core.Optimizer) -> int:
        return _capacity_for(opt, self.state_capacity)

    def __call__(self, params: Any) -> LREState:
        with self._optimizer(params) as opt:
            return _state_from(opt, self._capacity(opt), 0)

    def from_c_state(self, blob: bytes, params: Any) -> LREState:
        with self._optimizer(params) as opt:
            opt.load_state(blob)
            return _state_from(opt, self._capacity(opt), int(opt.get_param("step")))


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
    `state_capacity` is the small state buffer's size in bytes; by default the library's upper
    bound for this spec and parameter count (`lre_optimizer_small_state_bound`), which
    configurations with per-sample batches do not have.
    """
    _register()
    with core.Optimizer(spec, 1) as probe_opt:
        num_probes = int(probe_opt.get_param("num_probes"))
        spec_lr = probe_opt.get_param("lr")
        curvature = probe_opt.component("curvature")
        names = [name for name, _, _ in _vector_buffers(probe_opt)]

    def update(grads: Any, state: LREState, params: Any = None, *,
               hvp_fn: Optional[Callable[[Any], Any]] = None, **extra_args: Any):
        del extra_args  # meant for other members of an optax chain
        if params is None:
            raise ValueError("lre needs params: call update(grads, state, params)")
        dtype = _working_dtype(params)
        flat_grads, unravel = _flatten(grads, params, dtype, "grads")
        flat_params, _ = _flatten(params, params, dtype, "params")
        if (not isinstance(state, LREState) or state.small.dtype != jnp.uint8
                or state.small.ndim != 1 or sorted(state.buffers) != sorted(names)):
            raise TypeError("state must be the LREState that init returned")
        arrays = [state.buffers[name] for name in names]
        for name, a in zip(names, arrays):
            if a.ndim != 2 or a.shape[1] != flat_params.size:
                raise TypeError(f"state buffer {name} has shape {list(a.shape)}; expected "
                                f"[vectors, {flat_params.size}]")
        aliases = {i: i for i in range(1 + len(arrays))}
        state_shapes = [jax.ShapeDtypeStruct(state.small.shape, jnp.uint8)] + [
            jax.ShapeDtypeStruct(a.shape, a.dtype) for a in arrays]
        lr = learning_rate(state.count) if callable(learning_rate) else (
            spec_lr if learning_rate is None else learning_rate)
        small = state.small
        if num_probes:
            if hvp_fn is None:
                raise ValueError(f"curvature={curvature} needs Hessian-vector products: pass "
                                 "update(grads, state, params, hvp_fn=...), e.g. from "
                                 "lre.jax.grad_and_hvp(loss, params, *args)")
            small, *rest = jax.ffi.ffi_call(
                "lre_xla_probes",
                (*state_shapes, jax.ShapeDtypeStruct((num_probes, flat_params.size), dtype)),
                vmap_method="sequential",
                input_output_aliases=aliases,
            )(small, *arrays, flat_grads)
            arrays, probes = rest[:-1], rest[-1]
            hvps = jax.vmap(
                lambda v: _flatten(hvp_fn(unravel(v)), params, dtype, "hvp_fn's result")[0]
            )(probes)
        operands = [small, *arrays, flat_grads, flat_params, jnp.asarray(lr, dtype)]
        if num_probes:
            operands.append(hvps)
        small, *rest = jax.ffi.ffi_call(
            "lre_xla_step",
            (*state_shapes, jax.ShapeDtypeStruct(flat_params.shape, dtype),
             jax.ShapeDtypeStruct((), jnp.int32)),
            vmap_method="sequential",
            input_output_aliases=aliases,
        )(*operands)
        arrays, flat_updates, skipped = rest[:-2], rest[-2], rest[-1]
        # A skipped step (non-finite gradient or HVP) changed nothing and is not counted.
        return unravel(flat_updates), LREState(
            count=state.count + 1 - skipped, small=small, buffers=dict(zip(names, arrays)),
            skipped=state.skipped + skipped)

    return LRE(_Init(spec, state_capacity), update)
