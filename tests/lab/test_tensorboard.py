"""TensorBoard event files of a run: read back with TensorBoard's own reader, they hold metrics.csv, the mean raw
gradient norm, the diagnostics' state and the hparams; a resumed run appends each step once."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tomli_w

from regopt.cli import main
from regopt.lab.config import validate
from regopt.lab.runs import RunResult, read_metrics, run
from regopt.lab.trainer import Trainer
from tests.conftest import small_raw
from tests.lab.interruptions import assert_same_run, run_interrupted

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
plugin_data_pb2 = pytest.importorskip("tensorboard.plugins.hparams.plugin_data_pb2")

COLUMNS = {"loss/train": "train_loss", "loss/val": "val_loss", "error/train": "train_error",
           "error/val": "val_error", "lr": "lr", "epoch": "epoch"}  # fmt: skip


def raw(**train: Any) -> dict[str, Any]:
    """Tiny moons run (8 steps an epoch, 3 epochs) with TensorBoard and every diagnostic checking each step."""
    config = small_raw(logging={"tensorboard": True})
    config["train"].update(train)
    config["diagnostics"] = {"ill_conditioning": {"every": 1}, "gradient_norms": {"every": 1}, "plateau": {}}
    return config


def events(run_dir: Path) -> Any:
    accumulator = event_accumulator.EventAccumulator(str(run_dir / "tensorboard"))
    accumulator.Reload()
    return accumulator


def scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    found = events(run_dir)
    return {tag: [(e.step, e.value) for e in found.Scalars(tag)] for tag in found.Tags()["scalars"]}


def f32(value: float) -> float:
    return float(np.float32(value))  # event files hold float32


def test_the_scalars_are_metrics_csv_and_the_diagnostics(tmp_path: Path) -> None:
    result = run(validate(raw()), out=tmp_path)
    logged, metrics = scalars(result.path), read_metrics(result.path / "metrics.csv")
    steps = [int(row["step"]) for row in metrics]
    assert steps == [8, 16, 24]
    for tag, column in COLUMNS.items():
        assert logged[tag] == [(int(row["step"]), f32(row[column])) for row in metrics], tag
    # grad_norm: the mean over the epoch's steps of the raw norm, which gradient_norms.csv has step by step
    with open(result.path / "gradient_norms.csv", newline="") as f:
        per_step = {int(r["step"]): float(r["grad_norm"]) for r in csv.DictReader(f)}
    bounds = list(zip([0, *steps], steps, strict=False))
    means = [(end, sum(per_step[s] for s in range(start + 1, end + 1)) / (end - start)) for start, end in bounds]
    assert [s for s, _ in logged["grad_norm"]] == steps
    for (_, got), (_, want) in zip(logged["grad_norm"], means, strict=True):
        assert got == pytest.approx(want, rel=1e-6)  # float32 storage of a float64 mean
    assert logged["gradient_norms/grad_norm"] == [(s, f32(per_step[s])) for s in steps]
    with open(result.path / "ill_conditioning.csv", newline="") as f:
        checks = {int(r["step"]): r for r in csv.DictReader(f)}
    for tag in ("criterion", "stable_lr"):
        assert logged[f"ill_conditioning/{tag}"] == [(s, f32(float(checks[s][tag]))) for s in steps], tag
    assert [s for s, _ in logged["plateau/in_plateau"]] == steps
    assert all(v in (0.0, 1.0) for _, v in logged["plateau/in_plateau"])
    assert logged["final_val_error"] == [(24, f32(result.summary["final_val_error"]))]
    assert logged["test_error"] == [(24, f32(result.summary["test_error"]))]


def test_the_hparams_are_the_resolved_config_with_the_final_metrics(tmp_path: Path) -> None:
    result = run(validate(raw()), out=tmp_path)
    content = events(result.path).PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hparams = start.session_start_info.hparams
    assert hparams["optimizer.lr"].number_value == pytest.approx(0.1)
    assert hparams["train.epochs"].number_value == 3
    assert hparams["data.name"].string_value == "moons"
    assert hparams["logging.tensorboard"].number_value == 1  # torch records a bool as a number
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    metric_tags = {m.name.tag for m in experiment.metric_infos}
    assert {"best_val_error", "final_val_error", "test_error"} <= metric_tags
    assert list((result.path / "tensorboard").iterdir()) == sorted((result.path / "tensorboard").glob("events.*"))


def _killed_between_log_and_checkpoint(config: dict[str, Any], out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Stop the run in epoch 2's checkpoint write: its events are on disk, its checkpoint is not."""
    original = Trainer.save_checkpoint

    def save(self: Trainer) -> None:
        if self.epoch == 2 and self.batch == 0:  # the end of epoch 2 (not a checkpoint_every one inside it)
            raise KeyboardInterrupt
        original(self)

    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "save_checkpoint", save)
        with pytest.raises(KeyboardInterrupt):
            run(validate(config), out=out)
    assert [s for s, _ in scalars(out / "tiny")["loss/val"]] == [8, 16]  # epoch 2 was logged, not checkpointed


@pytest.mark.parametrize("how", ["mid_epoch", "after_the_log"])
def test_a_resumed_run_logs_each_step_once_as_the_straight_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    config = raw(checkpoint_every=4)
    straight = run(validate(config), out=tmp_path / "a")
    if how == "mid_epoch":  # the checkpoint of step 12 holds half of epoch 2's gradient norms
        run_interrupted(validate(config), tmp_path / "b", after_step=14)
    else:
        _killed_between_log_and_checkpoint(config, tmp_path / "b", monkeypatch)
    resumed: RunResult = run(validate(config), out=tmp_path / "b", resume=True)
    assert_same_run(straight, resumed)
    want, got = scalars(straight.path), scalars(resumed.path)
    assert set(got) == set(want)
    for tag in want:
        steps = [s for s, _ in got[tag]]
        assert steps == sorted(set(steps)), f"{tag}: a step logged twice or out of order: {steps}"
        assert got[tag] == want[tag], tag


def _config_file(tmp_path: Path, **sections: Any) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(tomli_w.dumps(small_raw(**sections)))
    return path


def test_the_cli_flag_turns_it_on_and_the_default_is_off(tmp_path: Path) -> None:
    config = _config_file(tmp_path)
    assert main(["run", str(config), "--out", str(tmp_path / "off"), "--quiet"]) == 0
    assert not (tmp_path / "off" / "tiny" / "tensorboard").exists()
    assert main(["run", str(config), "--out", str(tmp_path / "on"), "--quiet", "--tensorboard"]) == 0
    assert "tensorboard = true" in (tmp_path / "on" / "tiny" / "config.toml").read_text()
    assert [s for s, _ in scalars(tmp_path / "on" / "tiny")["loss/train"]] == [8, 16, 24]


def test_without_tensorboard_the_cli_says_which_extra_in_one_line_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # the import fails as if not installed
    config = _config_file(tmp_path)
    code = main(["run", str(config), "--out", str(tmp_path / "runs"), "--quiet", "--tensorboard"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0] == (
        "regopt: error: logging.tensorboard: needs the tensorboard package: pip install 'regopt[tensorboard]'"
    )
    assert not (tmp_path / "runs").exists()
