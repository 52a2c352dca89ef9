"""Resuming a run directory: an interrupted start, and lengthening a finished or early-stopped run."""

from __future__ import annotations

import pytest
import torch

from regopt.lab.config import read_toml, validate
from regopt.lab.runs import RunDirError, read_metrics, run
from regopt.lab.trainer import Trainer
from tests.conftest import small_raw


@pytest.fixture(autouse=True)
def _no_curves(monkeypatch):
    """curves.png takes most of a tiny run's time (matplotlib) and is not what these tests check."""
    monkeypatch.setattr("regopt.lab.runs.plot_curves", lambda *args, **kwargs: None)


def _strip(rows):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def _same_weights(a, b) -> None:
    mine, theirs = a.experiment.model.state_dict(), b.experiment.model.state_dict()
    assert mine.keys() == theirs.keys()
    for name, p in mine.items():
        assert torch.equal(p, theirs[name]), name


def _raw(epochs: int, schedule: dict | None = None, **sections):
    base = {
        "model": {"name": "mlp", "widths": [16], "dropout_hidden": 0.2},  # dropout: the global RNG continues too
        "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
        "schedule": schedule or {"name": "constant"},
        "train": {"epochs": epochs, "batch_size": 32},
    }
    return small_raw(**{**base, **sections})


def test_resume_of_a_run_interrupted_before_its_first_checkpoint_starts_it_again(tmp_path, monkeypatch):
    config = validate(_raw(3))
    full = run(config, out=tmp_path / "full")

    original, calls = Trainer.train_step, {"n": 0}

    def interrupted(self, x, y):
        calls["n"] += 1
        if calls["n"] == 2:  # step 2 of epoch 1: no checkpoint yet
            raise KeyboardInterrupt
        return original(self, x, y)

    monkeypatch.setattr(Trainer, "train_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(config, out=tmp_path / "cut")
    monkeypatch.undo()
    assert not (tmp_path / "cut" / "tiny" / "checkpoint.pt").exists()
    with pytest.raises(RunDirError, match="interrupted before its first checkpoint; pass --resume to start it again"):
        run(config, out=tmp_path / "cut")
    changed = validate(_raw(3, optimizer={"name": "sgd", "lr": 0.2}))
    with pytest.raises(RunDirError, match=r"config differs .* at optimizer\.lr"):
        run(changed, out=tmp_path / "cut", resume=True)
    again = run(config, out=tmp_path / "cut", resume=True)
    assert any("interrupted before its first checkpoint" in note for note in again.summary["notes"])
    assert _strip(again.history) == _strip(full.history)
    _same_weights(again, full)
    with pytest.raises(RunDirError, match="nothing to resume"):  # a directory that was never a run
        run(config, out=tmp_path / "never", resume=True)


@pytest.mark.parametrize(
    "schedule",
    [
        {"name": "constant"},
        {"name": "step", "step_size": 10, "gamma": 0.5, "interval": "step"},
        {"name": "exponential", "gamma": 0.8},
        {"name": "linear", "tau": 40, "final_fraction": 0.1, "interval": "step"},  # a fixed tau: no horizon
    ],
    ids=lambda s: s["name"],
)
def test_a_finished_run_extended_equals_the_longer_run_bit_for_bit(tmp_path, schedule):
    straight = run(validate(_raw(6, schedule)), out=tmp_path / "straight")
    run(validate(_raw(3, schedule)), out=tmp_path / "extended")
    extended = run(validate(_raw(6, schedule)), out=tmp_path / "extended", resume=True)
    assert [row["epoch"] for row in extended.history] == [1, 2, 3, 4, 5, 6]
    assert _strip(extended.history) == _strip(straight.history)
    metrics = _strip(read_metrics(extended.path / "metrics.csv"))
    assert metrics == _strip(read_metrics(straight.path / "metrics.csv"))
    _same_weights(extended, straight)
    assert extended.summary["stop_reason"] == "completed 6 epochs"
    assert extended.summary["test_error"] == straight.summary["test_error"]
    assert any("train.epochs 3 -> 6" in note for note in extended.summary["notes"])
    saved = read_toml(extended.path / "config.toml")
    assert saved["train"]["epochs"] == 6


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ({"name": "cosine"}, "cosine schedule spans the whole run"),
        ({"name": "linear"}, "linear schedule spans the whole run"),
    ],
)
def test_extending_refuses_a_schedule_that_depends_on_the_run_length(tmp_path, schedule, message):
    run(validate(_raw(2, schedule)), out=tmp_path)
    before = (tmp_path / "tiny" / "metrics.csv").read_bytes()
    with pytest.raises(RunDirError, match=message):
        run(validate(_raw(4, schedule)), out=tmp_path, resume=True)
    assert (tmp_path / "tiny" / "metrics.csv").read_bytes() == before


def test_a_run_cannot_be_shortened_or_extended_by_other_keys(tmp_path):
    run(validate(_raw(3)), out=tmp_path)
    with pytest.raises(RunDirError, match=r"at train\.epochs \(a run can be lengthened, not shortened: 3 -> 2\)"):
        run(validate(_raw(2)), out=tmp_path, resume=True)
    with pytest.raises(RunDirError, match=r"at train\.batch_size"):
        run(validate(_raw(6, train={"epochs": 6, "batch_size": 16})), out=tmp_path, resume=True)


def _early_stopping_raw(patience: int):
    return small_raw(
        data={"name": "digits", "train_size": 100},
        model={"name": "mlp", "widths": [16]},
        optimizer={"name": "sgd", "lr": 0.5, "momentum": 0.9},
        train={"epochs": 30, "batch_size": 32},
        regularize={"early_stopping": {"patience": patience, "monitor": "val_loss"}},
    )


def test_an_early_stopped_run_extended_with_more_patience_equals_the_patient_run(tmp_path):
    impatient = run(validate(_early_stopping_raw(1)), out=tmp_path / "extended")
    stopped = impatient.summary["early_stopping"]["stopped_epoch"]
    assert stopped is not None and stopped < 30
    patient = run(validate(_early_stopping_raw(3)), out=tmp_path / "straight")
    assert patient.summary["epochs"] > stopped  # more patience trains longer: the test means something
    extended = run(validate(_early_stopping_raw(3)), out=tmp_path / "extended", resume=True)
    assert _strip(extended.history) == _strip(patient.history)
    _same_weights(extended, patient)
    assert extended.summary["early_stopping"] == patient.summary["early_stopping"]
    assert extended.summary["test_error"] == patient.summary["test_error"]
    assert any("regularize.early_stopping.patience 1 -> 3" in note for note in extended.summary["notes"])


def test_more_epochs_do_not_undo_an_early_stop(tmp_path):
    stopped = run(validate(_early_stopping_raw(1)), out=tmp_path)
    raw = _early_stopping_raw(1)
    raw["train"]["epochs"] = 40
    again = run(validate(raw), out=tmp_path, resume=True)
    assert _strip(again.history) == _strip(stopped.history)
    assert again.summary["stop_reason"] == stopped.summary["stop_reason"]
    notes = again.summary["notes"]
    assert any(note.startswith("nothing to extend: the run had stopped (early stopping") for note in notes)
