"""lre.jax: the optax transformation running as XLA custom calls — against lre.core bit for bit,
under jit, vmap and donation, with Hessian-vector products, inside optax.chain, and exchanging
state with the C++ wrapper."""

import concurrent.futures
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lre
import lre.core
import lre.jax

SPEC = "basis=ggt(history_size=4); chain=[adam]"
LR = 0.125  # exactly representable in float32, so every binding sees the same learning rate


def make_params(seed=0):
    rng = np.random.default_rng(seed)
    return {"w": jnp.asarray(rng.normal(size=(3, 4)), jnp.float32),
            "b": jnp.asarray(rng.normal(size=5), jnp.float32)}


def quadratic_loss(p):
    scale = jnp.arange(1.0, 6.0, dtype=p["b"].dtype)
    return 0.5 * jnp.sum(p["w"] ** 2) + 0.5 * jnp.sum(scale * p["b"] ** 2)


def flat(tree):
    return np.asarray(jax.flatten_util.ravel_pytree(tree)[0])


def plain_loss(p):
    """0.5·|x|², whose gradient is x exactly: what resume.cpp uses."""
    return 0.5 * sum(jnp.sum(leaf ** 2) for leaf in jax.tree_util.tree_leaves(p))


def jitted_step(opt, donate=False, loss=quadratic_loss):
    def step(params, state):
        grads = jax.grad(loss)(params)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, updates
    return jax.jit(step, donate_argnums=(1,) if donate else ())


def test_jit_matches_core_bit_for_bit():
    opt = lre.jax.lre(SPEC, learning_rate=LR)
    params = make_params()
    state = opt.init(params)
    step = jitted_step(opt)
    core = lre.core.Optimizer(SPEC + f"; lr={LR}", flat(params).size)
    for _ in range(12):
        grads = flat(jax.grad(quadratic_loss)(params))
        x = flat(params).copy()
        before = x.copy()
        core.step(x, grads)
        params, state, updates = step(params, state)
        np.testing.assert_array_equal(flat(updates), x - before)
    assert lre.jax.to_c_state(state) == core.state()
    assert int(state.count) == 12
    assert float(quadratic_loss(params)) < 0.5 * float(quadratic_loss(make_params()))


@pytest.mark.parametrize("basis", ["nystrom", "randomized_eigen", "random", "hebbian_learning"])
def test_bases_with_one_matrix_of_several_buffers_step_in_arrays_like_core(basis):
    """These bases keep working columns and a second buffer in one matrix, or allocate it on
    their first update; their state is still arrays stepped in place, equal to lre.core's."""
    spec = f"basis={basis}(rank=3); chain=[adam]"
    opt = lre.jax.lre(spec, learning_rate=LR)
    params = make_params()
    state = opt.init(params)
    step = jitted_step(opt)
    core = lre.core.Optimizer(spec + f"; lr={LR}", flat(params).size)
    for _ in range(6):
        x = flat(params).copy()
        before = x.copy()
        core.step(x, flat(jax.grad(quadratic_loss)(params)))
        params, state, updates = step(params, state)
        np.testing.assert_array_equal(flat(updates), x - before)
    assert lre.jax.to_c_state(state) == core.state()


def test_float64_params_match_core_f64():
    with jax.enable_x64(True):
        opt = lre.jax.lre(SPEC, learning_rate=0.1)
        params = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), make_params())
        state = opt.init(params)
        step = jitted_step(opt)
        core = lre.core.Optimizer(SPEC + "; lr=0.1; dtype=f64", 17)
        for _ in range(5):
            grads = flat(jax.grad(quadratic_loss)(params))
            x = flat(params).copy()
            before = x.copy()
            core.step(x, grads)
            params, state, updates = step(params, state)
            assert flat(updates).dtype == np.float64
            np.testing.assert_array_equal(flat(updates), x - before)
        assert lre.jax.to_c_state(state) == core.state()


def test_vmap_runs_independent_optimizers():
    opt = lre.jax.lre(SPEC, learning_rate=LR)
    batch = [make_params(1), make_params(2)]
    stacked = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *batch)
    states = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *[opt.init(p) for p in batch])
    step = jax.jit(jax.vmap(jitted_step(opt)))
    singles = [(p, opt.init(p)) for p in batch]
    single_step = jitted_step(opt)
    for _ in range(5):
        stacked, states, _ = step(stacked, states)
        singles = [single_step(p, s)[:2] for p, s in singles]
    for i, (p, s) in enumerate(singles):
        np.testing.assert_array_equal(flat(p), flat(jax.tree_util.tree_map(lambda a: a[i], stacked)))
        stacked_state = jax.tree_util.tree_map(lambda a: a[i], states)
        assert lre.jax.to_c_state(s) == lre.jax.to_c_state(stacked_state)


def test_donated_state_is_updated_in_place():
    opt = lre.jax.lre(SPEC, learning_rate=LR)
    params = make_params()
    state = opt.init(params)
    reference = opt.init(params)
    donating, plain = jitted_step(opt, donate=True), jitted_step(opt)
    p_ref = params
    for _ in range(3):
        old = state
        params, state, _ = donating(params, state)
        assert old.small.is_deleted(), "the donated state buffer should have been reused"
        assert old.buffers["basis/window"].is_deleted(), "the donated window should be reused"
        p_ref, reference, _ = plain(p_ref, reference)
    assert lre.jax.to_c_state(state) == lre.jax.to_c_state(reference)
    lowered = jax.jit(lambda p, s: opt.update(p, s, p), donate_argnums=(1,)).lower(params, state)
    # The result lives in the donated buffer's memory.
    before = [a.unsafe_buffer_pointer() for a in (state.small, state.buffers["basis/window"])]
    params, state, _ = donating(params, state)
    after = [a.unsafe_buffer_pointer() for a in (state.small, state.buffers["basis/window"])]
    assert after == before
    # The custom call writes its state results over its state operands.
    for i in range(3):  # the small state, the covariance's pending gradients, the window
        alias = f"output_operand_alias<output_tuple_indices = [{i}], operand_index = {i}"
        assert alias in lowered.as_text()


def test_a_state_stepped_twice_gives_the_same_result_twice():
    # The calls are pure: a state used twice must not see the first use's effect.
    opt = lre.jax.lre(SPEC, learning_rate=LR)
    params = make_params()
    step = jitted_step(opt)
    params, state, _ = step(params, opt.init(params))
    first = step(params, state)
    second = step(params, state)
    np.testing.assert_array_equal(flat(first[2]), flat(second[2]))
    assert lre.jax.to_c_state(first[1]) == lre.jax.to_c_state(second[1])


def test_the_window_is_an_array_holding_the_gradients():
    # GGT (covariance curvature) keeps the last history_size gradients as rows of its window.
    opt = lre.jax.lre(SPEC, learning_rate=LR)
    params = make_params()
    step = jitted_step(opt)
    state = opt.init(params)
    window = state.buffers["basis/window"]
    assert window.shape == (4, 17) and window.dtype == jnp.float32
    for _ in range(6):
        grads = jax.grad(quadratic_loss)(params)
        params, state, _ = step(params, state)
        rows = np.asarray(state.buffers["basis/window"])
        last = flat(grads)
        assert any(np.array_equal(row, last) for row in rows), "the last gradient is a window row"


def test_one_state_stepped_from_many_threads_forks_into_equal_successors():
    # No optimizer handle is shared, so concurrent steps of one state are neither refused nor
    # mixed up: each returns what a lone step from that state returns.
    opt = lre.jax.lre(SPEC, learning_rate=LR)
    params = make_params()
    step = jitted_step(opt)
    params, state, _ = step(params, opt.init(params))
    params, state, _ = step(params, state)
    alone = step(params, state)
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        forks = list(pool.map(lambda _: jax.block_until_ready(step(params, state)), range(16)))
    for fork in forks:
        np.testing.assert_array_equal(flat(fork[2]), flat(alone[2]))
        assert lre.jax.to_c_state(fork[1]) == lre.jax.to_c_state(alone[1])


def test_edited_state_bytes_are_detected():
    opt = lre.jax.lre(SPEC, learning_rate=LR)
    params = make_params()
    step = jitted_step(opt)
    params, state, _ = step(params, opt.init(params))
    edited = np.asarray(state.small).copy()
    edited[100] ^= 1  # inside the small state
    with pytest.raises(Exception, match="LRE_ERR_STATE.*checksum"):
        jax.block_until_ready(step(params, state._replace(small=jnp.asarray(edited))))


def test_state_round_trips_through_host_arrays_like_a_checkpoint():
    # What orbax or equinox do with a pytree of arrays: copy the leaves out and back in.
    opt = lre.jax.lre(SPEC, learning_rate=LR)
    params = make_params()
    step = jitted_step(opt)
    params, state, _ = jax_steps_with(step, params, opt.init(params), 3)
    # Saved as plain numpy arrays with jax.tree_util (what orbax does with any pytree).
    saved = jax.tree_util.tree_map(np.asarray, (params, state))
    restored = jax.tree_util.tree_map(jnp.asarray, saved)
    straight, _, _ = jax_steps_with(step, params, state, 4)
    resumed, _, _ = jax_steps_with(step, *restored, 4)
    np.testing.assert_array_equal(flat(straight), flat(resumed))


def jax_steps_with(step, params, state, steps):
    updates = None
    for _ in range(steps):
        params, state, updates = step(params, state)
    return params, state, updates


def test_hessian_curvature_inside_one_jit():
    spec = "curvature=full_hutchinson_hessian(orthogonalize=true); chain=[l_inv]"
    opt = lre.jax.lre(spec, learning_rate=1.0)
    params = make_params()
    state = opt.init(params)

    @jax.jit
    def step(params, state):
        grads, hvp = lre.jax.grad_and_hvp(quadratic_loss, params)
        updates, state = opt.update(grads, state, params, hvp_fn=hvp)
        return optax.apply_updates(params, updates), state

    start = float(quadratic_loss(params))
    for _ in range(30):
        params, state = step(params, state)
    assert float(quadratic_loss(params)) < 1e-6 * start  # a Newton method on a quadratic
    with pytest.raises(ValueError, match="hvp_fn"):
        opt.update(jax.grad(quadratic_loss)(params), state, params)


@pytest.mark.parametrize("spec", [
    "curvature=full_hutchinson_hessian; chain=[adam, l_inv]",
    "curvature=bfgs; basis=eigen(rank=6); chain=[full_matrix_bfgs_adam]",
    "curvature=sr1(z=mixed); symmetrize=false; chain=[hutchinson_adam]",
])
def test_probes_and_products_match_core_split_step(spec):
    opt = lre.jax.lre(spec, learning_rate=LR)
    params = make_params()
    state = opt.init(params)
    scale = np.concatenate([np.arange(1.0, 6.0), np.ones(12)]).astype(np.float32)  # b first
    core = lre.core.Optimizer(spec + f"; lr={LR}", scale.size)
    for _ in range(8):
        grads = jax.grad(quadratic_loss)(params)
        _, hvp = lre.jax.grad_and_hvp(quadratic_loss, params)
        updates, state = jax.jit(lambda g, s, p: opt.update(g, s, p, hvp_fn=hvp))(grads, state, params)
        x = flat(params).copy()
        before = x.copy()
        count = core.begin(flat(grads))
        probes = core.probes()
        core.finish(x, (probes * scale).astype(np.float32).reshape(count, -1))
        np.testing.assert_array_equal(flat(updates), x - before)
        params = optax.apply_updates(params, updates)
    assert lre.jax.to_c_state(state) == core.state()


def test_chain_with_schedule_feeds_the_learning_rate_at_run_time():
    schedule = optax.linear_schedule(0.5, 0.25, transition_steps=4)
    opt = optax.chain(optax.clip_by_global_norm(10.0), lre.jax.lre(SPEC, learning_rate=schedule))
    params = make_params()
    state = opt.init(params)

    @jax.jit
    def step(params, state):
        updates, state = opt.update(jax.grad(quadratic_loss)(params), state, params)
        return optax.apply_updates(params, updates), state

    for t in range(6):
        params, state = step(params, state)
        lre_state = state[1]
        saved_lr = lre.core.Optimizer.from_state(lre.jax.to_c_state(lre_state)).get_param("lr")
        assert saved_lr == pytest.approx(float(schedule(t)), rel=1e-6)
    assert int(state[1].count) == 6


def _run_with_a_bad_step(opt, bad_at, bad, hvp=False, steps=8):
    """Steps `steps` times with the state donated; with `bad_at`, first steps once more at that
    point with `bad` applied to the gradient (or, with `hvp`, to the HVP) and checks that the
    step was skipped: zero updates and the old state's buffer reused."""
    def update(params, state, poison):
        grads, hvp_fn = lre.jax.grad_and_hvp(quadratic_loss, params)
        if hvp:
            hvp_fn = (lambda f: lambda t: jax.tree_util.tree_map(poison, f(t)))(hvp_fn)
        else:
            grads = jax.tree_util.tree_map(poison, grads)
        return opt.update(grads, state, params, hvp_fn=hvp_fn if hvp else None)

    step = jax.jit(update, static_argnums=(2,), donate_argnums=(1,))
    params = make_params()
    state = opt.init(params)
    for t in range(steps):
        if t == bad_at:
            old = state
            updates, state = step(params, state, bad)
            assert old.small.is_deleted(), "the donated state should have been reused"
            assert all(not np.any(np.asarray(u)) for u in jax.tree_util.tree_leaves(updates))
        updates, state = step(params, state, _unchanged)
        params = optax.apply_updates(params, updates)
    return params, state


def _unchanged(a):
    return a


@pytest.mark.parametrize("spec, hvp", [
    (SPEC, False),
    ("curvature=full_hutchinson_hessian(orthogonalize=true); chain=[adam, l_inv]", True),
])
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_a_non_finite_step_is_skipped_and_the_donated_state_survives(spec, hvp, value):
    opt = lre.jax.lre(spec, learning_rate=LR)
    clean_params, clean = _run_with_a_bad_step(opt, None, None, hvp)
    bad = lambda a: a.at[(0,) * a.ndim].set(value)  # noqa: E731
    params, state = _run_with_a_bad_step(opt, 3, bad, hvp)
    np.testing.assert_array_equal(flat(params), flat(clean_params))
    assert lre.jax.to_c_state(state) == lre.jax.to_c_state(clean)
    assert int(state.count) == int(clean.count) == 8  # the skipped step is not counted
    assert int(lre.jax.skipped_steps(state)) == 1 and int(lre.jax.skipped_steps(clean)) == 0


def test_mixed_dtype_trees_step_floats_in_float32_and_leave_integers():
    rng = np.random.default_rng(4)
    params = {"a": jnp.asarray(rng.normal(size=6), jnp.bfloat16),
              "b": jnp.asarray(rng.normal(size=(2, 3)), jnp.float16),
              "c": jnp.asarray(rng.normal(size=4), jnp.float32),
              "steps": jnp.arange(3, dtype=jnp.int32)}
    floats = ["a", "b", "c"]
    opt = lre.jax.lre(SPEC, learning_rate=LR)
    state = opt.init(params)
    core = lre.core.Optimizer(SPEC + f"; lr={LR}", 16)
    step = jax.jit(opt.update)
    for _ in range(4):
        grads = {k: (v * 2 if k in floats else v) for k, v in params.items()}
        x = np.concatenate([np.ravel(np.asarray(params[k], np.float32)) for k in floats])
        g = np.concatenate([np.ravel(np.asarray(grads[k], np.float32)) for k in floats])
        before = x.copy()
        core.step(x, g)
        updates, state = step(grads, state, params)
        assert {k: u.dtype for k, u in updates.items()} == {k: p.dtype for k, p in params.items()}
        np.testing.assert_array_equal(updates["steps"], np.zeros(3, np.int32))
        expected = x - before
        at = 0
        for k in floats:
            size = params[k].size
            want = expected[at:at + size].reshape(params[k].shape).astype(params[k].dtype)
            np.testing.assert_array_equal(np.asarray(updates[k]), np.asarray(want))
            at += size
        params = optax.apply_updates(params, updates)
    assert lre.jax.to_c_state(state) == core.state()


def test_wrong_inputs_are_refused_clearly():
    opt = lre.jax.lre(SPEC, learning_rate=LR)
    params = make_params()
    state = opt.init(params)
    grads = jax.grad(quadratic_loss)(params)
    with pytest.raises(ValueError, match="15 floating-point elements but params have 17"):
        opt.update({"w": grads["w"], "b": grads["b"][:3]}, state, params)
    with pytest.raises(ValueError, match="structure"):
        opt.update({"w": grads["w"]}, state, params)
    with pytest.raises(TypeError, match="int32"):
        opt.update(jax.tree_util.tree_map(lambda g: g.astype(jnp.int32), grads), state, params)
    with pytest.raises(ValueError, match="params"):
        opt.update(grads, state)
    with pytest.raises(lre.core.LREError, match="LRE_ERR_SPEC"):
        lre.jax.lre("basis=nonsense")
    with pytest.raises(TypeError, match="dtype=f64 but the parameters are float32"):
        lre.jax.lre("DType = f64").init(params)


def test_library_errors_reach_python_with_status_and_message():
    # The state of a float32 optimizer stepped with float64 arrays: only the handler can tell.
    opt = lre.jax.lre(SPEC, learning_rate=LR)
    state = opt.init(make_params())
    with jax.enable_x64(True):
        params = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), make_params())
        with pytest.raises(Exception, match="LRE_ERR_STATE: the state has dtype=f32"):
            jax.block_until_ready(jitted_step(opt)(params, state))


def test_too_small_capacity_fails_with_the_needed_size_and_keeps_the_state():
    opt = lre.jax.lre("basis=ggt(history_size=8)", learning_rate=LR,
                      state_capacity=len(lre.core.Optimizer("basis=ggt(history_size=8)", 17).state()) + 200)
    params = make_params()
    state = opt.init(params)
    step = jitted_step(opt)
    with pytest.raises(Exception, match="LRE_ERR_BUFFER_TOO_SMALL.*state_capacity") as info:
        for _ in range(8):
            params, state, _ = step(params, state)
    assert "needs" in str(info.value)
    lre.core.Optimizer.from_state(lre.jax.to_c_state(state))  # the last good state is intact


def test_default_capacity_is_the_library_bound():
    opt = lre.jax.lre(SPEC)
    params = make_params()
    with lre.core.Optimizer(SPEC, 17) as core:
        assert opt.init(params).small.shape == (8 + core.small_state_bound() + 64,)
    with pytest.raises(lre.core.LREError, match="LRE_ERR_UNSUPPORTED"):
        lre.jax.lre("curvature=empirical_fisher; chain=[natural_gradient]").init(params)


# --- State exchange with the C++ wrapper -------------------------------------------------------

def run_cpp(program, source, params, steps, tmp_path):
    (tmp_path / "params.in").write_bytes(flat(params).astype(np.float32).tobytes())
    subprocess.run([str(program), source, str(tmp_path / "params.in"), str(steps),
                    str(tmp_path / "state.out"), str(tmp_path / "params.out")], check=True)
    x = np.frombuffer((tmp_path / "params.out").read_bytes(), np.float32)
    return x, (tmp_path / "state.out").read_bytes()


def jax_steps(opt, params, state, steps):
    return jax_steps_with(jitted_step(opt, loss=plain_loss), params, state, steps)[:2]


def test_a_jax_run_resumes_in_cpp(resume_program, tmp_path):
    opt = lre.jax.lre(SPEC + f"; lr={LR}")
    params, state = jax_steps(opt, make_params(), opt.init(make_params()), 6)
    (tmp_path / "jax.state").write_bytes(lre.jax.to_c_state(state))
    x_cpp, blob_cpp = run_cpp(resume_program, "@" + str(tmp_path / "jax.state"), params, 5, tmp_path)
    params, state = jax_steps(opt, params, state, 5)
    np.testing.assert_array_equal(x_cpp, flat(params))
    assert blob_cpp == lre.jax.to_c_state(state)


def test_a_cpp_run_resumes_in_jax(resume_program, tmp_path):
    spec = SPEC + f"; lr={LR}"
    x6, blob6 = run_cpp(resume_program, spec, make_params(), 6, tmp_path)
    x11, blob11 = run_cpp(resume_program, spec, make_params(), 11, tmp_path)
    opt = lre.jax.lre(spec)
    _, unravel = jax.flatten_util.ravel_pytree(make_params())
    params = unravel(jnp.asarray(x6))
    state = opt.from_c_state(blob6, params)
    assert int(state.count) == 6
    params, state = jax_steps(opt, params, state, 5)
    np.testing.assert_array_equal(flat(params), x11)
    assert lre.jax.to_c_state(state) == blob11
    with pytest.raises(lre.core.LREError, match="history_size"):
        lre.jax.lre("basis=ggt(history_size=9)").from_c_state(blob6, params)


def test_weight_decay_key_is_decoupled_and_the_optax_recipes_are_as_documented():
    wd = 0.25
    params = make_params()
    grads = jax.grad(quadratic_loss)(params)
    x = flat(params)

    def first_updates(opt):
        return flat(opt.update(grads, opt.init(params), params)[0])

    plain = first_updates(lre.jax.lre(SPEC, learning_rate=LR))
    decayed = first_updates(lre.jax.lre(SPEC + f"; weight_decay={wd}", learning_rate=LR))
    np.testing.assert_allclose(decayed - plain, -LR * wd * x, rtol=0, atol=1e-6)
    # The documented optax equivalent for a constant lr: decay added after LRE, scaled by -lr.
    recipe = optax.chain(lre.jax.lre(SPEC, learning_rate=LR), optax.add_decayed_weights(-LR * wd))
    np.testing.assert_allclose(first_updates(recipe), decayed, rtol=0, atol=1e-6)
    # The naive chain adds +wd·x: the wrong sign and no lr.
    naive = optax.chain(lre.jax.lre(SPEC, learning_rate=LR), optax.add_decayed_weights(wd))
    np.testing.assert_allclose(first_updates(naive) - plain, wd * x, rtol=0, atol=1e-6)


def test_a_cpu_only_install_registers_the_cpu_handlers_and_skips_cuda_silently():
    """The library exports the CUDA handlers (built with the "cuda" feature), but jax here has
    no CUDA platform: registration, in a fresh process with warnings as errors, registers the
    CPU handlers only and prints nothing; a step then runs on the CPU."""
    lib = lre._library.load()
    assert hasattr(lib, "lre_xla_step_cuda") and hasattr(lib, "lre_xla_probes_cuda")
    assert not lre.jax._has_cuda()
    script = (
        "import jax, jax.numpy as jnp, lre.jax\n"
        "print(lre.jax._register())\n"
        "opt = lre.jax.lre('basis=ggt(history_size=2); chain=[adam]', learning_rate=0.5)\n"
        "p = jnp.ones(3, jnp.float32)\n"
        "u, _ = jax.jit(opt.update)(p, opt.init(p), p)\n"
        "print(bool(jnp.all(jnp.isfinite(u))) and bool(jnp.any(u != 0)))\n"
    )
    done = subprocess.run([sys.executable, "-W", "error", "-c", script],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["('cpu',)", "True"]
    assert done.stderr == ""
