"""``best.pt``: the weights of the best validation epoch, beside ``checkpoint.pt``, and exact under ``--resume``."""

from __future__ import annotations

import pytest
import torch

import regopt.lab
from regopt.lab import runs
from regopt.lab.checkpoint import load_checkpoint, save_checkpoint
from regopt.lab.config import ConfigError, validate
from regopt.lab.runs import read_metrics, run
from tests.conftest import small_raw
from tests.lab.interruptions import interrupt_train_step


@pytest.fixture(autouse=True)
def _no_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runs, "plot_curves", lambda *args, **kwargs: None)


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert list(a) == list(b)
    for name in a:
        assert torch.equal(a[name], b[name]), name


def _raw(epochs: int, **sections):
    # lr 0.5 with momentum on noisy moons: the validation error goes up and down, so the best epoch is not the last
    return small_raw(
        data={"name": "moons", "num_samples": 200, "noise": 0.3},
        optimizer={"name": "sgd", "lr": 0.5, "momentum": 0.9},
        train={"epochs": epochs, "batch_size": 16, "keep_best": True, "evaluate_test": False},
        **sections,
    )


def test_best_pt_holds_the_best_epochs_weights(tmp_path) -> None:
    result = run(validate(_raw(8)), out=tmp_path / "long")
    errors = [row["val_error"] for row in read_metrics(result.path / "metrics.csv")]
    best = load_checkpoint(result.path / "best.pt")
    epoch = errors.index(min(errors)) + 1  # the first epoch of the lowest val_error
    assert (best["epoch"], best["metric"], best["value"]) == (epoch, "val_error", min(errors))
    assert epoch < len(errors), "the check needs a best epoch before the last"
    shorter = run(validate(_raw(epoch)), out=tmp_path / "short")  # the same run, stopped at the best epoch
    _same(best["model"], shorter.experiment.model.state_dict())
    model, _, _ = regopt.lab.load_run(result.path)  # default: best.pt when the run kept one
    _same(model.state_dict(), best["model"])
    final, _, _ = regopt.lab.load_run(result.path, weights="final")
    _same(final.state_dict(), load_checkpoint(result.path / "checkpoint.pt")["model"])


def test_early_stopping_that_restores_keeps_best_pt_equal_to_the_final_model(tmp_path) -> None:
    raw = _raw(30, regularize={"early_stopping": {"patience": 3}})
    raw["train"]["keep_best"] = False  # early stopping that restores keeps best.pt by itself
    result = run(validate(raw), out=tmp_path)
    best = load_checkpoint(result.path / "best.pt")
    assert best["epoch"] == result.summary["early_stopping"]["best_epoch"]
    assert result.summary["early_stopping"]["stopped_epoch"] is not None
    _same(best["model"], load_checkpoint(result.path / "checkpoint.pt")["model"])


def test_no_best_pt_unless_asked(tmp_path) -> None:
    raw = _raw(2)
    raw["train"]["keep_best"] = False
    assert not (run(validate(raw), out=tmp_path).path / "best.pt").exists()


# 8 steps per epoch (128 training examples, batches of 16); the val errors of the 12 epochs are
# .22 .25 .22 .22 .22 .19 .16 .22 .16 .19 .22 .19: the best is epoch 7, tied (not beaten) by epoch 9. Step 60 is
# inside epoch 8, so the resumed run must know epoch 7's value: a tracker started afresh would keep epoch 9.
def test_a_resumed_run_writes_the_best_pt_of_the_uninterrupted_run(tmp_path, monkeypatch) -> None:
    config = validate(_raw(12))
    full = run(config, out=tmp_path / "full")
    interrupt_train_step(monkeypatch, 60)
    with pytest.raises(KeyboardInterrupt):
        run(config, out=tmp_path / "resumed")
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "resumed" / "tiny" / "best.pt")["epoch"] == 7
    resumed = run(config, out=tmp_path / "resumed", resume=True)
    a, b = load_checkpoint(full.path / "best.pt"), load_checkpoint(resumed.path / "best.pt")
    assert a["epoch"] == 7
    assert {k: v for k, v in a.items() if k != "model"} == {k: v for k, v in b.items() if k != "model"}
    _same(a["model"], b["model"])


def test_keep_best_is_refused_with_greedy_pretraining() -> None:
    raw = small_raw(
        model={"name": "mlp", "widths": [8, 8]},
        pretraining={"epochs_per_stage": 1},
        train={"epochs": 2, "keep_best": True},
    )
    from regopt.lab.experiment import build_experiment

    with pytest.raises(ConfigError, match="keep_best"):
        build_experiment(validate(raw))


def test_a_run_checkpointed_before_best_pt_existed_resumes_and_adopts_early_stoppings_best(tmp_path) -> None:
    def raw(epochs: int) -> dict:
        config = _raw(epochs, regularize={"early_stopping": {"patience": 20}})
        config["train"]["keep_best"] = False  # early stopping that restores: best.pt without the key
        return config

    full = run(validate(raw(12)), out=tmp_path / "full")
    old = run(validate(raw(8)), out=tmp_path / "old")  # best epoch 7 (the val errors above), before the resume
    checkpoint = old.path / "checkpoint.pt"
    state = load_checkpoint(checkpoint)
    for layer in (state, state.get("training_state") or {}):  # as written before the tracker existed
        if "hook_states" in layer:
            layer["hook_states"] = layer["hook_states"][1:]
    state.pop("format")
    save_checkpoint(state, checkpoint)
    (old.path / "best.pt").unlink()
    resumed = run(validate(raw(12)), out=tmp_path / "old", resume=True)
    a, b = load_checkpoint(full.path / "best.pt"), load_checkpoint(resumed.path / "best.pt")
    assert a["epoch"] == b["epoch"] == 7
    _same(a["model"], b["model"])
