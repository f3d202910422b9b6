"""LRE with parameters sharded by rows inside `jax.shard_map`: one optimizer over all shards,
each shard stepping its own rows, the step's reductions over n summed by `jax.lax.psum`.

    opt = lre.jax_sharded.lre_sharded(spec, learning_rate=1e-2, axis_name="d", num_shards=4)
    state = opt.init(params)                      # global params, outside shard_map
    specs = opt.state_specs()                     # PartitionSpecs of the state
    step = jax.shard_map(local_step, mesh=mesh, in_specs=(P("d"), specs), out_specs=(P("d"), specs))

* Inside `shard_map`, `opt.update(grads, state, params)` takes the shard's local grads, state and
  params. The optimizer's global vector is the shards' local vectors one after another (each the
  float leaves of the local pytree, flattened as in `lre.jax`); for params that are one vector
  sharded by rows that is the vector itself. Every float leaf's leading axis is split evenly
  (`shard_map` splits evenly).
* A step runs in rounds (src/ffi/xla/sharded.rs): the custom call replays the sums reduced so far
  and hands out its partial sums at the first reduction without one; `psum` adds them and the
  call runs again, until a call completes the step. Each round re-runs the shard's step up to
  that reduction, so a step with R reductions (3 for the default) takes R + 1 rounds.
  Every shard gets the same sums and makes the same reductions, so all finish together, even
  when the number of reductions depends on the data.
* The sums are float64: `jax_enable_x64` must be on (the parameters may be float32).
* The state is `lre.jax.LREState` with every part split over the shards: `small` is
  (num_shards, capacity) (each shard's small state records its rows), `count` and `skipped`
  are (num_shards,), each buffer (vectors, n) is split by columns like the params.
* Not supported: curvatures that need Hessian-vector products, and bases that keep n-sized data
  of their own (`full_matrix`, `identity`, refused by the library when sharded).
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import PartitionSpec

from . import core
from .jax import (LREState, _capacity_for, _flatten, _register, _size, _spec_with_dtype,
                  _state_from, _vector_buffers, _working_dtype)

# Room for the float64 sums of one step's reductions; the default GGT step (history 100) uses
# 306. A step that needs more fails with LRE_ERR_BUFFER_TOO_SMALL.
DEFAULT_SUMS_CAPACITY = 4096


def _shard_spec(spec: str, dtype: np.dtype, n: int, shard: int, n_local: int) -> str:
    return (f"{_spec_with_dtype(spec, dtype)}; global_ndim={n}; "
            f"shard_offset={shard * n_local}")


class LREShardedInit:
    """`init(params)` on the global params, outside `shard_map`."""

    def __init__(self, spec: str, num_shards: int, state_capacity: Optional[int]):
        self.spec = spec
        self.num_shards = num_shards
        self.state_capacity = state_capacity

    def __call__(self, params: Any) -> LREState:
        dtype = _working_dtype(params)
        n = _size(params)
        for leaf in jax.tree_util.tree_leaves(params):
            if jnp.issubdtype(leaf.dtype, jnp.floating) and (
                    leaf.ndim == 0 or leaf.shape[0] % self.num_shards):
                raise ValueError(f"a params leaf of shape {list(leaf.shape)} cannot be split "
                                 f"evenly by rows over {self.num_shards} shards")
        n_local = n // self.num_shards
        opts = [core.Optimizer(_shard_spec(self.spec, dtype, n, r, n_local), n_local)
                for r in range(self.num_shards)]
        try:
            capacity = max(_capacity_for(opt, self.state_capacity) for opt in opts)
            shards = [_state_from(opt, capacity, 0) for opt in opts]
        finally:
            for opt in opts:
                opt.close()
        return LREState(
            count=jnp.zeros(self.num_shards, jnp.int32),
            small=jnp.stack([s.small for s in shards]),
            buffers={name: jnp.concatenate([s.buffers[name] for s in shards], axis=1)
                     for name in shards[0].buffers},
            skipped=jnp.zeros(self.num_shards, jnp.int32))


class LREShardedTransformation(optax.GradientTransformationExtraArgs):
    """`init` (global params, outside `shard_map`), `update` (local, inside it) and
    `state_specs` (the state's PartitionSpecs for `shard_map`'s in_specs and out_specs)."""

    __slots__ = ()

    def state_specs(self) -> LREState:
        """PartitionSpecs of the state over the mesh axis: every part split over the shards."""
        axis = self.update.axis_name
        return LREState(count=PartitionSpec(axis), small=PartitionSpec(axis),
                        buffers={name: PartitionSpec(None, axis) for name in self.update.names},
                        skipped=PartitionSpec(axis))


class _ShardedUpdate:
    """`update(grads, state, params)` of one shard, inside `shard_map`."""

    def __init__(self, names: list, axis_name: str, learning_rate: Any, spec_lr: float,
                 sums_capacity: int):
        self.names = names
        self.axis_name = axis_name
        self.learning_rate = learning_rate
        self.spec_lr = spec_lr
        self.sums_capacity = sums_capacity

    def __call__(self, grads: Any, state: LREState, params: Any = None, **extra_args: Any):
        del extra_args  # meant for other members of an optax chain
        if params is None:
            raise ValueError("lre_sharded needs params: call update(grads, state, params)")
        if not jax.config.jax_enable_x64:
            raise ValueError("lre_sharded all-reduces float64 sums: enable jax_enable_x64 "
                             "(the parameters may stay float32)")
        dtype = _working_dtype(params)
        flat_grads, unravel = _flatten(grads, params, dtype, "grads")
        flat_params, _ = _flatten(params, params, dtype, "params")
        if (not isinstance(state, LREState) or state.small.ndim != 2
                or state.small.shape[0] != 1 or sorted(state.buffers) != sorted(self.names)):
            raise TypeError("state must be this shard's part of the LREState that init "
                            "returned (shard_map with in_specs=opt.state_specs())")
        arrays = [state.buffers[name] for name in self.names]
        count = state.count[0]
        lr = self.learning_rate(count) if callable(self.learning_rate) else (
            self.spec_lr if self.learning_rate is None else self.learning_rate)
        lr = jnp.asarray(lr, dtype)
        state_shapes = [jax.ShapeDtypeStruct(state.small.shape[1:], jnp.uint8)] + [
            jax.ShapeDtypeStruct(a.shape, a.dtype) for a in arrays]
        capacity = self.sums_capacity
        call = jax.ffi.ffi_call(
            "lre_xla_sharded_step",
            (*state_shapes, jax.ShapeDtypeStruct(flat_params.shape, dtype),
             jax.ShapeDtypeStruct((), jnp.int32), jax.ShapeDtypeStruct((capacity,), jnp.float64),
             jax.ShapeDtypeStruct((), jnp.int32), jax.ShapeDtypeStruct((), jnp.int32)),
            vmap_method="sequential",
            input_output_aliases={i: i for i in range(1 + len(arrays))},
        )

        def round_(carry):
            small, arrays, sums, filled, _, _, _ = carry
            small, *rest = call(small, *arrays, flat_grads, flat_params, lr, sums, filled)
            arrays, (updates, skipped, partial, filled, done) = rest[:-5], rest[-5:]
            sums = sums + jax.lax.psum(partial, self.axis_name)
            return small, arrays, sums, filled, updates, skipped, done

        # The first round runs outside the loop: its results give the loop's carry the types
        # (and the per-shard variance) that later rounds return.
        first = round_((state.small[0], arrays, jnp.zeros(capacity, jnp.float64),
                        jnp.asarray(0, jnp.int32), None, None, None))
        small, arrays, _, _, updates, skipped, _ = jax.lax.while_loop(
            lambda carry: carry[-1] == 0, round_, first)
        # A skipped step (non-finite gradient) changed nothing and is not counted.
        return unravel(updates), LREState(
            count=state.count + 1 - skipped, small=small[None],
            buffers=dict(zip(self.names, arrays)), skipped=state.skipped + skipped)


def lre_sharded(
    spec: str = "",
    learning_rate: Union[float, Callable[[jax.Array], jax.Array], None] = None,
    *,
    axis_name: str,
    num_shards: int,
    state_capacity: Optional[int] = None,
    sums_capacity: int = DEFAULT_SUMS_CAPACITY,
) -> LREShardedTransformation:
    """A sharded LRE optimizer for `shard_map` over the mesh axis `axis_name` of `num_shards`
    devices (see the module documentation). `spec`, `learning_rate` and `state_capacity` are
    as in `lre.jax.lre`; `sums_capacity` is the float64 room for one step's reduced sums."""
    _register()
    with core.Optimizer(spec, 1) as probe_opt:
        if int(probe_opt.get_param("num_probes")):
            raise ValueError(f"curvature={probe_opt.component('curvature')} needs "
                             "Hessian-vector products, which lre_sharded does not support")
        spec_lr = probe_opt.get_param("lr")
        names = [name for name, _, _ in _vector_buffers(probe_opt)]
    return LREShardedTransformation(
        LREShardedInit(spec, num_shards, state_capacity),
        _ShardedUpdate(names, axis_name, learning_rate, spec_lr, sums_capacity))
