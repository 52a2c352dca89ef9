"""The lab's monitors say what they find while training runs (logging), see the raw gradient, change nothing."""

from __future__ import annotations

import csv
import logging

import torch
from torch import nn

from regopt.diagnostics.alarms import LOGGER_NAME
from regopt.lab.config import validate
from regopt.lab.diagnosis import report_diagnostics
from regopt.lab.experiment import build_experiment
from tests.conftest import small_raw

ALL_MONITORS = {"gradient_norms": {}, "ill_conditioning": {}, "plateau": {}}


def test_a_run_stuck_at_chance_logs_a_plateau_alarm_and_lists_it_for_the_summary(tmp_path, caplog):
    """Issue 14, trap 10: lr 1.5 sat at chance (loss 2.3027, gradient norm ~0.06) and the console said nothing."""
    raw = small_raw(
        data={"name": "digits"},
        model={"name": "mlp", "widths": [64, 64]},
        optimizer={"name": "sgd", "lr": 1.5},
        train={"epochs": 30, "batch_size": 256},
        diagnostics=ALL_MONITORS,
    )
    experiment = build_experiment(validate(raw))
    with caplog.at_level(logging.WARNING, logger=LOGGER_NAME):
        history = experiment.trainer.fit()
    assert history[-1]["train_error"] > 0.85  # the reported case: stuck at chance (10 classes)
    assert abs(history[-1]["train_loss"] - 2.3026) < 0.01
    plateau = [r for r in caplog.records if r.name == LOGGER_NAME and r.getMessage().startswith("plateau")]
    assert plateau and plateau[0].levelno == logging.WARNING
    assert "stuck" in plateau[0].getMessage() and "learning rate" in plateau[0].getMessage()
    assert experiment.diagnostics is not None
    found = report_diagnostics(experiment.diagnostics, tmp_path)
    listed = [a for a in found["alarms"] if a["monitor"] == "plateau"]
    assert listed and listed[0]["message"] == plateau[0].getMessage()
    assert 1 <= listed[0]["step"] <= experiment.trainer.step
    assert [a["step"] for a in found["alarms"]] == sorted(a["step"] for a in found["alarms"])


def spike_at(step: int, factor: float):
    """A penalty that is zero except at one optimizer step, where it is factor * ||theta||^2: a cliff."""
    calls = [0]

    def penalty(model: nn.Module) -> torch.Tensor:
        calls[0] += 1
        scale = factor if calls[0] == step else 0.0
        return scale * sum((p**2).sum() for p in model.parameters())

    return penalty


def test_clipping_does_not_hide_a_spike_from_the_gradient_monitor(tmp_path, caplog):
    """Issue 14, defect 3.1: with clip_grad_norm = 1 a spike of norm ~4e4 at step 12 was recorded as 1.0."""
    raw = small_raw(train={"epochs": 2, "batch_size": 32, "clip_grad_norm": 1.0}, diagnostics={"gradient_norms": {}})
    experiment = build_experiment(validate(raw))
    experiment.trainer.penalties.append(spike_at(12, 1e4))
    with caplog.at_level(logging.WARNING, logger=LOGGER_NAME):
        experiment.trainer.fit()
    monitor = experiment.diagnostics.monitors["gradient_norms"]  # type: ignore[union-attr]
    assert [s.step for s in monitor.spikes] == [12]
    raw_norm = dict(monitor.history)[12]
    assert raw_norm > 1e3
    clipped = dict(zip([h[0] for h in monitor.history], monitor.clipped_norms, strict=True))
    assert abs(clipped[12] - 1.0) < 1e-4  # what the optimizer used
    spikes = [r.getMessage() for r in caplog.records if r.name == LOGGER_NAME]
    assert len(spikes) == 1 and spikes[0].startswith("gradient spike at step 12: ") and "clipped to norm 1" in spikes[0]
    report_diagnostics(experiment.diagnostics, tmp_path)  # type: ignore[arg-type]
    with open(tmp_path / "gradient_norms.csv", newline="") as f:
        rows = {int(r["step"]): r for r in csv.DictReader(f)}
    assert float(rows[12]["grad_norm"]) == raw_norm and float(rows[12]["clipped_norm"]) == clipped[12]


def test_monitors_leave_training_bit_for_bit_unchanged_with_clipping():
    """Every lab monitor on (the ill-conditioning one running the backward at its check steps) and clipping on:
    the same weights as without any monitor."""

    def train(diagnostics: dict) -> list[torch.Tensor]:
        raw = small_raw(
            train={"epochs": 2, "batch_size": 32, "clip_grad_norm": 0.5},
            diagnostics={"nonfinite_guard": False, **diagnostics},
        )
        experiment = build_experiment(validate(raw))
        experiment.trainer.fit()
        return [p.detach().clone() for p in experiment.model.parameters()]

    bare = train({})
    watched = train(
        {"gradient_norms": {"window": 5}, "ill_conditioning": {"every": 3, "patience": 1}, "plateau": {"window": 4}}
    )
    assert all(torch.equal(a, b) for a, b in zip(bare, watched, strict=True))
