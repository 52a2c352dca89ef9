"""Every shipped config (examples/ and the demo gallery) validates, builds, and trains for a step."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from regopt.lab.config import load_config
from regopt.lab.experiment import build_experiment
from regopt.lab.gallery.base import HERE as GALLERY_DIR

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "examples").glob("*.toml")) + sorted(GALLERY_DIR.glob("*.toml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_config_builds_and_trains_one_epoch(path):
    overrides = ["train.epochs=1", "train.evaluate_test=false"]
    shipped = load_config(path).schedule
    if shipped.warmup_steps or shipped.warmup_epochs:  # a warmup must leave something of the one-epoch run
        overrides += ["schedule.warmup_steps=1"] if shipped.warmup_steps else ["schedule.warmup_epochs=0"]
    config = load_config(path, overrides)
    experiment = build_experiment(config)
    history = experiment.trainer.fit()
    assert len(history) == 1 and history[0]["train_loss"] == history[0]["train_loss"]  # not NaN


def test_python_example_runs_and_stops_at_its_target():
    module = runpy.run_path(str(ROOT / "examples" / "trainer_in_python.py"))
    test = module["main"](epochs=30)
    assert test["test_error"] < 0.1
