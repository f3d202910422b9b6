"""lre.torch: the torch.optim.Optimizer — against lre.core bit for bit (plain, Hessian-vector
product and per-sample curvatures), parameters stepped in place, param groups, weight decay and
lr from the groups, state dicts (and state exchange with the C++ wrapper), refusals."""

import subprocess

import numpy as np
import pytest
import torch

import lre.core
import lre.torch

SPEC = "basis=ggt(history_size=4); chain=[adam]"
LR = 0.125  # exactly representable in float32, so every binding sees the same learning rate


def make_params(dtype=torch.float32, seed=0):
    """Two tensors, w (3×4) and b (5,), as a model's parameters would be."""
    rng = np.random.default_rng(seed)
    return [torch.nn.Parameter(torch.tensor(rng.normal(size=shape), dtype=dtype))
            for shape in ((3, 4), (5,))]


def flat(params):
    return torch.cat([p.detach().reshape(-1) for p in params]).numpy()


def quadratic_loss(params):
    """0.5·|w|² + 0.5·Σ s·b², s = 1..5: gradient (w, s·b), Hessian diag(1…, s)."""
    w, b = params
    scale = torch.arange(1.0, 6.0, dtype=b.dtype)
    return 0.5 * (w ** 2).sum() + 0.5 * (scale * b ** 2).sum()


def plain_loss(params):
    """0.5·|x|², whose gradient is x exactly: what resume.cpp uses."""
    return 0.5 * sum((p ** 2).sum() for p in params)


def backward_steps(opt, params, steps, loss=quadratic_loss):
    for _ in range(steps):
        opt.zero_grad()
        loss(params).backward()
        opt.step()


def hessian_scale(dtype=np.float32):
    return np.concatenate([np.ones(12), np.arange(1.0, 6.0)]).astype(dtype)


def test_steps_match_core_bit_for_bit_in_place():
    params = make_params()
    opt = lre.torch.LRE(params, SPEC, lr=LR)
    core = lre.core.Optimizer(SPEC + f"; lr={LR}", 17)
    x = flat(params).copy()
    addresses = [p.data_ptr() for p in params]
    for _ in range(8):
        opt.zero_grad()
        quadratic_loss(params).backward()
        opt.step()
        core.step(x, hessian_scale() * x)
        np.testing.assert_array_equal(flat(params), x)
    assert [p.data_ptr() for p in params] == addresses  # stepped where they live
    assert opt.lre_optimizer().state() == core.state()
    assert opt.param_groups[0]["lr"] == LR


def test_autograd_sees_the_library_write_the_parameters():
    params = make_params()
    opt = lre.torch.LRE(params, SPEC, lr=LR)
    stale = quadratic_loss(params)  # its graph saved the parameters as they were
    quadratic_loss(params).backward()
    opt.step()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        stale.backward()


def test_a_group_without_gradients_is_not_stepped():
    w, b = make_params()
    opt = lre.torch.LRE([{"params": [w]}, {"params": [b]}], SPEC, lr=LR)
    opt.step()  # no backward yet: nothing moves
    before = flat([w, b]).copy()
    (0.5 * (w ** 2).sum()).backward()  # b gets no gradient
    opt.step()
    assert [opt.lre_optimizer(i).get_param("step") for i in range(2)] == [1, 0]
    assert not np.array_equal(flat([w]), before[:12])
    np.testing.assert_array_equal(flat([b]), before[12:])


def test_float64_parameters_step_in_an_f64_optimizer():
    params = make_params(torch.float64)
    opt = lre.torch.LRE(params, SPEC, lr=LR)
    assert opt.lre_optimizer().dtype == np.float64
    core = lre.core.Optimizer(SPEC + f"; lr={LR}; dtype=f64", 17)
    x = flat(params).copy()
    backward_steps(opt, params, 4)
    for _ in range(4):
        core.step(x, hessian_scale(np.float64) * x)
    np.testing.assert_array_equal(flat(params), x)
    with pytest.raises(TypeError, match="dtype"):
        lre.torch.LRE(make_params(torch.float64), SPEC + "; dtype=f32")


@pytest.mark.parametrize("spec", [
    "curvature=full_hutchinson_hessian; chain=[adam, l_inv]",
    "curvature=bfgs; basis=eigen(rank=6); chain=[full_matrix_bfgs_adam]",
])
@pytest.mark.parametrize("how", ["loss", "closure", "create_graph"])
@pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True")
def test_hvp_curvatures_match_core(spec, how):
    params = make_params()
    opt = lre.torch.LRE(params, spec, lr=LR)
    core = lre.core.Optimizer(spec + f"; lr={LR}", 17)
    x = flat(params).copy()
    scale = hessian_scale()

    def closure(backward=True):
        loss = quadratic_loss(params)
        if backward:
            opt.zero_grad()
            loss.backward()
        return loss

    for _ in range(6):
        if how == "loss":
            opt.step(loss=quadratic_loss(params))
        elif how == "closure":
            opt.step(closure)
        else:
            opt.zero_grad()
            quadratic_loss(params).backward(create_graph=True)
            opt.step()
        core.step(x, scale * x, hvp=lambda v: scale * v)
        np.testing.assert_array_equal(flat(params), x)
    assert opt.lre_optimizer().state() == core.state()


def test_hvp_curvature_without_a_graph_is_refused_and_changes_nothing():
    params = make_params()
    opt = lre.torch.LRE(params, "curvature=full_hutchinson_hessian; chain=[l_inv]")
    quadratic_loss(params).backward()
    before, state = flat(params).copy(), opt.lre_optimizer().state()
    with pytest.raises(ValueError, match="Hessian-vector products.*create_graph=True"):
        opt.step()
    with pytest.raises(ValueError, match="Hessian-vector products"):
        opt.step(lambda: quadratic_loss(params))  # a closure that cannot skip its backward
    with pytest.raises(ValueError, match="needs a scalar"):
        opt.step(loss=torch.stack([quadratic_loss(params)] * 2))
    with pytest.raises(TypeError, match="with a graph"):
        opt.step(loss=torch.tensor(1.0))
    np.testing.assert_array_equal(flat(params), before)
    assert opt.lre_optimizer().state() == state


@pytest.mark.parametrize("spec", ["curvature=covariance_times_loss",
                                  "curvature=unrolled_gauss_newton(history_size=3)"])
def test_curvatures_that_use_the_loss_get_its_value(spec):
    params = make_params()
    opt = lre.torch.LRE(params, spec, lr=LR)
    core = lre.core.Optimizer(spec + f"; lr={LR}", 17)
    x = flat(params).copy()

    def closure():
        opt.zero_grad()
        loss = quadratic_loss(params)
        loss.backward()
        return loss

    for _ in range(5):
        loss = opt.step(closure)
        core.set_param("loss", loss.item())
        core.step(x, hessian_scale() * x)
        np.testing.assert_array_equal(flat(params), x)
    quadratic_loss(params).backward()
    with pytest.raises(ValueError, match="needs the loss"):
        opt.step()


def test_per_sample_gauss_newton_matches_core_batch_step():
    rng = np.random.default_rng(1)
    a = torch.tensor(rng.normal(size=(6, 4)), dtype=torch.float32)
    target = torch.tensor(rng.normal(size=6), dtype=torch.float32)
    w = torch.nn.Parameter(torch.zeros(4))
    spec = "curvature=gauss_newton; basis=ggt(history_size=6); chain=[l_inv]"
    opt = lre.torch.LRE([w], spec, lr=0.5)
    core = lre.core.Optimizer(spec + "; lr=0.5", 4)
    x = np.zeros(4, np.float32)
    for _ in range(3):
        residuals = a @ w - target
        values = residuals.detach().numpy().copy()
        opt.step(loss=residuals)
        core.step_batch(x, a.numpy().copy(), values)  # row i of the Jacobian is a[i]
        np.testing.assert_array_equal(w.detach().numpy(), x)
    with pytest.raises(ValueError, match="per-sample losses"):
        opt.step(loss=(a @ w - target).pow(2).sum())
    state = opt.lre_optimizer().state()
    with pytest.raises(lre.core.LREError, match="not finite"):
        opt.step(loss=(a @ w - target) * torch.tensor([float("nan")] + [1.0] * 5))
    np.testing.assert_array_equal(w.detach().numpy(), x)
    assert opt.lre_optimizer().state() == state


def test_param_groups_are_separate_optimizers_with_their_own_hyperparameters():
    w, b = make_params()
    opt = lre.torch.LRE([{"params": [w]}, {"params": [b], "lr": 0.5, "spec": "basis=eigen"}],
                        SPEC, lr=LR, weight_decay=0.25)
    first, second = opt.lre_optimizer(0), opt.lre_optimizer(1)
    assert (first.n, second.n) == (12, 5)
    assert second.component("basis").startswith("eigen")
    assert [g["lr"] for g in opt.param_groups] == [LR, 0.5]
    core_w = lre.core.Optimizer(SPEC + f"; lr={LR}; weight_decay=0.25", 12)
    core_b = lre.core.Optimizer(f"basis=eigen; lr=0.5; weight_decay=0.25", 5)
    xw, xb = flat([w]).copy(), flat([b]).copy()
    for step in range(5):
        if step == 3:  # a scheduler's change reaches the library at the next step
            opt.param_groups[0]["lr"] = 0.0625
            opt.param_groups[1]["weight_decay"] = 0.0
            core_w.set_param("lr", 0.0625)
            core_b.set_param("weight_decay", 0.0)
        backward_steps(opt, [w, b], 1)
        core_w.step(xw, xw.copy())
        core_b.step(xb, np.arange(1.0, 6.0, dtype=np.float32) * xb)
        np.testing.assert_array_equal(flat([w]), xw)
        np.testing.assert_array_equal(flat([b]), xb)


def test_group_weight_decay_is_the_decoupled_decay():
    wd = 0.25
    plain, decayed = make_params(), make_params()
    backward_steps(lre.torch.LRE(plain, SPEC, lr=LR), plain, 1)
    backward_steps(lre.torch.LRE(decayed, SPEC, lr=LR, weight_decay=wd), decayed, 1)
    x0 = flat(make_params())
    np.testing.assert_allclose(flat(decayed) - flat(plain), -LR * wd * x0, rtol=0, atol=1e-6)


def test_lr_scheduler_drives_the_groups_lr():
    params = make_params()
    opt = lre.torch.LRE(params, SPEC + "; lr=0.5")
    assert opt.param_groups[0]["lr"] == 0.5  # lr=None: the spec's
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    for expected in (0.5, 0.25, 0.125):
        backward_steps(opt, params, 1)
        assert opt.lre_optimizer().get_param("lr") == expected
        scheduler.step()


def test_replaced_and_non_contiguous_parameters_are_moved_in():
    w = torch.nn.Parameter(torch.arange(12.0).reshape(4, 3).t())  # non-contiguous
    opt = lre.torch.LRE([w], SPEC, lr=LR)
    assert w.is_contiguous()
    np.testing.assert_array_equal(w.detach().numpy(), np.arange(12.0).reshape(4, 3).T)
    w.data = torch.full((3, 4), 2.0)  # replaced storage: its values are the ones stepped
    core = lre.core.Optimizer(SPEC + f"; lr={LR}", 12)
    x = np.full(12, 2.0, np.float32)
    backward_steps(opt, [w], 2, loss=plain_loss)
    for _ in range(2):
        core.step(x, x.copy())
    np.testing.assert_array_equal(flat([w]), x)
    w.data = torch.zeros(3, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match="make a new optimizer"):
        opt.step()


def test_unsupported_tensors_are_refused():
    with pytest.raises(NotImplementedError, match="CPU tensors only"):
        lre.torch.LRE([torch.nn.Parameter(torch.zeros(3, device="meta"))])
    with pytest.raises(TypeError, match="float32 or float64"):
        lre.torch.LRE([torch.nn.Parameter(torch.zeros(3, dtype=torch.float16))])
    with pytest.raises(TypeError, match="mixes"):
        lre.torch.LRE([torch.nn.Parameter(torch.zeros(3)),
                       torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))])


def test_a_refused_step_changes_nothing_in_any_group():
    w, b = make_params()
    opt = lre.torch.LRE([{"params": [w]}, {"params": [b]}], SPEC, lr=LR)
    backward_steps(opt, [w, b], 2)
    before = flat([w, b]).copy()
    states = [opt.lre_optimizer(i).state() for i in range(2)]
    opt.zero_grad()
    quadratic_loss([w, b]).backward()
    b.grad[0] = float("nan")  # the second group's gradient is not finite
    with pytest.raises(lre.core.LREError) as info:
        opt.step()
    assert info.value.status == lre.core.Status.LRE_ERR_NUMERICAL
    np.testing.assert_array_equal(flat([w, b]), before)
    assert [opt.lre_optimizer(i).state() for i in range(2)] == states


def test_state_dict_resumes_through_torch_save(tmp_path):
    params = make_params()
    opt = lre.torch.LRE(params, SPEC, lr=LR)
    backward_steps(opt, params, 3)
    torch.save({"params": [p.detach().clone() for p in params], "opt": opt.state_dict()},
               tmp_path / "checkpoint.pt")
    backward_steps(opt, params, 4)

    saved = torch.load(tmp_path / "checkpoint.pt")
    resumed_params = [torch.nn.Parameter(p) for p in saved["params"]]
    resumed = lre.torch.LRE(resumed_params, SPEC, lr=1.0)  # lr comes back from the state dict
    resumed.load_state_dict(saved["opt"])
    assert resumed.param_groups[0]["lr"] == LR
    backward_steps(resumed, resumed_params, 4)
    np.testing.assert_array_equal(flat(resumed_params), flat(params))
    assert resumed.lre_optimizer().state() == opt.lre_optimizer().state()


def test_load_state_dict_of_another_spec_fails_and_changes_nothing():
    params = make_params()
    other = lre.torch.LRE(make_params(), "basis=ggt(history_size=9)")
    opt = lre.torch.LRE(params, SPEC, lr=LR)
    state = opt.lre_optimizer().state()
    with pytest.raises(lre.core.LREError, match="history_size"):
        opt.load_state_dict(other.state_dict())
    assert opt.lre_optimizer().state() == state
    assert opt.param_groups[0]["lr"] == LR


def run_cpp(program, source, x, steps, tmp_path):
    (tmp_path / "params.in").write_bytes(x.astype(np.float32).tobytes())
    subprocess.run([str(program), source, str(tmp_path / "params.in"), str(steps),
                    str(tmp_path / "state.out"), str(tmp_path / "params.out"), "--in-place"],
                   check=True)
    return (np.frombuffer((tmp_path / "params.out").read_bytes(), np.float32),
            (tmp_path / "state.out").read_bytes())


def test_a_torch_run_resumes_in_cpp(resume_program, tmp_path):
    params = make_params()
    opt = lre.torch.LRE(params, SPEC, lr=LR)
    backward_steps(opt, params, 6, loss=plain_loss)
    blob = opt.state_dict()["state"][0]["lre_state"].numpy().tobytes()
    (tmp_path / "torch.state").write_bytes(blob)
    x_cpp, blob_cpp = run_cpp(resume_program, "@" + str(tmp_path / "torch.state"), flat(params),
                              5, tmp_path)
    backward_steps(opt, params, 5, loss=plain_loss)
    np.testing.assert_array_equal(x_cpp, flat(params))
    assert blob_cpp == opt.lre_optimizer().state()


def test_a_cpp_run_resumes_in_torch(resume_program, tmp_path):
    spec = SPEC + f"; lr={LR}"
    start = flat(make_params())
    x6, blob6 = run_cpp(resume_program, spec, start, 6, tmp_path)
    x11, blob11 = run_cpp(resume_program, spec, start, 11, tmp_path)
    params = [torch.nn.Parameter(torch.tensor(x6[:12].reshape(3, 4))),
              torch.nn.Parameter(torch.tensor(x6[12:]))]
    opt = lre.torch.LRE(params, spec)
    state = opt.state_dict()
    state["state"][0]["lre_state"] = torch.frombuffer(bytearray(blob6), dtype=torch.uint8)
    opt.load_state_dict(state)
    assert opt.lre_optimizer().get_param("step") == 6
    backward_steps(opt, params, 5, loss=plain_loss)
    np.testing.assert_array_equal(flat(params), x11)
    assert opt.lre_optimizer().state() == blob11


class TwoLayer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.hidden = torch.nn.Linear(3, 8)
        self.out = torch.nn.Linear(8, 1)

    def forward(self, x):
        return self.out(torch.tanh(self.hidden(x)))


@pytest.mark.parametrize("spec", ["", "curvature=full_hutchinson_hessian; chain=[adam, l_inv]"])
def test_the_reference_usage_pattern_trains_a_module(spec):
    """The reference's loop: a closure with a `backward` argument (the optimizer calls it with
    backward=False when it differentiates the loss itself), or `step(loss=loss)`."""
    torch.manual_seed(1)
    inputs = torch.randn(64, 3)
    targets = torch.sin(inputs.sum(dim=1, keepdim=True))
    model = TwoLayer()
    optimizer = lre.torch.LRE(model.parameters(), spec, lr=0.1)
    criterion = torch.nn.MSELoss()
    first = criterion(model(inputs), targets).item()
    for step in range(60):
        def closure(backward=True):
            loss = criterion(model(inputs), targets)
            if backward:
                optimizer.zero_grad()
                loss.backward()
            return loss

        if step % 2:
            loss = optimizer.step(closure)
        else:
            loss = optimizer.step(loss=criterion(model(inputs), targets))
        assert torch.isfinite(loss)
    assert criterion(model(inputs), targets).item() < 0.5 * first
