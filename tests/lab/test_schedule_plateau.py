"""``[schedule] name = "plateau"`` (issue 17, item 1): torch's ReduceLROnPlateau judges the configured metric of
each epoch's row; its state is in the checkpoint, so a resumed run reduces at the same epoch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch.optim.lr_scheduler import ReduceLROnPlateau

from regopt.lab.config import ConfigError, validate
from regopt.lab.runs import run
from tests.conftest import small_raw
from tests.lab.interruptions import assert_same_run

PLATEAU = {"name": "plateau", "monitor": "val_error", "patience": 0, "factor": 0.5}


def raw_with(epochs: int, **schedule: Any) -> dict[str, Any]:
    return small_raw(
        optimizer={"name": "sgd", "lr": 0.2, "momentum": 0.9},
        train={"epochs": epochs, "batch_size": 64},
        schedule={**PLATEAU, **schedule},
    )


def test_the_lr_column_is_what_reduce_lr_on_plateau_makes_of_the_metric(tmp_path: Path) -> None:
    """The reference is torch's scheduler fed the run's own val_error sequence."""
    history = run(validate(raw_with(10)), out=tmp_path).history
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.2)
    reference = ReduceLROnPlateau(optimizer, mode="min", factor=0.5, patience=0)
    expected = []
    for row in history:
        expected.append(optimizer.param_groups[0]["lr"])
        reference.step(row["val_error"])
    assert [row["lr"] for row in history] == expected
    assert len(set(expected)) > 1, "the scripted run must see at least one reduction"


def test_a_plateau_run_resumes_to_the_same_reductions_and_bits(tmp_path: Path) -> None:
    straight = run(validate(raw_with(10)), out=tmp_path / "a")
    run(validate(raw_with(4)), out=tmp_path / "b")
    resumed = run(validate(raw_with(10)), out=tmp_path / "b", resume=True)
    assert_same_run(straight, resumed)


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ({"interval": "step"}, 'the plateau schedule judges each epoch\'s metrics: it needs interval = "epoch"'),
        ({"warmup_epochs": 1}, "the plateau schedule takes no warmup"),
        ({"monitor": "val_accuracy"}, "schedule.monitor"),
    ],
)
def test_plateau_schedules_that_cannot_run_are_refused(schedule: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate(raw_with(3, **schedule))
