"""What the tune tests share: a tiny config with an L2 term to search, and runs that skip their figures."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import small_raw

ALPHA = "regularize.l2.alpha=loguniform:1e-5:1e-1"


def tune_raw(batch_size: int = 64) -> dict[str, Any]:
    """The tiny moons config of ``tests.conftest``, 2 epochs, with ``regularize.l2.alpha`` to search."""
    raw = small_raw(train={"epochs": 2, "batch_size": batch_size})
    raw["regularize"] = {"l2": {"alpha": 0.0}}
    return raw


def skip_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    """Drawing each trial's curves is most of a tiny run's time; the tune tests read the study, not the figures."""
    monkeypatch.setattr("regopt.lab.runs.plot_curves", lambda *args, **kwargs: None)
    monkeypatch.setattr("regopt.lab.tune.plot_parameter_curve", lambda *args, **kwargs: None)
