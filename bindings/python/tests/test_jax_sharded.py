"""lre.jax_sharded: params sharded by rows inside shard_map over 4 CPU devices give the unsharded
lre.jax trajectory, with every shard's k-sized state bit-identical. tests/python.rs runs this file
in its own pytest process (the device count must be set before jax is imported)."""

import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_force_host_platform_device_count=4")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import pytest  # noqa: E402
from jax.sharding import Mesh, PartitionSpec as P  # noqa: E402

import lre.core  # noqa: E402
import lre.jax  # noqa: E402
import lre.jax_sharded  # noqa: E402

N = 48
STEPS = 50
LR = 0.0625
SPECS = ["", "basis=ggt(history_size=8); chain=[adam]", "basis=eigen(rank=6); chain=[adam]"]
TOLERANCE = {np.float64: 1e-10, np.float32: 1e-5}


def problem(dtype):
    rng = np.random.default_rng(7)
    x0 = jnp.asarray(rng.normal(size=N), dtype)
    scale = jnp.asarray(np.linspace(0.5, 4.0, N), dtype)
    return x0, scale


def gradient(x, scale):
    """Of 0.5·Σ scale·x² + 0.1·Σ x⁴: elementwise, so a shard computes its own rows."""
    return scale * x + 0.4 * x ** 3


def unsharded_run(spec, dtype, steps=STEPS):
    x, scale = problem(dtype)
    opt = lre.jax.lre(spec, learning_rate=LR)
    state = opt.init(x)

    @jax.jit
    def step(x, state):
        updates, state = opt.update(gradient(x, scale), state, x)
        return optax.apply_updates(x, updates), state

    for _ in range(steps):
        x, state = step(x, state)
    return np.asarray(x), state


def sharded_run(spec, dtype, shards, steps=STEPS, grad_fn=gradient, donate=False, **options):
    mesh = Mesh(np.array(jax.devices()[:shards]), ("d",))
    x, scale = problem(dtype)
    opt = lre.jax_sharded.lre_sharded(spec, learning_rate=LR, axis_name="d",
                                      num_shards=shards, **options)
    state = opt.init(x)
    specs = opt.state_specs()

    def local_step(x, scale, state):
        updates, state = opt.update(grad_fn(x, scale), state, x)
        return optax.apply_updates(x, updates), state

    step = jax.jit(jax.shard_map(local_step, mesh=mesh, in_specs=(P("d"), P("d"), specs),
                                 out_specs=(P("d"), specs)), donate_argnums=(2,) if donate else ())
    for _ in range(steps):
        x, state = step(x, scale, state)
    return np.asarray(x), state


def k_sized_state(row):
    """A shard's small state after its header (spec and n, which name the shard's rows) and
    without its checksum: the k-sized state, which every shard must hold bit for bit."""
    small = np.asarray(row).tobytes()
    small = small[8:8 + int.from_bytes(small[:8], "little")]
    at = 12
    at += 4 + int.from_bytes(small[at:at + 4], "little")  # library version
    at += 4 + int.from_bytes(small[at:at + 4], "little")  # spec
    return small[at + 8:-4]


def test_four_devices_are_simulated():
    assert len(jax.devices()) >= 4, jax.devices()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("shards", [2, 4])
def test_sharded_trajectory_equals_unsharded(spec, dtype, shards):
    expected, _ = unsharded_run(spec, dtype)
    got, state = sharded_run(spec, dtype, shards)
    x0, _ = problem(dtype)
    assert np.max(np.abs(expected - np.asarray(x0))) > 1e-2, "the run should move the params"
    error = np.max(np.abs(got - expected)) / np.max(np.abs(expected))
    assert error <= TOLERANCE[dtype], f"relative difference {error:.3g}"
    assert np.all(np.asarray(state.count) == STEPS)
    states = [k_sized_state(row) for row in state.small]
    assert len(states[0]) > 100
    assert all(s == states[0] for s in states[1:]), "the shards' k-sized states differ"


def test_a_donated_state_is_stepped_in_place_to_the_same_bits():
    # Donated, the custom call's aborted rounds roll back the very arrays it steps.
    kept, kept_state = sharded_run(SPECS[0], np.float64, 4, steps=10)
    donated, donated_state = sharded_run(SPECS[0], np.float64, 4, steps=10, donate=True)
    np.testing.assert_array_equal(donated, kept)
    np.testing.assert_array_equal(np.asarray(donated_state.small), np.asarray(kept_state.small))
    for name, buffer in kept_state.buffers.items():
        np.testing.assert_array_equal(np.asarray(donated_state.buffers[name]), np.asarray(buffer))


def test_a_non_finite_gradient_on_one_shard_skips_the_step_on_every_shard():
    def poisoned(x, scale):
        g = gradient(x, scale)
        first = jax.lax.axis_index("d") == 0
        return jnp.where(first, g.at[0].set(jnp.nan), g)

    x0, _ = problem(np.float64)
    got, state = sharded_run(SPECS[1], np.float64, 4, steps=3, grad_fn=poisoned)
    np.testing.assert_array_equal(got, np.asarray(x0))
    assert np.all(np.asarray(state.skipped) == 3)
    assert np.all(np.asarray(state.count) == 0)


def test_a_sums_buffer_too_small_is_refused_with_a_clear_error():
    with pytest.raises(Exception, match="LRE_ERR_BUFFER_TOO_SMALL.*sums_capacity"):
        sharded_run(SPECS[1], np.float64, 2, steps=5, sums_capacity=4)


def test_hessian_vector_curvatures_are_refused():
    with pytest.raises(ValueError, match="Hessian-vector products"):
        lre.jax_sharded.lre_sharded("curvature=full_hutchinson_hessian; basis=eigen",
                                    axis_name="d", num_shards=2)


def test_without_x64_the_step_is_refused():
    jax.config.update("jax_enable_x64", False)
    try:
        with pytest.raises(ValueError, match="jax_enable_x64"):
            sharded_run(SPECS[1], np.float32, 2, steps=1)
    finally:
        jax.config.update("jax_enable_x64", True)
