"""LRE as a `torch.optim.Optimizer`.

    import lre.torch
    opt = lre.torch.LRE(model.parameters(), "basis=ggt(history_size=50)", lr=1e-2)
    loss = criterion(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()

* One LRE optimizer per param group, over the group's parameters flattened in order (the
  library's basis spans the whole group, so the curvature sees correlations between tensors).
  Groups may carry their own `spec`, `lr` and `weight_decay`. Hessian-vector products are taken
  within a group: two groups are two independent optimizers (a block-diagonal curvature).
* No copies of the parameters per step: at construction each group's parameters move into one
  contiguous buffer (one copy, once; non-contiguous parameters become contiguous there) and each
  `Parameter` becomes a view of it, so the library updates them in place. The `Parameter`
  objects stay the same; a parameter whose storage is replaced later (`p.data = ...`) is moved
  back in at the next step. Gradients are gathered into one buffer per group (n values copied
  per step); a parameter without a gradient counts as zero, and a group none of whose
  parameters has one is not stepped (as torch's optimizers skip such parameters).
* CPU tensors of dtype float32 or float64 (stepped by an f32 or f64 optimizer). CUDA tensors
  are refused with NotImplementedError: the library has no CUDA path yet.
* `lr` and `weight_decay` (the spec's top-level decoupled weight decay) are read from each param
  group at every step, so LR schedulers work; None takes the spec's value.
* `step(closure=None, *, loss=None)`. Plain curvatures use `p.grad` (from the closure, which
  zeroes the gradients and calls `backward()` as usual, or from your own `backward()`).
  Curvatures built from Hessian-vector products (full_hutchinson_hessian, bfgs, sr1) need the
  loss with its graph: pass `loss=` (the optimizer differentiates it with `create_graph=True`),
  or a closure taking `backward` (called as `closure(backward=False)`), or call
  `loss.backward(create_graph=True)` before `step()`. Per-sample curvatures (empirical_fisher,
  gauss_newton) take the vector of per-sample losses (residuals for gauss_newton) the same ways
  but the last. Curvatures that use the loss's value get it from the closure or `loss=`.
* `state_dict()` holds each group's library state blob (docs/state-format.md; the blob lre.core,
  the C++ wrapper, Julia and lre.jax read) as a uint8 tensor under the key "lre_state" of the
  group's first parameter; `load_state_dict` checks every blob against its group's spec, size
  and dtype before changing anything. `lre_optimizer(i)` is group i's `lre.core.Optimizer`
  (`state()`, `load_state()`, `save_file()`, ...).
* A step is refused as a whole (LREError, params and state unchanged) when a group's gradient or
  Hessian-vector products are not finite: every group is validated before any group moves.
"""

from __future__ import annotations

import inspect
from typing import Callable, Optional

import numpy as np
import torch

from . import core

_STATE_KEY = "lre_state"
# The spec's name and numpy's dtype of each parameter dtype the library steps.
_SPEC_DTYPES = {torch.float32: ("f32", np.dtype(np.float32)),
                torch.float64: ("f64", np.dtype(np.float64))}


def _takes_backward(closure: Callable) -> bool:
    """Whether `closure(backward=False)` is a valid call (the convention of the reference)."""
    try:
        parameters = inspect.signature(closure).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature
        return False
    return any(p.name == "backward" or p.kind is p.VAR_KEYWORD for p in parameters)


def _new_optimizer(spec: str, n: int, dtype: torch.dtype) -> core.Optimizer:
    """An LRE optimizer for n parameters of `dtype`; a spec naming another dtype is refused."""
    opt = core.Optimizer(spec, n)
    name, wanted = _SPEC_DTYPES[dtype]
    if opt.dtype == wanted:
        return opt
    opt.close()
    try:
        return core.Optimizer(f"{spec}; dtype={name}" if spec.strip() else f"dtype={name}", n)
    except core.LREError:  # the spec names its own dtype
        raise TypeError(f"the spec's dtype is {opt.dtype}, but the parameters are {dtype}") \
            from None


class _Group:
    """One param group: its LRE optimizer and the flat buffers its parameters live in."""

    def __init__(self, params: list, spec: str, where: str):
        for i, p in enumerate(params):
            if p.device.type != "cpu":
                raise NotImplementedError(
                    f"{where}, parameter {i} is on {p.device}: lre.torch steps CPU tensors only "
                    "until the library's CUDA path exists (move the model with .cpu())")
            if p.dtype not in _SPEC_DTYPES:
                raise TypeError(f"{where}, parameter {i} has dtype {p.dtype}: lre.torch steps "
                                "float32 or float64 parameters")
            if p.dtype != params[0].dtype:
                raise TypeError(f"{where} mixes {params[0].dtype} and {p.dtype}: one group is "
                                "one optimizer of one dtype (put them in separate groups)")
        self.where = where
        self.params = params
        self.sizes = [p.numel() for p in params]
        dtype = params[0].dtype
        n = sum(self.sizes)
        if n == 0:
            raise ValueError(f"{where} has no elements to optimize")
        self.opt = _new_optimizer(spec, n, dtype)
        self.flat = torch.empty(n, dtype=dtype)
        self.grad = torch.zeros(n, dtype=dtype)
        self.views = self.flat.split(self.sizes)
        self.needs_loss = bool(self.opt.get_param("needs_loss"))
        self.needs_samples = bool(self.opt.get_param("needs_samples"))
        self.needs_hvps = self.opt.get_param("num_probes") > 0
        self.samples: Optional[np.ndarray] = None  # per-sample gradients of the step, (batch, n)
        with torch.no_grad():
            for p, view in zip(params, self.views):
                self._move_in(p, view)

    @staticmethod
    def _move_in(p: torch.Tensor, view: torch.Tensor) -> None:
        """Copies p's values into its place in the flat buffer and makes p a view of it."""
        view.copy_(p.reshape(-1))
        p.data = view.view(p.shape)

    def adopt_replaced(self) -> None:
        """Moves back in each parameter whose storage was replaced since the last step."""
        for i, (p, view) in enumerate(zip(self.params, self.views)):
            if p.data_ptr() == view.data_ptr() and p.is_contiguous() and p.numel() == view.numel():
                continue
            if p.device.type != "cpu" or p.dtype != self.flat.dtype or p.numel() != view.numel():
                raise ValueError(
                    f"{self.where}, parameter {i} became {p.dtype}{list(p.shape)} on {p.device} "
                    f"after the optimizer was made for {self.flat.dtype}, {view.numel()} "
                    "elements, on cpu: make a new optimizer for the changed model")
            with torch.no_grad():
                self._move_in(p, view)

    def gather(self, grads) -> None:
        """Writes the group's gradients (None, a parameter without one: zero) into its
        gradient buffer."""
        with torch.no_grad():
            for g, view in zip(grads, self.grad.split(self.sizes)):
                if g is None:
                    view.zero_()
                else:
                    view.copy_(g.reshape(-1))

    def gather_samples(self, rows: list) -> None:
        """Stacks per-sample gradients (per row, one tensor or None per parameter)."""
        samples = torch.zeros(len(rows), self.flat.numel(), dtype=self.flat.dtype)
        for row, grads in zip(samples, rows):
            for g, view in zip(grads, row.split(self.sizes)):
                if g is not None:
                    view.copy_(g.reshape(-1))
        self.samples = samples.numpy()

    def products(self, probes: np.ndarray, grads) -> np.ndarray:
        """H·v for each probe row v, by differentiating gᵀv with the gradients' graph."""
        hvps = np.zeros_like(probes)
        with_graph = [(g, i) for i, g in enumerate(grads) if g is not None and g.requires_grad]
        if not with_graph:  # the gradient does not depend on the parameters: H = 0
            return hvps
        for v, out in zip(probes, hvps):
            parts = torch.from_numpy(v).split(self.sizes)
            rows = torch.autograd.grad(
                [g for g, _ in with_graph], self.params,
                grad_outputs=[parts[i].view_as(g) for g, i in with_graph],
                retain_graph=True, allow_unused=True)
            for h, view in zip(rows, torch.from_numpy(out).split(self.sizes)):
                if h is not None:
                    view.copy_(h.reshape(-1))
        return hvps

    def bump_versions(self) -> None:
        """Tells autograd the parameters changed (the library wrote them, not torch)."""
        for p in self.params:
            torch.autograd.graph.increment_version(p)


class LRE(torch.optim.Optimizer):
    """A low-rank eigenbasis optimizer (the spec language of lre.core) for torch parameters:
    one LRE optimizer per param group. See the module's documentation."""

    def __init__(self, params, spec: str = "", lr: Optional[float] = None,
                 weight_decay: Optional[float] = None):
        if not isinstance(spec, str):
            raise TypeError(f"spec must be a str, got {type(spec).__name__}")
        self._groups: list = []  # a _Group per entry of param_groups, filled by add_param_group
        super().__init__(params, {"spec": spec, "lr": lr, "weight_decay": weight_decay})

    def add_param_group(self, param_group: dict) -> None:
        index = len(self.param_groups)
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        try:
            run = _Group(group["params"], group["spec"], f"param group {index}")
            for key in ("lr", "weight_decay"):
                if group[key] is None:
                    group[key] = run.opt.get_param(key)
                run.opt.set_param(key, group[key])
        except BaseException:
            self.param_groups.pop()
            raise
        self._groups.append(run)

    def lre_optimizer(self, group: int = 0) -> core.Optimizer:
        """The `lre.core.Optimizer` of param group `group` (its state, spec, eigenvalues, ...)."""
        return self._groups[group].opt

    def step(self, closure: Optional[Callable] = None, *, loss: Optional[torch.Tensor] = None):
        """One step of every group; returns the loss (the closure's, or `loss`)."""
        if closure is not None and loss is not None:
            raise ValueError("pass a closure or a loss, not both")
        groups = self._groups
        with_graph = any(g.needs_hvps or g.needs_samples for g in groups)
        differentiate = loss is not None
        if closure is not None:
            with torch.enable_grad():
                if with_graph and _takes_backward(closure):
                    loss, differentiate = closure(backward=False), True
                else:
                    loss = closure()
        params = [p for g in groups for p in g.params]
        for g in groups:
            g.adopt_replaced()
        grads = self._gradients(params, loss, differentiate, with_graph)
        for group, g in zip(self.param_groups, groups):
            for key in ("lr", "weight_decay"):
                g.opt.set_param(key, _hyperparameter(group, key))
        self._step_groups(grads, loss)
        return loss

    def _gradients(self, params: list, loss, differentiate: bool, with_graph: bool) -> list:
        """The gradient of every parameter, with its graph where a curvature needs HVPs; for
        per-sample curvatures, also each group's per-sample gradients."""
        samples = any(g.needs_samples for g in self._groups)
        if not differentiate:
            grads = [p.grad for p in params]
            if samples:
                raise ValueError(
                    f"the curvature {self._curvature(lambda g: g.needs_samples)} needs per-sample "
                    "losses: pass step(loss=losses) with the vector of per-sample losses "
                    "(residuals for gauss_newton), or a closure taking `backward` that returns it")
            hvp_groups = [g for g in self._groups if g.needs_hvps]
            if hvp_groups and not any(x is not None and x.requires_grad for x in grads):
                raise ValueError(
                    f"the curvature {self._curvature(lambda g: g.needs_hvps)} needs "
                    "Hessian-vector products, so the gradient's graph: pass step(loss=loss), or a "
                    "closure taking `backward` (called as closure(backward=False)), or call "
                    "loss.backward(create_graph=True) before step()")
            return grads
        if not (isinstance(loss, torch.Tensor) and loss.requires_grad):
            raise TypeError("the loss must be a tensor with a graph (requires_grad), got "
                            f"{type(loss).__name__}")
        if loss.ndim != (1 if samples else 0):
            wanted = "the vector of per-sample losses" if samples else "a scalar"
            raise ValueError(f"the loss has shape {tuple(loss.shape)}: the curvature "
                             f"{self._curvature(lambda g: samples == g.needs_samples)} needs "
                             f"{wanted}")
        with torch.enable_grad():
            total = loss.sum() if samples else loss
            grads = torch.autograd.grad(total, params, create_graph=with_graph, allow_unused=True)
            if samples:
                rows = [torch.autograd.grad(sample, params, retain_graph=True, allow_unused=True)
                        for sample in loss]
                start = 0
                for g in self._groups:
                    if g.needs_samples:
                        g.gather_samples([row[start:start + len(g.params)] for row in rows])
                    start += len(g.params)
        return list(grads)

    def _curvature(self, which: Callable) -> str:
        return next(g.opt.component("curvature") for g in self._groups if which(g))

    def _step_groups(self, grads: list, loss) -> None:
        """Begins every split-step group's step (each validates its gradient), computes its HVPs
        and checks everything not yet validated before the first group moves: a refusal leaves
        every group unchanged."""
        begun = []
        try:
            start, stepping = 0, []
            for g in self._groups:
                own = grads[start:start + len(g.params)]
                start += len(g.params)
                if all(x is None for x in own):  # as torch's optimizers skip such parameters
                    continue
                stepping.append(g)
                g.gather(own)
                if g.needs_loss:
                    g.opt.set_param("loss", _loss_value(loss, g))
                if not g.needs_samples:
                    begun.append((g, g.opt.begin(g.grad.numpy()), own))
            moves = [(g, g.products(g.opt.probes(), own) if count else None)
                     for g, count, own in begun]
            for g, hvps in moves:
                _refuse_non_finite(hvps, f"{g.where}: a Hessian-vector product")
            for g in (g for g in stepping if g.needs_samples):
                values = loss.detach().numpy().astype(g.samples.dtype)
                _refuse_non_finite(values, "a per-sample loss")
                _refuse_non_finite(g.samples, f"{g.where}: a per-sample gradient")
                moves.append((g, values))
        except BaseException:
            for g, _, _ in begun:
                g.opt.cancel()
            raise
        for g, inputs in moves:
            if g.needs_samples:
                g.opt.step_batch(g.flat.numpy(), g.samples, inputs)
            else:
                g.opt.finish(g.flat.numpy(), inputs)
            g.bump_versions()

    def state_dict(self) -> dict:
        """torch's state dict, with each group's LRE state blob (a uint8 tensor) under
        "lre_state" of the group's first parameter."""
        state = super().state_dict()
        first = 0
        for g in self._groups:
            blob = bytearray(g.opt.state())
            state["state"][first] = {_STATE_KEY: torch.frombuffer(blob, dtype=torch.uint8)}
            first += len(g.params)
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        """Loads a `state_dict()`: each group's blob must come from an optimizer with the same
        spec (lr and weight_decay aside), size and dtype; nothing changes if one does not."""
        saved = state_dict["param_groups"]
        if len(saved) != len(self._groups):
            raise ValueError(f"the state dict has {len(saved)} param groups, this optimizer "
                             f"{len(self._groups)}")
        loaded, first = [], 0
        for i, (g, group) in enumerate(zip(self._groups, saved)):
            entry = state_dict["state"].get(first, {})
            first += len(g.params)
            if _STATE_KEY not in entry:
                raise ValueError(f"the state dict has no {_STATE_KEY!r} for param group {i}")
            blob = entry[_STATE_KEY]
            blob = blob.numpy().tobytes() if isinstance(blob, torch.Tensor) else bytes(blob)
            replacement = core.Optimizer(g.opt.spec, g.opt.n)
            replacement.load_state(blob)  # LRE_ERR_STATE names what differs from the group's spec
            loaded.append(replacement)
        super().load_state_dict(state_dict)
        self.state.clear()  # the blobs live in the LRE optimizers, not in torch's state
        for g, opt in zip(self._groups, loaded):
            g.opt.close()
            g.opt = opt



def _hyperparameter(group: dict, key: str) -> float:
    """A group's lr or weight_decay as a float (schedulers may store tensors)."""
    value = group[key]
    return float(value.item() if isinstance(value, torch.Tensor) else value)


def _refuse_non_finite(values: Optional[np.ndarray], what: str) -> None:
    if values is not None and not np.isfinite(values).all():
        raise core.LREError(core.Status.LRE_ERR_NUMERICAL,
                            f"{what} is not finite; step refused, nothing changed")


def _loss_value(loss, group: _Group) -> float:
    """The loss's value for curvatures that use it (the sum of per-sample losses)."""
    if loss is None:
        raise ValueError(f"the curvature {group.opt.component('curvature')} needs the loss: pass "
                         "step(closure) or step(loss=loss)")
    return float(loss.detach().sum() if isinstance(loss, torch.Tensor) else loss)
