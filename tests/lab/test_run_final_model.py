"""One run directory describes one final model: early stopping's Algorithms 7.2 (retrain) and 7.3 (continue)."""

from __future__ import annotations

import json

import pytest
import torch

from regopt.lab.checkpoint import load_checkpoint
from regopt.lab.config import validate
from regopt.lab.runs import read_metrics, run
from tests.conftest import small_raw


@pytest.fixture(autouse=True)
def _no_curves(monkeypatch):
    """curves.png takes most of a tiny run's time (matplotlib) and is not what these tests check."""
    monkeypatch.setattr("regopt.lab.runs.plot_curves", lambda *args, **kwargs: None)


def _raw(then: str):
    return small_raw(
        name=then,
        data={"name": "digits", "train_size": 100},
        model={"name": "mlp", "widths": [16]},
        optimizer={"name": "sgd", "lr": 0.5, "momentum": 0.9},
        train={"epochs": 30, "batch_size": 32},
        regularize={"early_stopping": {"patience": 2, "monitor": "val_loss", "then": then}},
    )


@pytest.mark.parametrize(("then", "algorithm"), [("retrain", "Algorithm 7.2"), ("continue", "Algorithm 7.3")])
def test_after_early_stopping_the_run_directory_describes_the_final_model(tmp_path, then, algorithm):
    result = run(validate(_raw(then)), out=tmp_path)
    summary = json.loads((result.path / "summary.json").read_text())
    history = read_metrics(result.path / "metrics.csv")
    es = summary["early_stopping"]
    assert es["then"]["steps"] > 0  # the final model trained on the validation examples
    assert algorithm in summary["final_model"]
    # no validation error for a model that trained on the validation data, and why
    for key in ("best_val_error", "final_val_error", "final_val_loss", "generalization_gap"):
        assert summary[key] is None
        assert "trained on the validation" in summary["not_measured"][key]
    # the early-stopping phase keeps its own figures under "early_stopping"
    assert es["best_val_error"] == min(row["val_error"] for row in history)
    assert es["stopped_epoch"] == es["best_epoch"] + 2 == history[-1]["epoch"]
    assert es["final_val_error"] == next(row["val_error"] for row in history if row["epoch"] == es["best_epoch"])
    if then == "retrain":  # the restored weights were thrown away: do not claim them
        assert "restored the weights" not in summary["stop_reason"]
        assert "restored the weights" in es["stop_reason"]
    assert algorithm in summary["stop_reason"]
    # checkpoint.pt holds the final model (what `regopt diagnose` reads), test_* were measured on it
    state = load_checkpoint(result.path / "checkpoint.pt")
    final = result.experiment.model.state_dict()
    for name, value in state["model"].items():
        assert torch.equal(value, final[name]), name
    model = result.experiment.model
    data = result.experiment.data
    with torch.no_grad():
        model.eval()
        error = (model(data.x_test).argmax(1) != data.y_test).double().mean().item()
    assert summary["test_error"] == pytest.approx(error, abs=1e-12)
    assert state["position"]["step"] == summary["steps"]


@pytest.mark.parametrize("then", ["retrain", "continue"])
def test_a_finished_run_with_then_resumes_to_the_same_final_model(tmp_path, then):
    first = run(validate(_raw(then)), out=tmp_path)
    again = run(validate(_raw(then)), out=tmp_path, resume=True)
    assert again.summary["test_error"] == first.summary["test_error"]
    assert again.summary["early_stopping"] == first.summary["early_stopping"]
    for (name, p), q in zip(
        first.experiment.model.state_dict().items(), again.experiment.model.state_dict().values(), strict=True
    ):
        assert torch.equal(p, q), name
