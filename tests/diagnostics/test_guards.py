"""NonFiniteGuard: catches NaN/Inf in the loss, a gradient or a parameter in the very step it appears."""

from __future__ import annotations

import math
import pickle
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from regopt.diagnostics.guards import NonFiniteGuard, TrainingDiverged
from regopt.monitor import Monitor


def mlp(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))


def data(n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 3, generator=g), torch.randn(n, 2, generator=g)


def train(guard: NonFiniteGuard, model: nn.Module, steps: int, inject=None, lr: float = 0.1) -> int:
    """A plain SGD loop; ``inject(step, model)`` may corrupt gradients between backward and the step."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    x, y = data()
    for step in range(1, steps + 1):
        optimizer.zero_grad(set_to_none=True)
        loss = F.mse_loss(model(x), y)
        loss.backward()
        if inject is not None:
            inject(step, model)
        optimizer.step()
        guard.after_step(step, loss.detach())
    return steps


def nan_gradient_at(step_to_break: int, layer: int):
    def inject(step: int, model: nn.Module) -> None:
        if step == step_to_break:
            model[layer].weight.grad[0, 0] = math.nan

    return inject


def test_finite_steps_do_not_raise():
    model = mlp()
    guard = NonFiniteGuard(model, lr_fn=lambda: 0.1)
    assert isinstance(guard, Monitor)
    assert train(guard, model, 20) == 20
    assert guard.after_epoch(1, {}) == (False, "")
    assert guard.state_dict() == {}


def test_nan_gradient_in_second_layer_raises_at_that_step():
    model = mlp()
    guard = NonFiniteGuard(model, lr_fn=lambda: 0.1)
    with pytest.raises(TrainingDiverged) as info:
        train(guard, model, 20, inject=nan_gradient_at(7, layer=2))
    err = info.value
    assert (err.step, err.layer, err.lr) == (7, "2.weight", 0.1)
    assert "gradient" in err.what  # SGD has already carried the NaN into the value as well
    message = str(err)
    assert re.search(r"^training diverged at step 7: the gradient and value of '2\.weight' are non-finite", message)
    assert re.search(r"loss \d\.\d+; learning rate 0\.1\b", message)
    assert message.endswith(
        "Lower the learning rate, clip gradients (train.clip_grad_norm), or check the inputs for NaN."
    )
    assert "largest stable lr" not in message


def test_scripted_gradient_only_names_gradient_and_stable_lr():
    model = mlp()
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    guard = NonFiniteGuard(model, lr_fn=lambda: 0.5, stable_lr_fn=lambda: 0.021)
    for step in range(1, 7):
        guard.after_step(step, torch.tensor(1.0))
    model[2].weight.grad[1, 2] = math.inf
    with pytest.raises(TrainingDiverged) as info:
        guard.after_step(7, torch.tensor(1.0))
    err = info.value
    assert (err.step, err.layer, err.what, err.stable_lr) == (7, "2.weight", "gradient", 0.021)
    assert re.search(r"step 7: the gradient of '2\.weight' is non-finite .*1 of 4 parameters", str(err))
    assert re.search(r"learning rate 0\.5; largest stable lr ~0\.021\.", str(err))


def test_first_affected_layer_in_model_order():
    model = mlp()
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    model[2].weight.grad[0, 0] = math.nan
    with torch.no_grad():
        model[0].bias[1] = -math.inf
    with pytest.raises(TrainingDiverged) as info:
        NonFiniteGuard(model).after_step(3, torch.tensor(0.25))
    err = info.value
    assert (err.layer, err.what) == ("0.bias", "value")
    assert re.search(r"the value of '0\.bias' is non-finite .*2 of 4 parameters", str(err))
    assert "learning rate unknown" in str(err)


def test_nan_loss_names_the_loss():
    model = mlp()
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    guard = NonFiniteGuard(model, lr_fn=lambda: 0.01)
    with pytest.raises(TrainingDiverged) as info:
        guard.after_step(4, torch.tensor(math.nan))
    err = info.value
    assert (err.step, err.layer, err.what) == (4, None, None)
    assert math.isnan(err.loss)
    assert re.search(r"step 4: the loss is non-finite .*; loss nan; learning rate 0\.01", str(err))
    with pytest.raises(TrainingDiverged, match="the loss is non-finite"):
        guard.after_step(5, math.inf)  # a Python float loss works too


def test_huge_but_finite_values_are_not_flagged():
    model = mlp()
    with torch.no_grad():
        model[0].weight.fill_(1e30)  # the L2 norm would overflow float32; the max-abs norm does not
    NonFiniteGuard(model).after_step(1, torch.tensor(1e30))


def test_exception_is_a_floating_point_error_and_pickles():
    err = TrainingDiverged("boom", step=3, layer="0.weight", what="value", loss=1.0, lr=0.1)
    assert isinstance(err, FloatingPointError)
    copy = pickle.loads(pickle.dumps(err))
    assert (str(copy), copy.step, copy.layer, copy.lr) == ("boom", 3, "0.weight", 0.1)
    assert "Lower the learning rate" in str(TrainingDiverged())


def test_end_to_end_divergence_caught_at_first_nonfinite_step():
    """Linear regression with a learning rate far above 2 / lambda_max: the guard stops at the first bad step."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 5, generator=g) * 3
    y = x @ torch.randn(5, 1, generator=g)

    def run(guarded: bool) -> int | None:
        """The first step whose loss, gradients or parameters are not all finite (checked by hand)."""
        torch.manual_seed(0)
        model = nn.Linear(5, 1)
        optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
        guard = NonFiniteGuard(model, lr_fn=lambda: optimizer.param_groups[0]["lr"]) if guarded else None
        for step in range(1, 500):
            optimizer.zero_grad(set_to_none=True)
            loss = F.mse_loss(model(x), y)
            loss.backward()
            optimizer.step()
            if guard is not None:
                guard.after_step(step, loss.detach())
            finite = math.isfinite(loss.item()) and all(
                bool(torch.isfinite(t).all()) for p in model.parameters() for t in (p, p.grad)
            )
            if not finite:
                return step
        return None

    first_bad = run(guarded=False)
    assert first_bad is not None and first_bad > 5  # it takes a few steps to overflow
    with pytest.raises(TrainingDiverged) as info:
        run(guarded=True)
    assert info.value.step == first_bad
    assert info.value.lr == 1.0
    assert re.search(rf"^training diverged at step {first_bad}: .*learning rate 1\b", str(info.value))


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match=r"^lr_fn must be"):
        NonFiniteGuard(mlp(), lr_fn=0.1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^stable_lr_fn must be"):
        NonFiniteGuard(mlp(), stable_lr_fn=0.02)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^model must be"):
        NonFiniteGuard("model")  # type: ignore[arg-type]
