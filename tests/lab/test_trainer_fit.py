"""``Trainer.fit`` takes its limits as totals (so a second call continues where the first stopped) and the
objective may hold terms that see the batch (issue 16): nobody patches the Trainer's attributes to do either."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor

from regopt.lab.config import validate
from regopt.lab.experiment import build_experiment
from regopt.lab.objective import TrainingBatch
from regopt.monitor import Monitor
from tests.conftest import small_raw

DROPOUT = {"name": "mlp", "widths": [16], "dropout_hidden": 0.2}  # draws from torch's RNG every step


def _measured(history: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def _weights(experiment: Any) -> list[Tensor]:
    return [p.detach().clone() for p in experiment.model.parameters()]


def test_fit_in_two_calls_equals_one_call_bit_for_bit() -> None:
    config = validate(small_raw(model=DROPOUT, train={"epochs": 4, "batch_size": 48}))
    straight = build_experiment(config)
    straight.trainer.fit()
    split = build_experiment(config)
    split.trainer.fit(max_epochs=1)
    assert split.trainer.stop_reason == "completed 1 epochs"
    split.trainer.fit(max_epochs=4)
    assert split.trainer.stop_reason == "completed 4 epochs" and split.trainer.epoch == 4
    for a, b in zip(_weights(straight), _weights(split), strict=True):
        assert torch.equal(a, b)
    assert _measured(straight.trainer.history) == _measured(split.trainer.history)


def test_max_steps_cuts_the_epoch_and_a_larger_limit_continues() -> None:
    experiment = build_experiment(validate(small_raw(train={"epochs": 3, "batch_size": 50})))
    trainer = experiment.trainer
    per_epoch = trainer.steps_per_epoch()
    trainer.fit(max_steps=per_epoch + 2)
    assert (trainer.step, trainer.epoch, trainer.stop_reason) == (per_epoch + 2, 2, f"reached {per_epoch + 2} steps")
    trainer.fit(max_steps=10 * per_epoch)  # the epoch limit (3) now binds
    assert (trainer.epoch, trainer.stop_reason) == (3, "completed 3 epochs")
    assert trainer.step == 3 * per_epoch - (per_epoch - 2)  # epoch 2 was cut short after 2 of its batches


def test_a_monitors_stop_is_not_lifted_by_a_larger_limit() -> None:
    class StopAtTwo(Monitor):
        def after_epoch(self, epoch: int, metrics: Any) -> tuple[bool, str]:
            return epoch == 2, "enough"

    experiment = build_experiment(validate(small_raw(train={"epochs": 5, "batch_size": 64})))
    experiment.trainer.monitors.append(StopAtTwo())
    experiment.trainer.fit()
    experiment.trainer.fit(max_epochs=10)
    assert (experiment.trainer.epoch, experiment.trainer.stop_reason) == (2, "enough")


def test_start_step_counts_on() -> None:
    config = validate(small_raw(train={"epochs": 1, "batch_size": 64}))
    experiment = build_experiment(config)
    from regopt.lab.trainer import Trainer

    trainer = Trainer(
        experiment.model, experiment.trainer.optimizer, experiment.data, epochs=1, batch_size=64, start_step=100
    )
    trainer.fit()
    assert trainer.step == 100 + trainer.steps_per_epoch() and trainer.history[-1]["step"] == trainer.step


def test_an_objective_term_sees_the_batch_and_reaches_the_gradient() -> None:
    """One step with the term ``beta * mean(output^2)`` moves the weights as plain SGD on task loss + that term,
    computed by hand with autograd; the term receives the transformed batch and the task loss the Trainer uses."""
    beta = 0.3
    config = validate(small_raw(optimizer={"name": "sgd", "lr": 0.1}, train={"epochs": 1, "batch_size": 32}))
    experiment = build_experiment(config)
    trainer, model = experiment.trainer, experiment.model
    seen: list[TrainingBatch] = []

    def output_penalty(batch: TrainingBatch) -> Tensor:
        seen.append(batch)
        return beta * batch.output.pow(2).mean()

    trainer.batch_transforms.append(lambda x, y: (x * 2.0, y))
    trainer.terms.append(output_penalty)
    x, y = experiment.data.x_train[:32], experiment.data.y_train[:32]
    before = _weights(experiment)
    loss = trainer.train_step(x, y)
    (batch,) = seen
    assert torch.equal(batch.x, x * 2.0) and torch.equal(batch.y, y) and batch.model is model
    assert torch.equal(batch.task_loss.detach(), loss)

    reference = [w.clone().requires_grad_(True) for w in before]
    names = [n for n, _ in model.named_parameters()]
    output = torch.func.functional_call(model, dict(zip(names, reference, strict=True)), (x * 2.0,))
    objective = torch.nn.functional.cross_entropy(output, y) + beta * output.pow(2).mean()
    grads = torch.autograd.grad(objective, reference)
    for after, w, g in zip(_weights(experiment), before, grads, strict=True):
        torch.testing.assert_close(after, w - 0.1 * g, rtol=1e-6, atol=1e-7)


def test_an_objective_terms_state_is_checkpointed() -> None:
    class Counting:
        def __init__(self) -> None:
            self.calls = 0

        def __call__(self, batch: TrainingBatch) -> Tensor:
            self.calls += 1
            return batch.task_loss * 0.0

        def state_dict(self) -> dict[str, int]:
            return {"calls": self.calls}

        def load_state_dict(self, state: dict[str, int]) -> None:
            self.calls = state["calls"]

    config = validate(small_raw(train={"epochs": 1, "batch_size": 64}))
    first, second = build_experiment(config), build_experiment(config)
    term, restored = Counting(), Counting()
    first.trainer.terms.append(term)
    second.trainer.terms.append(restored)
    first.trainer.fit()
    second.trainer.load_state_dict(first.trainer.state_dict())
    assert restored.calls == term.calls == first.trainer.step


@pytest.mark.parametrize("limits", [{"max_epochs": 0}, {"max_steps": 0}])
def test_limits_already_reached_train_nothing(limits: dict[str, int]) -> None:
    experiment = build_experiment(validate(small_raw(train={"epochs": 2, "batch_size": 64})))
    before = _weights(experiment)
    experiment.trainer.fit(**limits)
    assert experiment.trainer.step == 0 and experiment.trainer.history == []
    assert all(torch.equal(a, b) for a, b in zip(before, _weights(experiment), strict=True))
