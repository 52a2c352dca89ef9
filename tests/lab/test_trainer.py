"""The Trainer learns, runs its phases in order, and resumes exactly."""

from __future__ import annotations

import torch
from torch import nn

from regopt.lab.config import validate
from regopt.lab.experiment import build_experiment
from regopt.lab.trainer import Trainer
from regopt.monitor import Monitor
from tests.conftest import small_raw


def test_mlp_learns_moons_below_five_percent_validation_error():
    config = validate(
        small_raw(
            data={"name": "moons", "num_samples": 1000, "noise": 0.1},
            model={"name": "mlp", "widths": [64, 64]},
            optimizer={"name": "adam", "lr": 0.01},
            train={"epochs": 30, "batch_size": 32},
        )
    )
    experiment = build_experiment(config)
    history = experiment.trainer.fit()
    assert history[-1]["val_error"] < 0.05
    assert history[-1]["train_loss"] < history[0]["train_loss"]


def test_phases_run_in_order_and_penalty_reaches_the_gradient(small_config):
    experiment = build_experiment(small_config)
    trainer, model = experiment.trainer, experiment.model
    calls: list[str] = []
    alpha = 0.5

    def penalty(m: nn.Module) -> torch.Tensor:
        calls.append("penalty")
        return alpha * sum((p**2).sum() for p in m.parameters()) / 2

    def transform(m: nn.Module) -> None:
        calls.append("transform")
        grads_with_penalty.append([p.grad.clone() for p in m.parameters()])

    class Recorder(Monitor):
        def after_step(self, step, loss):
            calls.append(f"monitor{step}")

    grads_with_penalty: list[list[torch.Tensor]] = []
    trainer.penalties.append(penalty)
    trainer.grad_transforms.append(transform)
    trainer.post_step.append(lambda m: calls.append("post"))
    trainer.monitors.append(Recorder())

    x, y = experiment.data.x_train[:32], experiment.data.y_train[:32]
    before = [p.detach().clone() for p in model.parameters()]
    trainer.train_step(x, y)
    assert calls == ["penalty", "transform", "post"]
    # gradient of J + alpha/2 ||theta||^2 is grad J + alpha * theta (checked against autograd without penalty)
    model.zero_grad()
    with torch.no_grad():
        for p, b in zip(model.parameters(), before, strict=True):
            p.copy_(b)
    trainer.loss_fn(model(x), y).backward()
    for p, b, g in zip(model.parameters(), before, grads_with_penalty[0], strict=True):
        torch.testing.assert_close(g, p.grad + alpha * b)


def test_monitor_stop_ends_training_with_its_reason(small_config):
    class StopAtTwo(Monitor):
        def after_epoch(self, epoch, metrics):
            return epoch == 2, "enough at two"

    experiment = build_experiment(
        small_config.model_copy(update={"train": small_config.train.model_copy(update={"epochs": 10})})
    )
    experiment.trainer.monitors.append(StopAtTwo())
    history = experiment.trainer.fit()
    assert [row["epoch"] for row in history] == [1, 2]
    assert experiment.trainer.stop_reason == "enough at two"


def test_evaluation_view_is_entered_for_evaluation_only(small_config):
    experiment = build_experiment(small_config)
    trainer = experiment.trainer
    entered: list[bool] = []

    class View:
        def __enter__(self):
            entered.append(trainer.model.training)

        def __exit__(self, *exc):
            return False

    trainer.eval_views.append(View)
    trainer.fit()
    # two evaluations (train, validation) per epoch, always in eval mode
    assert entered == [False] * 2 * small_config.train.epochs


def test_batches_cover_the_training_set_once_per_epoch(small_config):
    experiment = build_experiment(small_config)
    trainer = experiment.trainer
    seen = torch.cat([x for x, _ in trainer._batches()])
    assert seen.shape == experiment.data.x_train.shape
    rows = {tuple(r.tolist()) for r in seen}
    assert rows == {tuple(r.tolist()) for r in experiment.data.x_train}


def test_shuffle_false_takes_consecutive_slices_in_the_same_order_every_epoch():
    train = {"epochs": 2, "batch_size": 32, "shuffle": False}
    experiment = build_experiment(validate(small_raw(train=train)))
    trainer, x_train = experiment.trainer, experiment.data.x_train
    first = [x for x, _ in trainer._batches()]
    assert torch.equal(torch.cat(first), x_train)
    assert [len(x) for x in first[:-1]] == [32] * (len(first) - 1)
    trainer.fit()
    assert torch.equal(torch.cat([x for x, _ in trainer._batches()]), x_train)  # the next epoch: same order
    shuffled = build_experiment(validate(small_raw(train={"epochs": 2, "batch_size": 32}))).trainer
    assert not torch.equal(torch.cat([x for x, _ in shuffled._batches()]), x_train)


def test_scheduler_steps_per_interval(small_config):
    for interval, expected_steps in (("epoch", 3), ("step", 3 * 10)):
        config = validate(small_raw(schedule={"name": "exponential", "gamma": 0.5, "interval": interval}))
        experiment = build_experiment(config)
        experiment.trainer.fit()
        n_train = len(experiment.data.x_train)
        steps = expected_steps if interval == "epoch" else 3 * -(-n_train // 32)
        assert experiment.trainer.optimizer.param_groups[0]["lr"] == 0.1 * 0.5**steps


def test_trainer_rejects_bad_arguments(small_config):
    experiment = build_experiment(small_config)
    import pytest

    with pytest.raises(ValueError, match="epochs and batch_size must be positive"):
        Trainer(experiment.model, experiment.trainer.optimizer, experiment.data, epochs=0, batch_size=1)
    with pytest.raises(ValueError, match="scheduler_interval"):
        Trainer(
            experiment.model,
            experiment.trainer.optimizer,
            experiment.data,
            epochs=1,
            batch_size=1,
            scheduler_interval="batch",
        )  # type: ignore[arg-type]


def test_monitors_see_the_raw_gradient_between_backward_and_the_gradient_transforms(small_config):
    """Issue 14, defect 3.1: monitors read p.grad only after clipping, which hid the cliffs clipping is for."""
    experiment = build_experiment(small_config)
    trainer, model = experiment.trainer, experiment.model
    calls: list[str] = []
    seen: dict[str, list[torch.Tensor]] = {}

    def halve(m: nn.Module) -> None:
        calls.append("transform")
        seen["before transform"] = [p.grad.clone() for p in m.parameters()]
        for p in m.parameters():
            p.grad.mul_(0.5)

    class Raw(Monitor):
        def after_backward(self, step):
            calls.append(f"after_backward{step}")
            seen["after_backward"] = [p.grad.clone() for p in model.parameters()]

        def after_step(self, step, loss):
            calls.append(f"after_step{step}")

    trainer.grad_transforms.append(halve)
    trainer.monitors.append(Raw())
    trainer.fit(max_steps=1)
    assert calls == ["after_backward1", "transform", "after_step1"]
    for raw, before in zip(seen["after_backward"], seen["before transform"], strict=True):
        assert torch.equal(raw, before)
