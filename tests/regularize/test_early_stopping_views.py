"""EarlyStopping with Nesterov's interim point (issue 14, 2.14): the best weights are the evaluated theta.

regopt's Nesterov optimizers keep the interim point theta~ = theta + alpha v in the parameters between steps
(the seed's Algorithm 8.3) and swap theta in only inside ``optimizer.evaluation_view()``. A snapshot taken
outside that view saves theta~, which was never evaluated; with ``optimizer=`` (or ``view=``) the snapshot is
taken inside it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import regopt
from regopt.regularize.early_stopping import EarlyStopping

VALUES = [3.0, 1.0, 2.0, 2.0]  # scripted validation losses: best at epoch 2, stop at epoch 4 (patience 2)


def _problem() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    return nn.Linear(3, 1), torch.randn(16, 3), torch.randn(16, 1)


def _train(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
    for _ in range(3):
        optimizer.zero_grad()
        F.mse_loss(model(x), y).backward()
        optimizer.step()


def _flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).clone()


def _run(**stopper_kwargs: object) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A hand-written loop; returns (restored weights, theta at the best epoch, interim point at the best epoch)."""
    model, x, y = _problem()
    optimizer = regopt.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    if stopper_kwargs.pop("pass_optimizer", False):
        stopper_kwargs["optimizer"] = optimizer
    stopper = EarlyStopping(model, monitor="val_loss", patience=2, **stopper_kwargs)  # type: ignore[arg-type]
    theta = interim = None
    for epoch, value in enumerate(VALUES, start=1):
        _train(model, optimizer, x, y)
        if epoch == 2:
            interim = _flat(model)
            with optimizer.evaluation_view():
                theta = _flat(model)  # what the validation loss is measured on
        stop, _ = stopper.after_epoch(epoch, {"val_loss": value})
    assert stop and stopper.best_epoch == 2
    assert theta is not None and interim is not None
    return _flat(model), theta, interim


def test_with_the_optimizer_the_restored_weights_are_the_evaluated_theta() -> None:
    restored, theta, interim = _run(pass_optimizer=True)
    assert (theta - interim).abs().max() > 1e-3  # the pitfall is real: theta and theta~ differ
    assert torch.equal(restored, theta)


def test_with_the_optimizers_view_the_restored_weights_are_the_evaluated_theta() -> None:
    model, x, y = _problem()
    optimizer = regopt.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    stopper = EarlyStopping(model, monitor="val_loss", patience=2, view=optimizer.evaluation_view)
    for epoch, value in enumerate(VALUES, start=1):
        _train(model, optimizer, x, y)
        if epoch == 2:
            with optimizer.evaluation_view():
                theta = _flat(model)
        stopper.after_epoch(epoch, {"val_loss": value})
    assert torch.equal(_flat(model), theta)


def test_without_a_view_the_snapshot_is_the_interim_point() -> None:
    """The documented pitfall: a stopper that is not told of the optimizer keeps theta~ (unchanged behaviour)."""
    restored, theta, interim = _run()
    assert torch.equal(restored, interim) and not torch.equal(restored, theta)


def test_an_optimizer_without_a_view_snapshots_the_parameters() -> None:
    model, x, y = _problem()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    stopper = EarlyStopping(model, monitor="val_loss", patience=2, optimizer=optimizer)
    for epoch, value in enumerate(VALUES, start=1):
        _train(model, optimizer, x, y)
        if epoch == 2:
            expected = _flat(model)
        stopper.after_epoch(epoch, {"val_loss": value})
    assert torch.equal(_flat(model), expected)


def test_any_view_is_entered_for_the_snapshot_and_left_afterwards() -> None:
    model = nn.Linear(2, 1, bias=False)
    entered: list[str] = []

    @contextlib.contextmanager
    def doubled() -> Iterator[None]:
        entered.append("in")
        with torch.no_grad():
            model.weight.mul_(2.0)
        try:
            yield
        finally:
            with torch.no_grad():
                model.weight.div_(2.0)

    with torch.no_grad():
        model.weight.fill_(1.0)
    stopper = EarlyStopping(model, monitor="val_loss", patience=1, view=doubled)
    stopper.after_epoch(1, {"val_loss": 1.0})
    assert entered == ["in"] and torch.equal(model.weight, torch.ones(1, 2))  # left as it was
    assert torch.equal(stopper.best_weights["weight"], torch.full((1, 2), 2.0))  # type: ignore[index]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"optimizer": "sgd"}, TypeError, r"optimizer must be a torch\.optim\.Optimizer or None, got str"),
        ({"view": 3}, TypeError, r"view must be a callable returning a context manager or None, got int"),
        (
            {"optimizer": torch.optim.SGD([nn.Parameter(torch.ones(1))], lr=0.1), "view": contextlib.nullcontext},
            ValueError,
            r"pass optimizer= or view=, not both",
        ),
    ],
    ids=["optimizer", "view", "both"],
)
def test_bad_view_arguments(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        EarlyStopping(nn.Linear(2, 1), **kwargs)
