"""A monitor says what it measured through ``Monitor.report()`` (issue 16): the run writes its tables as CSV
files in the run directory and its findings into ``summary.json``, for the built-in diagnostics and any other."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor

from regopt.lab.config import validate
from regopt.lab.diagnosis import DIAGNOSTICS
from regopt.lab.runs import run
from regopt.monitor import Monitor, MonitorReport
from tests.conftest import small_raw


class LossLog(Monitor):
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def after_step(self, step: int, loss: Tensor) -> None:
        self.rows.append({"step": step, "loss": float(loss)})

    def after_epoch(self, epoch: int, metrics: Mapping[str, float]) -> tuple[bool, str]:
        return False, ""

    def report(self) -> MonitorReport:
        return MonitorReport({"loss_log.csv": self.rows}, {"steps_logged": len(self.rows)})


def test_any_monitors_report_lands_in_the_run_directory(tmp_path: Path) -> None:
    log = LossLog()
    result = run(validate(small_raw(train={"epochs": 2, "batch_size": 64})), out=tmp_path, extra_monitors=[log])
    with open(result.path / "loss_log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == list(range(1, result.summary["steps"] + 1))
    summary = json.loads((result.path / "summary.json").read_text())
    assert summary["diagnostics"]["steps_logged"] == result.summary["steps"]


def test_every_diagnostic_reports_through_its_monitor(tmp_path: Path) -> None:
    raw = small_raw(
        train={"epochs": 2, "batch_size": 64},
        diagnostics={"gradient_norms": {}, "ill_conditioning": {"every": 2}, "plateau": {"window": 4}},
    )
    result = run(validate(raw), out=tmp_path)
    # the last needs torchrun's processes: its report is tested in tests/lab/test_torchrun.py
    assert list(DIAGNOSTICS) == [
        "nonfinite_guard",
        "gradient_norms",
        "ill_conditioning",
        "plateau",
        "gradient_noise_scale",
    ]
    for name in ("gradient_norms.csv", "ill_conditioning.csv"):
        assert (result.path / name).is_file(), name
    found = result.summary["diagnostics"]
    assert {"gradient_spikes", "ill_conditioning_alarms", "last_stable_lr", "plateaus", "alarms"} <= set(found)
