"""Tests of the numpy binding against the built library (LRE_LIBRARY or the bundled liblre.so)."""

import copy
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import lre
from lre import LREError, Optimizer, Status, _library

REPO = Path(__file__).resolve().parents[3]
N = 16
D = np.linspace(1, 10, N)  # f(x) = ½ Σ d_i x_i², so grad = d·x and H = diag(d)
# A Newton method in the Hessian's eigenbasis: converges on the quadratic in about N steps.
HVP_SPEC = (
    "curvature=full_hutchinson_hessian(orthogonalize=true); symmetrize=false; chain=[l_inv]; lr=1"
)


def loss(x):
    return 0.5 * float(np.sum(D * x.astype(np.float64) ** 2))


def grad(x):
    return (D * x).astype(x.dtype)


def hvp(v):
    return (D * v).astype(v.dtype)


def run(opt, x, steps, with_hvp=False):
    for _ in range(steps):
        opt.step(x, grad(x), hvp if with_hvp else None)


def test_versions_agree():
    def version_in(path):
        return re.search(r'^version = "(.+)"', (REPO / path).read_text(), re.M).group(1)

    cargo, pyproject = version_in("Cargo.toml"), version_in("bindings/python/pyproject.toml")
    assert lre.__version__ == lre.version() == cargo == pyproject
    assert lre.abi_version() == _library.ABI_VERSION


def test_every_header_function_and_status_is_declared():
    header = (REPO / "include/lre.h").read_text()
    functions = set(re.findall(r"^[\w ]+?\**\s*\b(lre_\w+)\(", header, re.M))
    assert functions == set(_library.SIGNATURES)
    statuses = re.findall(r"^\s*(LRE_(?:OK|ERR_\w+)) = (\d+),", header, re.M)
    statuses = {name: int(value) for name, value in statuses}
    assert statuses == {s.name: s.value for s in Status}
    assert int(re.search(r"#define LRE_ABI_VERSION (\d+)", header).group(1)) == _library.ABI_VERSION


def test_default_spec_reduces_the_loss():
    x = np.ones(N, np.float32)
    with Optimizer(n=N) as opt:
        assert opt.n == N and opt.dtype == np.float32
        assert "dtype=f32" in opt.spec and opt.spec.startswith("curvature=covariance")
        run(opt, x, 50)
        assert opt.get_param("step") == 50
    assert loss(x) < 0.95 * loss(np.ones(N))


def test_same_inputs_give_identical_results():
    a, b = np.ones(N, np.float32), np.ones(N, np.float32)
    opt_a, opt_b = Optimizer("lr=0.1", N), Optimizer("lr=0.1", N)
    run(opt_a, a, 20)
    run(opt_b, b, 20)
    assert np.array_equal(a, b)
    assert opt_a.state() == opt_b.state()


def test_state_round_trip_is_bit_exact():
    x = np.ones(N, np.float32)
    opt = Optimizer("lr=0.1; basis=ggt(history_size=8)", N)
    run(opt, x, 5)
    blob = opt.state()
    assert len(blob) <= opt.state_bound()
    y = x.copy()
    resumed = Optimizer.from_state(blob)
    assert (resumed.n, resumed.dtype, resumed.spec) == (opt.n, opt.dtype, opt.spec)
    run(opt, x, 5)
    run(resumed, y, 5)
    assert np.array_equal(x, y)
    # Into an existing optimizer of the same spec, from any bytes-like object.
    z = y.copy()
    into = Optimizer("lr=0.1; basis=ggt(history_size=8)", N)
    into.load_state(bytearray(resumed.state()))
    run(resumed, y, 3)
    run(into, z, 3)
    assert np.array_equal(y, z)


def test_load_state_of_another_spec_fails_and_changes_nothing():
    opt = Optimizer("lr=0.1", N)
    before = opt.state()
    with pytest.raises(LREError) as info:
        opt.load_state(Optimizer("basis=eigen", N).state())
    assert info.value.status == Status.LRE_ERR_STATE
    assert opt.state() == before
    with pytest.raises(TypeError, match="blob must be bytes-like"):
        opt.load_state("not bytes")


def test_save_file_and_load_file(tmp_path):
    x = np.ones(N, np.float32)
    opt = Optimizer("lr=0.1", N)
    run(opt, x, 5)
    path = tmp_path / "run.lre"
    opt.save_file(path)
    y = x.copy()
    loaded = Optimizer("lr=0.1", N)
    loaded.load_file(str(path))
    run(opt, x, 5)
    run(loaded, y, 5)
    assert np.array_equal(x, y)
    with pytest.raises(LREError) as info:
        loaded.load_file(tmp_path / "missing.lre")
    assert info.value.status == Status.LRE_ERR_IO and "missing.lre" in info.value.message


def test_bad_spec_raises_lre_error():
    with pytest.raises(LREError) as info:
        Optimizer("basis=ggtt", N)
    error = info.value
    assert error.status == Status.LRE_ERR_SPEC == 3
    assert error.status_name == "LRE_ERR_SPEC"
    assert '"ggtt"' in error.message
    assert "LRE_ERR_SPEC" in str(error) and "ggtt" in str(error)
    # The message was copied at the failure: a later failure does not change it.
    with pytest.raises(LREError):
        Optimizer("curvature=bogus", N)
    assert "ggtt" in error.message


@pytest.mark.parametrize(
    "params, error, match",
    [
        (np.ones(N - 1, np.float32), ValueError, r"params has shape \(15,\), expected \(16,\)"),
        (np.ones((2, N), np.float32), ValueError, "params has shape"),
        (np.ones(N, np.float64), TypeError, "params has dtype float64, expected float32"),
        (np.ones(2 * N, np.float32)[::2], ValueError, "params must be C-contiguous"),
        ([1.0] * N, TypeError, "params must be a numpy.ndarray"),
    ],
)
def test_bad_params_are_refused_and_unchanged(params, error, match):
    opt = Optimizer("lr=0.1", N)
    before = copy.deepcopy(params)
    with pytest.raises(error, match=match):
        opt.step(params, np.ones(N, np.float32))
    assert np.array_equal(params, before)
    assert opt.get_param("step") == 0


def test_read_only_params_and_bad_grad_are_refused():
    opt = Optimizer(n=N)
    frozen = np.ones(N, np.float32)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="params is read-only"):
        opt.step(frozen, np.ones(N, np.float32))
    with pytest.raises(TypeError, match="grad has dtype float64"):
        opt.step(np.ones(N, np.float32), np.ones(N))


def test_non_finite_gradient_fails_and_changes_nothing():
    opt = Optimizer(n=N)
    x = np.ones(N, np.float32)
    g = np.ones(N, np.float32)
    g[3] = np.nan
    with pytest.raises(LREError) as info:
        opt.step(x, g)
    assert info.value.status == Status.LRE_ERR_NUMERICAL
    assert np.array_equal(x, np.ones(N, np.float32))


def test_hvp_callback_on_a_quadratic():
    x = np.ones(N, np.float32)
    seen = []

    def recording_hvp(v):
        seen.append((v.dtype, v.shape))
        return D * v  # float64: written into the float32 buffer

    opt = Optimizer(HVP_SPEC, N)
    assert opt.get_param("num_probes") == 1
    for _ in range(30):
        opt.step(x, grad(x), recording_hvp)
    assert seen == [(np.dtype(np.float32), (N,))] * 30
    assert loss(x) < 1e-4 * loss(np.ones(N))
    assert opt.get_param("rank") == N
    eigenvalues = opt.eigenvalues()
    assert eigenvalues.dtype == np.float64 and eigenvalues.shape == (N,)
    assert np.all(np.isfinite(eigenvalues)) and np.all(np.diff(eigenvalues) >= 0)


def test_an_hvp_calling_its_own_optimizer_is_refused_as_busy():
    x = np.ones(N, np.float32)
    opt = Optimizer(HVP_SPEC, N)
    refused = []

    def nosy_hvp(v):
        try:
            opt.get_param("step")
        except LREError as e:
            refused.append(e)
        return D * v

    opt.step(x, grad(x), nosy_hvp)  # the refused query changes nothing; the step goes on
    assert [e.status_name for e in refused] == ["LRE_ERR_BUSY"]
    assert "in use by another call" in refused[0].message
    assert opt.get_param("step") == 1

    def meddling_hvp(v):
        opt.step(x, grad(x), nosy_hvp)  # raises LREError(LRE_ERR_BUSY): aborts the outer step
        return D * v

    params, state = x.copy(), opt.state()
    with pytest.raises(LREError) as info:
        opt.step(x, grad(x), meddling_hvp)
    assert info.value.status == Status.LRE_ERR_BUSY
    assert info.value.__cause__.status == Status.LRE_ERR_CALLBACK
    assert np.array_equal(x, params) and opt.state() == state


def test_missing_hvp_is_refused():
    with pytest.raises(LREError) as info:
        Optimizer(HVP_SPEC, N).step(np.ones(N, np.float32), np.ones(N, np.float32))
    assert info.value.status == Status.LRE_ERR_INVALID_ARGUMENT


class Boom(Exception):
    pass


@pytest.mark.parametrize(
    "bad_hvp, error",
    [
        (lambda v: (_ for _ in ()).throw(Boom("no curvature today")), Boom),
        (lambda v: v[:3], ValueError),  # wrong shape
        (lambda v: v.astype(np.complex64), TypeError),  # cannot be cast to float32
    ],
)
def test_hvp_exception_propagates_and_changes_nothing(bad_hvp, error):
    x = np.ones(N, np.float32)
    opt = Optimizer(HVP_SPEC, N)
    run(opt, x, 3, with_hvp=True)
    params, state = x.copy(), opt.state()
    with pytest.raises(error) as info:
        opt.step(x, grad(x), bad_hvp)
    assert isinstance(info.value.__cause__, LREError)
    assert info.value.__cause__.status == Status.LRE_ERR_CALLBACK
    assert np.array_equal(x, params)
    assert opt.state() == state
    with pytest.raises(TypeError, match="hvp must be callable"):
        opt.step(x, grad(x), "not a function")


def test_split_step_equals_callback_step():
    x, y = np.ones(N, np.float32), np.ones(N, np.float32)
    callback, split = Optimizer(HVP_SPEC, N), Optimizer(HVP_SPEC, N)
    for _ in range(10):
        callback.step(x, grad(x), hvp)
        k = split.begin(grad(y))
        probes = split.probes()
        assert probes.shape == (k, N) and probes.dtype == np.float32
        split.finish(y, np.ascontiguousarray(hvp(probes)))
        assert np.array_equal(x, y)
    assert callback.state() == split.state()


def test_split_step_misuse():
    opt = Optimizer(HVP_SPEC, N)
    x = np.ones(N, np.float32)
    with pytest.raises(LREError) as info:
        opt.probes()
    assert info.value.status == Status.LRE_ERR_CALL_ORDER
    with pytest.raises(LREError) as info:
        opt.finish(x, None)
    assert info.value.status == Status.LRE_ERR_CALL_ORDER
    k = opt.begin(grad(x))
    with pytest.raises(LREError) as info:
        opt.begin(grad(x))
    assert info.value.status == Status.LRE_ERR_CALL_ORDER
    with pytest.raises(ValueError, match=r"hvps has shape \(2, 16\), expected \(1, 16\)"):
        opt.finish(x, np.ones((k + 1, N), np.float32))
    # Non-finite HVPs: refused, the step stays begun and can be finished properly.
    with pytest.raises(LREError) as info:
        opt.finish(x, np.full((k, N), np.inf, np.float32))
    assert info.value.status == Status.LRE_ERR_NUMERICAL
    assert np.array_equal(x, np.ones(N, np.float32))
    opt.finish(x, hvp(opt.probes()))
    assert opt.get_param("step") == 1
    opt.begin(grad(x))
    opt.cancel()
    opt.begin(grad(x))  # a cancelled step can be begun again


def test_f64():
    x = np.ones(N)
    opt = Optimizer("dtype=f64; lr=0.1", N)
    assert opt.dtype == np.float64
    run(opt, x, 20)
    assert loss(x) < loss(np.ones(N))
    x32 = np.ones(N, np.float32)
    with pytest.raises(TypeError, match="params has dtype float32, expected float64"):
        opt.step(x32, np.ones(N, np.float32))
    assert np.array_equal(x32, np.ones(N, np.float32))
    with pytest.raises(TypeError, match="grad has dtype float32"):
        opt.step(x, np.ones(N, np.float32))


def test_f64_hvp_split_and_callback_agree():
    x, y = np.ones(N), np.ones(N)
    callback, split = Optimizer("dtype=f64; " + HVP_SPEC, N), Optimizer("dtype=f64; " + HVP_SPEC, N)
    for _ in range(5):
        callback.step(x, grad(x), hvp)
        split.begin(grad(y))
        split.finish(y, hvp(split.probes()))
    assert np.array_equal(x, y)


def test_gauss_newton_batch_step_solves_linear_least_squares():
    rng = np.random.default_rng(0)
    rows, n = 20, 5
    jacobian, b = rng.standard_normal((rows, n)), rng.standard_normal(rows)
    x = np.zeros(n)
    # The Gauss-Newton step: exact for linear residuals.
    spec = f"dtype=f64; curvature=gauss_newton; basis=ggt(history_size={rows}); chain=[l_inv]; lr=1"
    opt = Optimizer(spec, n)
    opt.step_batch(x, jacobian, jacobian @ x - b)
    np.testing.assert_allclose(x, np.linalg.lstsq(jacobian, b, rcond=None)[0], rtol=1e-8)
    with pytest.raises(ValueError, match=r"per_sample_values has shape \(3,\), expected \(20,\)"):
        opt.step_batch(x, jacobian, np.ones(3))
    expected = r"per_sample_grads has shape \(20, 4\), expected \(batch, 5\)"
    with pytest.raises(ValueError, match=expected):
        opt.step_batch(x, np.ones((rows, 4)), np.ones(rows))


def test_empirical_fisher_batch_step():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((20, N)).astype(np.float32)
    b = rng.standard_normal(20).astype(np.float32)
    x = np.zeros(N, np.float32)
    opt = Optimizer("curvature=empirical_fisher; lr=0.1", N)
    start = np.sum((a @ x - b) ** 2)
    for _ in range(50):
        opt.step_batch(x, np.ascontiguousarray(a * (a @ x - b)[:, None]))
    assert np.sum((a @ x - b) ** 2) < 0.5 * start


def test_params_chain_and_spec():
    opt = Optimizer("chain=[]", N)
    opt.chain_push("adam(beta2=0.999)")
    assert "chain=[adam(beta1=0.9, beta2=0.999" in opt.spec
    opt.set_param("lr", 0.5)
    assert opt.get_param("lr") == 0.5
    with pytest.raises(LREError) as info:
        opt.set_param("bogus", 1)
    assert info.value.status == Status.LRE_ERR_INVALID_ARGUMENT and "bogus" in info.value.message
    opt.step(np.ones(N, np.float32), np.ones(N, np.float32))
    with pytest.raises(LREError) as info:
        opt.chain_push("lion")
    assert info.value.status == Status.LRE_ERR_CALL_ORDER
    with pytest.raises(LREError) as info:
        Optimizer("basis=identity", N).eigenvalues()
    assert info.value.status == Status.LRE_ERR_UNSUPPORTED
    with pytest.raises(LREError) as info:
        Optimizer("curvature=empirical_fisher; chain=[natural_gradient]", N).state_bound()
    assert info.value.status == Status.LRE_ERR_UNSUPPORTED


def test_constructor_arguments():
    with pytest.raises(TypeError, match="needs n"):
        Optimizer("lr=0.1")
    for n in (-1, 2**64, 2**70):  # checked before any C call: size_t would wrap them
        with pytest.raises(ValueError, match="n must be a non-negative integer below 2"):
            Optimizer("", n)
    # Zero rows: a shard may hold none (sharded mode), an unsharded optimizer may not.
    with pytest.raises(LREError, match="ndim = 0") as e:
        Optimizer("", 0)
    assert e.value.status == Status.LRE_ERR_INVALID_ARGUMENT
    assert Optimizer("global_ndim=5; shard_offset=5", 0).n == 0
    # Representable but too large for the state: the library refuses it, naming n.
    with pytest.raises(LREError, match="ndim = 4611686018427387904") as e:
        Optimizer("", 2**62)
    assert e.value.status == Status.LRE_ERR_INVALID_ARGUMENT
    with pytest.raises(TypeError):
        Optimizer("", 2.5)
    with pytest.raises(TypeError, match="spec must be a str"):
        Optimizer(b"lr=0.1", 4)


def test_dtype_components_and_needs_come_from_the_library():
    with Optimizer("DType = f64; curvature=FullHutchinsonHessian; basis=Eigen", 5) as opt:
        assert opt.dtype == np.float64
        assert opt.component("curvature") == "full_hutchinson_hessian"
        assert opt.component("basis") == "eigen"
        with pytest.raises(LREError, match="curvature or basis"):
            opt.component("chain")
    with Optimizer("curvature=unrolled_gauss_newton", 5) as opt:
        assert opt.dtype == np.float32
        assert (opt.get_param("needs_loss"), opt.get_param("needs_samples")) == (1, 0)


def test_state_layout_describes_the_saved_buffers():
    n = 50
    with Optimizer("basis=ggt(history_size=4)", n) as opt:
        layout = {b.name: b for b in opt.state_layout()}
        window = layout["basis/window"]
        assert (window.kind, window.dtype, window.rows, window.cols) == ("vectors", np.float32, n, 4)
        assert window.bytes == n * 4 * 4
        assert sum(b.bytes for b in layout.values()) < opt.state_bound()
        x = np.ones(n, np.float32)
        for _ in range(6):
            opt.step(x, x.copy())
        # The saved window is the declared one, at its largest once the window is full.
        blob = opt.state()
        assert window.bytes < len(blob) <= opt.state_bound()


def test_a_one_rank_shard_equals_the_unsharded_optimizer():
    # A single rank: the all-reduce has nothing to add, but every reduction goes through it.
    calls = []
    plain = Optimizer("basis=ggt(history_size=4)", N)
    sharded = Optimizer(f"basis=ggt(history_size=4); global_ndim={N}; shard_offset=0", N)
    sharded.set_allreduce(lambda buf: calls.append(buf.size))
    x, y = np.ones(N, np.float32), np.ones(N, np.float32)
    for _ in range(5):
        plain.step(x, grad(x))
        sharded.step(y, grad(y))
    np.testing.assert_array_equal(x, y)
    assert sum(calls) > 0  # every reduction went through it (some are empty on the first step)

    def broken(buf):
        raise RuntimeError("network down")
    sharded.set_allreduce(broken)
    before = y.copy()
    with pytest.raises(LREError) as info:
        sharded.step(y, grad(y))
    assert info.value.status == Status.LRE_ERR_CALLBACK
    np.testing.assert_array_equal(y, before)


def test_close_is_idempotent_and_final():
    with Optimizer(n=N) as opt:
        pass
    assert opt.closed and "closed" in repr(opt)
    opt.close()
    with pytest.raises(ValueError, match="closed"):
        opt.step(np.ones(N, np.float32), np.ones(N, np.float32))
    with pytest.raises(ValueError, match="closed"):
        opt.spec


def test_copy_and_pickle_go_through_the_state():
    x = np.ones(N, np.float32)
    opt = Optimizer("lr=0.1", N)
    run(opt, x, 3)
    for clone in (copy.copy(opt), copy.deepcopy(opt), pickle.loads(pickle.dumps(opt))):
        assert clone.state() == opt.state()
        clone.close()
    assert not opt.closed  # the clones own their own handles
    error = pickle.loads(pickle.dumps(LREError(3, "text")))
    assert (error.status, error.status_name, error.message) == (3, "LRE_ERR_SPEC", "text")


def test_missing_library_is_explained():
    source = str(REPO / "bindings/python/src")
    env = dict(os.environ, LRE_LIBRARY="/nonexistent/liblre.so", PYTHONPATH=source)
    command = [sys.executable, "-c", "import lre"]
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    assert result.returncode != 0
    assert "ImportError" in result.stderr
    assert "LRE_LIBRARY='/nonexistent/liblre.so'" in result.stderr
    assert "cargo build --release" in result.stderr
