"""After float32 overflow (g'Hg = inf) the stable-lr estimate is unknown, not 0: the last finite one is reported."""

from __future__ import annotations

import csv
import logging
import math
import re
import warnings

import pytest
import torch
from torch import nn

from regopt.diagnostics import IllConditioningMonitor, TrainingDiverged
from regopt.diagnostics.alarms import LOGGER_NAME
from regopt.diagnostics.conditioning import IllConditioningWarning
from regopt.lab.config import validate
from regopt.lab.diagnosis import diagnostic_monitors, report_diagnostics
from tests.conftest import small_raw


class Quadratic(nn.Module):
    """f(w) = 0.5 * k * w^2 in float32 with a curvature k the test sets step by step: g = k w, g'Hg = k^3 w^2."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))
        self.k = 1.0

    def forward(self) -> torch.Tensor:
        return 0.5 * self.k * (self.w**2).sum()


def drive(monitors, model: Quadratic, curvatures: list[float], first_step: int = 1) -> None:
    """One step per curvature, the Trainer's order: a monitor's backward, then after_step (no optimizer step)."""
    for step, k in enumerate(curvatures, start=first_step):
        model.k = k
        model.w.grad = None
        loss = model()
        if not any(m.backward(step, loss) for m in monitors):
            loss.backward()
        for m in monitors:
            m.after_step(step, loss.detach())


def test_overflowed_row_has_no_stable_lr_and_the_last_finite_estimate_is_kept():
    model = Quadratic()
    monitor = IllConditioningMonitor(model, lr_fn=lambda: 1.5, every=1, patience=10)
    drive([monitor], model, [1.0, 1.0, 1.0, 1e13])  # k = 1e13: g'g = 1e26, g'Hg = 1e39 > float32 max
    rows = monitor.history
    assert [r["stable_lr"] for r in rows[:3]] == [2.0, 2.0, 2.0]  # 2 / k
    assert math.isinf(rows[3]["gHg"])
    assert math.isnan(rows[3]["stable_lr"])  # unknown, not 2 * 1e26 / inf = 0.0
    assert monitor.last_stable_lr() == (3, 2.0)


def test_divergence_message_quotes_the_last_finite_estimate_and_the_csv_says_why(tmp_path, caplog):
    """Issue 14, defect 3.2: the guard said "largest stable lr ~0" after overflow, where the alarm said ~2."""
    config = validate(small_raw(diagnostics={"ill_conditioning": {"every": 1, "patience": 2}})).diagnostics
    model = Quadratic()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.5)
    monitors = diagnostic_monitors(config, model, optimizer, None, None)  # type: ignore[arg-type]
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING, logger=LOGGER_NAME):
        warnings.simplefilter("always")
        drive(monitors.all, model, [1.0, 2.0, 2.0])  # lr 1.5 > 2/k at k = 2: an alarm at step 3, stable lr ~1
    assert not [w for w in caught if w.category is IllConditioningWarning]  # the lab logs it, rate-limited, only
    assert caplog.records[0].getMessage().startswith("ill-conditioning at step 3: ")
    assert "largest stable learning rate here ~1 " in caplog.records[0].getMessage()
    with pytest.raises(TrainingDiverged) as caught:
        drive(monitors.all, model, [1e13, math.inf], first_step=4)  # overflow at step 4, an infinite loss at 5
    assert re.search(r"largest stable lr ~1\.", str(caught.value))  # not "~0" from the overflowed check
    assert caught.value.stable_lr == 1.0
    found = report_diagnostics(monitors, tmp_path)
    assert found["last_stable_lr"] == 1.0
    with open(tmp_path / "ill_conditioning.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows[3]["stable_lr"] == ""
    assert "overflow" in rows[3]["note"]
    assert rows[2]["stable_lr"] == "1.0" and rows[2]["note"] == ""
