"""BatchNorm cannot normalize a batch of one example: the Trainer drops such a last batch (issue 15, item 2)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from regopt.cli import main
from regopt.lab.config import validate
from regopt.lab.experiment import Experiment, build_experiment
from regopt.lab.models.base import ModelError
from tests.conftest import small_raw


def _experiment(batch_norm: bool, batch_size: int = 0) -> tuple[Experiment, int]:
    raw = small_raw(model={"name": "mlp", "widths": [8], "batch_norm": batch_norm})
    n = len(build_experiment(validate(raw)).data.x_train)
    raw["train"] = {**raw.get("train", {}), "batch_size": batch_size or n - 1}  # a full batch and one of 1 example
    return build_experiment(validate(raw)), n


def test_a_last_batch_of_one_is_dropped_when_the_model_has_batch_norm() -> None:
    experiment, _ = _experiment(batch_norm=True)
    assert experiment.trainer.steps_per_epoch() == 1
    history = experiment.trainer.fit()
    assert len(history) == 3 and experiment.trainer.step == 3
    assert all(torch.isfinite(p).all() for p in experiment.model.parameters())


def test_without_batch_norm_the_last_batch_of_one_is_kept() -> None:
    experiment, _ = _experiment(batch_norm=False)
    assert experiment.trainer.steps_per_epoch() == 2
    experiment.trainer.fit()
    assert experiment.trainer.step == 6


def test_cli_trains_batch_norm_with_a_remainder_of_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, n = _experiment(batch_norm=True)
    config = tmp_path / "c.toml"
    config.write_text(
        'name = "bn"\n[data]\nname = "moons"\nnum_samples = 400\nnoise = 0.1\n'
        f'[model]\nname = "mlp"\nwidths = [8]\nbatch_norm = true\n[train]\nepochs = 1\nbatch_size = {n - 1}\n'
    )
    assert main(["run", str(config), "--out", str(tmp_path / "runs"), "--quiet"]) == 0, capsys.readouterr().err


def test_batch_norm_with_batches_of_one_cannot_train_and_says_why() -> None:
    raw = small_raw(model={"name": "mlp", "widths": [8], "batch_norm": True}, train={"epochs": 1, "batch_size": 1})
    with pytest.raises(ModelError, match="BatchNorm"):
        build_experiment(validate(raw))


def test_cli_refuses_batch_norm_on_a_training_split_of_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[data]\nname = "moons"\nnum_samples = 3\n[model]\nname = "mlp"\nbatch_norm = true\n')
    code = main(["run", str(config), "--out", str(tmp_path / "runs"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "1 training examples): both must be at least 2" in err[0]
    assert not (tmp_path / "runs").exists()
