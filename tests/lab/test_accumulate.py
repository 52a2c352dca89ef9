"""Gradient accumulation (issue 17, item 3): ``[train] accumulate = k`` takes the optimizer step of the whole batch
in k micro-batches. Without dropout or BatchNorm the final weights equal the unaccumulated run's to float rounding
(the k gradients are summed in another order: a few ulps per step, ~1e-7 after 30 steps of weights of size ~0.5);
penalties count once per step, not once per micro-batch (counted k times, an L2 of 1e-2 moves the weights by
~1e-3, four orders of magnitude above the tolerance); monitors see optimizer steps; a resumed run ends on the bits
of an uninterrupted one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor

from regopt.lab.batch_order import micro_batches
from regopt.lab.config import ConfigError, validate
from regopt.lab.experiment import build_experiment
from regopt.lab.models import ModelError
from regopt.lab.runs import run
from regopt.monitor import Monitor
from tests.conftest import small_raw
from tests.lab.interruptions import run_interrupted

TOLERANCE = 1e-6  # float rounding of a 30-step run (the bar); differences measured here are ~1e-7


def raw_with(accumulate: int, **sections: Any) -> dict[str, Any]:
    train = {"epochs": 3, "batch_size": 40, "accumulate": accumulate, "evaluate_test": False}
    raw = small_raw(
        model={"name": "mlp", "widths": [32, 32]},
        optimizer={"name": "sgd", "lr": 0.1, "momentum": 0.9},
        regularize={"l2": {"alpha": 1e-2}},
        train=train,
    )
    raw.update(sections)
    return raw


def final_weights(raw: dict[str, Any]) -> tuple[Tensor, list[dict[str, float]]]:
    experiment = build_experiment(validate(raw))
    history = experiment.fit()
    return torch.cat([p.detach().flatten() for p in experiment.model.parameters()]), history


@pytest.mark.parametrize("accumulate", [2, 3, 40])  # even parts, 14/13/13 parts of 40, one example per part
def test_accumulated_steps_equal_the_whole_batch_step(accumulate: int) -> None:
    plain, plain_history = final_weights(raw_with(1))
    accumulated, history = final_weights(raw_with(accumulate))
    assert (plain - accumulated).abs().max().item() < TOLERANCE
    assert [row["step"] for row in history] == [row["step"] for row in plain_history]  # optimizer steps, not parts
    assert history[-1]["train_loss"] == pytest.approx(plain_history[-1]["train_loss"], rel=1e-5)


def test_batch_aware_terms_are_weighted_by_each_part_share() -> None:
    """Tangent prop's penalty is a mean over the batch, like the loss: the parts' shares make it add up."""
    sections = {"regularize": {"tangent_prop": {"alpha": 0.1, "tangents": "signal"}}}
    data = {"name": "mnist1d", "train_size": 200}
    plain, _ = final_weights(raw_with(1, data=data, **sections))
    accumulated, _ = final_weights(raw_with(4, data=data, **sections))
    assert (plain - accumulated).abs().max().item() < TOLERANCE


class StepRecorder(Monitor):
    def __init__(self) -> None:
        self.backward_steps: list[int] = []
        self.steps: list[int] = []
        self.losses: list[float] = []

    def after_backward(self, step: int) -> None:
        self.backward_steps.append(step)

    def after_step(self, step: int, loss: Tensor) -> None:
        self.steps.append(step)
        self.losses.append(float(loss))


def test_monitors_and_the_loss_they_see_are_per_optimizer_step() -> None:
    losses: dict[int, list[float]] = {}
    for accumulate in (1, 4):
        experiment = build_experiment(validate(raw_with(accumulate)))
        recorder = StepRecorder()
        experiment.trainer.monitors.append(recorder)
        experiment.trainer.fit(max_steps=7)
        assert recorder.steps == recorder.backward_steps == list(range(1, 8))
        losses[accumulate] = recorder.losses
    assert losses[4] == pytest.approx(losses[1], rel=1e-5)  # the whole batch's task loss, not the last part's


def test_the_ill_conditioning_check_needs_a_probe_batch_when_the_backward_is_split() -> None:
    raw = raw_with(2, diagnostics={"ill_conditioning": {"every": 2}})
    with pytest.raises(ConfigError, match=r"diagnostics.ill_conditioning: with train.accumulate > 1.*probe_size"):
        build_experiment(validate(raw))
    raw["diagnostics"]["ill_conditioning"]["probe_size"] = 40
    experiment = build_experiment(validate(raw))
    experiment.trainer.fit(max_steps=6)
    monitor = experiment.diagnostics.monitors["ill_conditioning"]  # type: ignore[union-attr]
    assert [row["step"] for row in monitor.history] == [2, 4, 6]


def test_bad_accumulation_is_refused_with_one_line() -> None:
    with pytest.raises(ConfigError, match="accumulate = 50 micro-batches cannot split batch_size = 40"):
        validate(raw_with(50))
    raw = raw_with(30, model={"name": "mlp", "widths": [8], "batch_norm": True})
    with pytest.raises(
        ModelError, match=r"BatchNorm .*batch_size 40 in 30 micro-batches.*each micro-batch must hold at least 2"
    ):
        build_experiment(validate(raw))


def test_micro_batches_are_views_and_keep_batch_norm_parts_at_two() -> None:
    x, y = torch.arange(10.0).reshape(5, 2), torch.arange(5)
    parts = micro_batches(x, y, 2)
    assert [len(p[0]) for p in parts] == [3, 2] and parts[0][0].data_ptr() == x.data_ptr()
    assert [len(p[0]) for p in micro_batches(x, y, 4, at_least=2)] == [3, 2]  # a last batch of 5 in 2 parts


def test_an_interrupted_accumulated_run_with_dropout_resumes_to_the_same_bits(tmp_path: Path) -> None:
    raw = raw_with(3, model={"name": "mlp", "widths": [32], "dropout_hidden": 0.2})
    raw["train"]["checkpoint_every"] = 4
    straight = run(validate(raw), out=tmp_path / "a")
    run_interrupted(validate(raw), tmp_path / "b", after_step=13)
    resumed = run(validate(raw), out=tmp_path / "b", resume=True)
    assert straight.history[-1]["val_loss"] == resumed.history[-1]["val_loss"]
    for a, b in zip(straight.experiment.model.parameters(), resumed.experiment.model.parameters(), strict=True):
        assert torch.equal(a, b)
