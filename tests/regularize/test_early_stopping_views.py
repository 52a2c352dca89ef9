"""EarlyStopping with Nesterov's interim point (issue 14, 2.14): the best weights are the evaluated theta.

regopt's Nesterov optimizers keep the interim point theta~ = theta + alpha v in the parameters between steps
(the chapter's Algorithm 8.3) and swap theta in only inside ``optimizer.evaluation_view()``. A snapshot taken
outside that view saves theta~, which was never evaluated; with ``optimizer=`` the snapshot is taken inside it
and restored so that the view shows theta* again.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import regopt
from regopt.regularize.early_stopping import EarlyStopping

VALUES = [3.0, 1.0, 2.0, 2.0]  # scripted validation losses: best at epoch 2, stop at epoch 4 (patience 2)
EPS = torch.finfo(torch.float32).eps


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


def _run(optimizer_class=regopt.SGD, *, pass_optimizer: bool):
    """A hand-written loop with scripted validation losses. Returns the model, its optimizer, and theta and
    theta~ at the best epoch (what the validation loss was measured on, and the parameters outside the view)."""
    model, x, y = _problem()
    optimizer = optimizer_class(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    stopper = EarlyStopping(model, monitor="val_loss", patience=2, optimizer=optimizer if pass_optimizer else None)
    theta = interim = None
    for epoch, value in enumerate(VALUES, start=1):
        _train(model, optimizer, x, y)
        if epoch == 2:
            interim = _flat(model)
            with optimizer.evaluation_view() if hasattr(optimizer, "evaluation_view") else torch.no_grad():
                theta = _flat(model)
        stop, reason = stopper.after_epoch(epoch, {"val_loss": value})
    assert stop and stopper.best_epoch == 2 and reason.endswith("restored the weights of epoch 2")
    assert theta is not None and interim is not None
    return model, optimizer, theta, interim


def test_with_the_optimizer_the_view_shows_the_evaluated_theta_after_a_restore() -> None:
    model, optimizer, theta, interim = _run(pass_optimizer=True)
    assert (theta - interim).abs().max() > 1e-3  # the pitfall is real: theta and theta~ differ
    with optimizer.evaluation_view():
        restored = _flat(model)
    # (theta* + alpha v) - alpha v: a few roundings of numbers of the size of theta and alpha v
    scale = float(theta.abs().max() + (theta - interim).abs().max())
    torch.testing.assert_close(restored, theta, rtol=0.0, atol=8 * EPS * scale)
    assert (restored - interim).abs().max() > 1e-3  # not the interim point of the best epoch
    velocity = optimizer.state_dict()["state"]
    assert velocity, "the optimizer keeps its velocity: training can go on from theta*"


def test_the_restored_model_can_train_on() -> None:
    model, optimizer, _, _ = _run(pass_optimizer=True)
    _, x, y = _problem()
    with optimizer.evaluation_view():
        before = F.mse_loss(model(x), y).item()
    _train(model, optimizer, x, y)
    with optimizer.evaluation_view():
        assert F.mse_loss(model(x), y).item() < before


def test_without_the_optimizer_the_snapshot_is_the_interim_point() -> None:
    """The documented pitfall: a stopper that is not told of the optimizer keeps theta~ (unchanged behaviour)."""
    model, optimizer, theta, interim = _run(pass_optimizer=False)
    assert torch.equal(_flat(model), interim)
    with optimizer.evaluation_view():
        shown = _flat(model)
    assert (shown - theta).abs().max() > 1e-3  # the evaluated model after the restore is not theta*


def test_an_optimizer_without_a_view_snapshots_and_restores_the_parameters_exactly() -> None:
    model, _, theta, interim = _run(torch.optim.SGD, pass_optimizer=True)
    assert torch.equal(theta, interim) and torch.equal(_flat(model), theta)


def test_optimizer_must_be_an_optimizer() -> None:
    with pytest.raises(TypeError, match=r"optimizer must be a torch\.optim\.Optimizer or None, got str"):
        EarlyStopping(nn.Linear(2, 1), optimizer="sgd")  # type: ignore[arg-type]
