"""Warmup on any schedule (issue 17, item 1): linear from ``warmup_start_factor`` x lr to lr over the first
intervals, then the named schedule over the rest of the run (torch LinearLR + SequentialLR), exact on resume."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from regopt.lab.config import ConfigError, validate
from regopt.lab.experiment import build_experiment
from regopt.lab.runs import run
from tests.conftest import small_raw
from tests.lab.interruptions import assert_same_run, run_interrupted

LR, WARMUP, START = 0.1, 4, 0.25


def raw_with(schedule: dict[str, Any], epochs: int = 3) -> dict[str, Any]:
    return small_raw(optimizer={"name": "sgd", "lr": LR}, train={"epochs": epochs, "batch_size": 64}, schedule=schedule)


def lrs_of(raw: dict[str, Any], steps: int) -> list[float]:
    """The lr of each of the first ``steps`` optimizer steps of a run of ``raw`` (per-step schedule)."""
    trainer = build_experiment(validate(raw)).trainer
    seen: list[float] = []
    for _ in range(steps):
        seen.append(trainer.optimizer.param_groups[0]["lr"])
        trainer.optimizer.step()  # no gradients: nothing moves, but the schedule sees a step taken
        trainer.scheduler.step()  # type: ignore[union-attr]
    return seen


def test_warmup_then_cosine_follows_the_formula() -> None:
    raw = raw_with({"name": "cosine", "interval": "step", "warmup_steps": WARMUP, "warmup_start_factor": START})
    trainer = build_experiment(validate(raw)).trainer
    horizon = 3 * trainer.steps_per_epoch()
    rest = horizon - WARMUP
    expected = [LR * (START + (1 - START) * k / WARMUP) for k in range(WARMUP)]
    expected += [LR * (1 + math.cos(math.pi * k / rest)) / 2 for k in range(rest)]
    assert lrs_of(raw, horizon) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_warmup_then_constant_and_per_epoch_warmup() -> None:
    steps = lrs_of(raw_with({"name": "constant", "interval": "step", "warmup_steps": 2, "warmup_start_factor": 0.5}), 5)
    assert steps == pytest.approx([0.05, 0.075, 0.1, 0.1, 0.1], rel=1e-12)
    raw = raw_with({"name": "exponential", "gamma": 0.5, "warmup_epochs": 1, "warmup_start_factor": 0.5}, epochs=4)
    result_lrs = [row["lr"] for row in build_experiment(validate(raw)).trainer.fit()]
    assert result_lrs == pytest.approx([0.05, 0.1, 0.05, 0.025], rel=1e-12)


def test_a_run_interrupted_in_its_warmup_resumes_to_the_same_bits(tmp_path: Path) -> None:
    """Ctrl-C after optimizer step 7 of a 10-step warmup (checkpoints every step): --resume ends as the
    uninterrupted run, lr and weights."""
    schedule = {"name": "cosine", "interval": "step", "warmup_steps": 10, "warmup_start_factor": START}
    raw = raw_with(schedule)
    raw["train"]["checkpoint_every"] = 1
    straight = run(validate(raw), out=tmp_path / "a")
    run_interrupted(validate(raw), tmp_path / "b", after_step=7)
    resumed = run(validate(raw), out=tmp_path / "b", resume=True)
    assert_same_run(straight, resumed)


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ({"name": "cosine", "warmup_steps": 3}, 'warmup_steps counts optimizer steps: it needs interval = "step"'),
        ({"name": "cosine", "interval": "step", "warmup_epochs": 1}, "warmup_epochs counts epochs: it needs interval"),
        ({"name": "cosine", "warmup_epochs": 3}, "schedule.warmup_epochs: 3 leaves nothing of the run's 3 epochs"),
        ({"name": "cosine", "warmup_start_factor": 0.0}, "warmup_start_factor"),
    ],
)
def test_warmups_that_cannot_run_are_refused(schedule: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_experiment(validate(raw_with(schedule)))
