"""Run directories: files written, exact resume, atomic checkpoints, refusal to clobber."""

from __future__ import annotations

import json

import pytest
import torch

from regopt.lab.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from regopt.lab.config import validate
from regopt.lab.runs import RunDirError, read_metrics, read_run_results, run
from regopt.lab.trainer import Trainer
from tests.conftest import small_raw
from tests.lab.interruptions import interrupt_train_step


def test_run_writes_every_file(tmp_path, small_config):
    result = run(small_config, out=tmp_path)
    names = sorted(p.name for p in result.path.iterdir())
    assert names == ["checkpoint.pt", "config.toml", "curves.png", "metrics.csv", "report.html", "summary.json"]
    summary, history = read_run_results(result.path)
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert summary["epochs"] == 3 and summary["parameters"] == 2 * 16 + 16 + 16 * 2 + 2
    assert summary["best_val_error"] == min(row["val_error"] for row in history)
    assert summary["generalization_gap"] == pytest.approx(history[-1]["val_error"] - history[-1]["train_error"])
    assert 0.0 <= summary["test_error"] <= 1.0
    assert (result.path / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_same_seed_same_metrics_and_weights(tmp_path, small_config):
    a = run(small_config, out=tmp_path / "a")
    b = run(small_config, out=tmp_path / "b")
    strip = [{k: v for k, v in row.items() if k != "seconds"} for row in a.history]
    assert strip == [{k: v for k, v in row.items() if k != "seconds"} for row in b.history]
    for p, q in zip(a.experiment.model.parameters(), b.experiment.model.parameters(), strict=True):
        assert torch.equal(p, q)


# 8 steps per epoch, checkpoints every 7 steps and at epoch ends: 23 resumes from the mid-epoch checkpoint
# at step 21, 26 from the end-of-epoch checkpoint at step 24.
@pytest.mark.parametrize("interrupt_at", [23, 26])
def test_resume_ends_exactly_like_an_uninterrupted_run(tmp_path, monkeypatch, interrupt_at):
    raw = small_raw(
        model={"name": "mlp", "widths": [16, 16], "dropout_hidden": 0.3, "batch_norm": True},  # dropout: RNG
        optimizer={"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True},
        schedule={"name": "step", "step_size": 4, "gamma": 0.5, "interval": "step"},
        averaging={"decay": 0.9},  # its averages are checkpointed too
        train={"epochs": 5, "batch_size": 32, "checkpoint_every": 7},
    )
    config = validate(raw)
    full = run(config, out=tmp_path / "full")

    interrupt_train_step(monkeypatch, interrupt_at)
    with pytest.raises(KeyboardInterrupt):
        run(config, out=tmp_path / "resumed")
    monkeypatch.undo()
    partial = read_metrics(tmp_path / "resumed" / "tiny" / "metrics.csv")
    assert len(partial) < 5
    resumed = run(config, out=tmp_path / "resumed", resume=True)

    def strip(rows):
        return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]

    assert strip(resumed.history) == strip(full.history)
    assert strip(read_metrics(resumed.path / "metrics.csv")) == strip(read_metrics(full.path / "metrics.csv"))
    for (name, p), q in zip(
        full.experiment.model.state_dict().items(),
        resumed.experiment.model.state_dict().values(),
        strict=True,
    ):
        assert torch.equal(p, q), name
    full_opt = full.experiment.trainer.optimizer.state_dict()["state"]
    resumed_opt = resumed.experiment.trainer.optimizer.state_dict()["state"]
    assert full_opt.keys() == resumed_opt.keys()
    for key in full_opt:
        for name, value in full_opt[key].items():
            assert torch.equal(value, resumed_opt[key][name]), name
    assert resumed.summary["test_error"] == full.summary["test_error"]


def test_existing_run_dir_is_not_replaced_without_force(tmp_path, small_config):
    first = run(small_config, out=tmp_path)
    before = (first.path / "metrics.csv").read_bytes()
    with pytest.raises(RunDirError, match="already exists; pass --force"):
        run(small_config, out=tmp_path)
    assert (first.path / "metrics.csv").read_bytes() == before
    run(small_config.model_copy(update={"seed": 1}), out=tmp_path, force=True)
    assert (first.path / "metrics.csv").read_bytes() != before


def test_force_refuses_a_directory_that_is_not_a_run(tmp_path, small_config):
    precious = tmp_path / "tiny" / "thesis.tex"
    precious.parent.mkdir()
    precious.write_text("years of work")
    with pytest.raises(RunDirError, match="not a run directory"):
        run(small_config, out=tmp_path, force=True)
    assert precious.read_text() == "years of work"


def test_resume_refuses_a_different_config_and_a_missing_checkpoint(tmp_path, small_config):
    with pytest.raises(RunDirError, match="nothing to resume"):
        run(small_config, out=tmp_path, resume=True)
    run(small_config, out=tmp_path)
    changed = validate(small_raw(optimizer={"name": "sgd", "lr": 0.2, "momentum": 0.9}))
    with pytest.raises(RunDirError, match=r"config differs .* at optimizer\.lr"):
        run(changed, out=tmp_path, resume=True)
    with pytest.raises(RunDirError, match="contradict"):
        run(small_config, out=tmp_path, resume=True, force=True)


def test_bad_config_writes_nothing(tmp_path):
    config = validate(small_raw(optimizer={"name": "sgd", "lr": 0.1, "momentum": -1.0}))
    with pytest.raises(ValueError, match="momentum"):
        run(config, out=tmp_path)
    assert not any(tmp_path.iterdir())


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint({"weights": torch.ones(3)}, path)

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"partial garbage")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint({"weights": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(path)["weights"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temp file left behind


class _Evil:
    def __reduce__(self):
        return (print, ("code ran",))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (lambda p: torch.save({"weights": torch.ones(1)}, p), "not a regopt checkpoint"),
        (lambda p: p.write_bytes(b"not a zip file at all"), "not a readable checkpoint"),
        (
            lambda p: torch.save({"format": "regopt.checkpoint/1", "x": _Evil()}, p),
            "not a readable checkpoint",
        ),
    ],
)
def test_foreign_checkpoints_are_rejected(tmp_path, content, message):
    path = tmp_path / "checkpoint.pt"
    content(path)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def test_summary_is_valid_json_with_wall_time(tmp_path, small_config):
    result = run(small_config, out=tmp_path)
    summary = json.loads((result.path / "summary.json").read_text())
    assert summary["wall_time_s"] > 0 and summary["stop_reason"] == "completed 3 epochs"


def _no_constants(text: str):
    def refuse(name):
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def test_a_diverged_run_writes_strict_json_with_its_diagnostics(tmp_path, monkeypatch):
    from regopt.diagnostics import TrainingDiverged

    raw = small_raw(
        optimizer={"name": "sgd", "lr": 300.0},  # gradient spikes (10^4 x the median) within the first epoch
        diagnostics={"gradient_norms": {}},
        train={"epochs": 10, "batch_size": 32},
    )
    original, calls = Trainer.train_step, {"n": 0}

    def thrown_far(self, x, y):  # the last step of epoch 1 (8 steps) throws the weights far out, still finite:
        loss = original(self, x, y)  # epoch 1 evaluates to NaN (float32 overflow), epoch 2's first loss too
        calls["n"] += 1
        if calls["n"] == 8:
            with torch.no_grad():
                for p in self.model.parameters():
                    p.fill_(1e20)
        return loss

    monkeypatch.setattr(Trainer, "train_step", thrown_far)
    with pytest.raises(TrainingDiverged, match="step 9"):
        run(validate(raw), out=tmp_path)
    summary = _no_constants((tmp_path / "tiny" / "summary.json").read_text())
    assert summary["diverged"] is True
    assert summary["diagnostics"]["gradient_spikes"]  # the alarms that fired before the divergence
    history = read_metrics(tmp_path / "tiny" / "metrics.csv")
    assert len(history) == 1 and history[0]["train_loss"] != history[0]["train_loss"]  # NaN
    assert summary["final_train_loss"] is None and "final_train_loss" in summary["nonfinite"]


def test_summary_json_replaces_nan_and_infinity_by_null_and_names_them():
    from regopt.lab.run_summary import summary_json

    text = summary_json({"a": 1.5, "b": float("nan"), "c": {"d": float("inf"), "e": [1.0, float("-inf")]}})
    expected = {"a": 1.5, "b": None, "c": {"d": None, "e": [1.0, None]}, "nonfinite": ["b", "c.d", "c.e.1"]}
    assert _no_constants(text) == expected


def test_metrics_csv_is_on_disk_after_every_epoch(tmp_path, small_config):
    from regopt.monitor import Monitor

    seen: dict[int, list] = {}

    class Killer(Monitor):  # reads the file as another process would while the run is alive, then kills it
        def after_epoch(self, epoch, metrics):
            seen[epoch] = read_metrics(tmp_path / "tiny" / "metrics.csv")
            if epoch == 2:
                raise KeyboardInterrupt
            return False, ""

    with pytest.raises(KeyboardInterrupt):
        run(small_config, out=tmp_path, extra_monitors=[Killer()])
    assert [len(rows) for rows in seen.values()] == [1, 2]
    assert [row["epoch"] for row in seen[2]] == [1.0, 2.0]
    assert [p.name for p in (tmp_path / "tiny").iterdir() if p.name.endswith(".tmp")] == []
