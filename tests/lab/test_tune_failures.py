"""regopt tune: a trial that raises stays in the table as "fail" with its error in one line, and no trial is left
RUNNING (issue 14, trap 2.2)."""

from __future__ import annotations

import csv

import optuna
import pytest

from regopt.lab import tune as tune_module
from regopt.lab.config import ConfigError
from regopt.lab.tune import trial_rows, tune
from tests.lab.tune_helpers import ALPHA, skip_figures, tune_raw


@pytest.fixture(autouse=True)
def _no_figures(monkeypatch):
    skip_figures(monkeypatch)


def _raw():
    return tune_raw()


def _failing_on(number, error):
    real_run = tune_module.run

    def run(config, **kwargs):
        if config.name == f"trial-{number:04d}":
            raise error
        return real_run(config, **kwargs)

    return run


def _csv_rows(path):
    with open(path / "trials.csv") as f:
        return list(csv.DictReader(f))


def test_a_diverged_trial_is_listed_as_failed_and_the_study_goes_on(tmp_path, monkeypatch):
    monkeypatch.setattr(tune_module, "run", _failing_on(1, FloatingPointError("loss is nan at step 3\n(more)")))
    result = tune(_raw(), [ALPHA], trials=3, out=tmp_path)
    states = [r["state"] for r in trial_rows(result.study, result.space)]
    assert states == ["complete", "fail", "complete"]
    row = _csv_rows(result.path)[1]
    assert row["state"] == "fail" and row["error"] == "FloatingPointError: loss is nan at step 3"
    assert float(row["regularize.l2.alpha"]) > 0  # the point that failed is shown
    assert any(note.startswith("trial 1 failed: FloatingPointError") for note in result.notes)
    assert result.study.best_trial.number in (0, 2)


def test_an_unexpected_error_stops_the_study_but_leaves_its_row(tmp_path, monkeypatch):
    monkeypatch.setattr(tune_module, "run", _failing_on(1, KeyError("optimizer.lr")))
    with pytest.raises(KeyError):
        tune(_raw(), [ALPHA], trials=3, out=tmp_path)
    path = tmp_path / "tiny-tune"
    assert [r["state"] for r in _csv_rows(path)] == ["complete", "fail"]
    assert _csv_rows(path)[1]["error"] == "KeyError: 'optimizer.lr'"
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{path / 'study.db'}")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "FAIL"]


def test_an_interrupted_trial_is_not_left_running(tmp_path, monkeypatch):
    monkeypatch.setattr(tune_module, "run", _failing_on(0, KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        tune(_raw(), [ALPHA], trials=2, out=tmp_path)
    monkeypatch.undo()
    result = tune(_raw(), [ALPHA], trials=2, out=tmp_path)
    rows = trial_rows(result.study, result.space)
    assert [(r["trial"], r["state"]) for r in rows] == [(0, "fail"), (1, "complete"), (2, "complete")]
    assert rows[0]["error"] == "interrupted"


def test_every_value_of_the_space_is_checked_before_any_study(tmp_path):
    with pytest.raises(ConfigError, match=r"--param model\.widths"):
        tune(_raw(), ["model.widths=choice:[8],[0]"], trials=2, out=tmp_path)
    with pytest.raises(ConfigError, match=r"--param train\.batch_size"):
        tune(_raw(), ["train.batch_size=int:0:64"], trials=2, out=tmp_path)
    assert not any(tmp_path.iterdir())
