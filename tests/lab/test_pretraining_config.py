"""Greedy supervised pretraining from a config (issue 16): ``[pretraining]`` trains the stages on one Trainer, so
the run is one run directory and resumes exactly, from any stage. It computes what the plain loop of
:mod:`tests.lab.plain_loops` computes (the loop the gallery's ``pretraining`` entry ran before it moved onto
``run()``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from regopt.lab.config import ConfigError, validate
from regopt.lab.experiment import build_experiment
from regopt.lab.gallery import meta_runs
from regopt.lab.runs import run
from tests.lab import plain_loops

WIDTHS, PER_STAGE = [32, 32, 32], 2


def pretraining_raw(epochs: int = PER_STAGE * 4, seed: int = 0, **pretraining: Any) -> dict[str, Any]:
    return {
        "name": "pre",
        "seed": seed,
        "data": {"name": "mnist1d", "train_size": 600},
        "model": {"name": "mlp", "widths": WIDTHS},
        "optimizer": {"name": "adam", "lr": 1e-3},
        "train": {"epochs": epochs, "batch_size": meta_runs.BATCH},
        "pretraining": {"epochs_per_stage": PER_STAGE, **pretraining},
    }


@pytest.mark.parametrize("freeze", [False, True])
def test_a_pretraining_run_is_the_plain_loop(tmp_path: Path, freeze: bool) -> None:
    result = run(validate(pretraining_raw(freeze_existing=freeze)), out=tmp_path)
    name = "greedy, earlier layers frozen" if freeze else "greedy, layers kept training"
    history, test, steps, _ = plain_loops.pretraining_run(name, 0, result.experiment.data, WIDTHS, PER_STAGE)
    # the plain loop counts errors in float32: 1e-6 absorbs its rounding, one example more or less is >= 1e-3
    assert [row["val_error"] for row in result.history] == pytest.approx(history, abs=1e-6)
    assert result.summary["test_error"] == pytest.approx(test, abs=1e-6) and result.summary["steps"] == steps
    children = [name for name, _ in result.experiment.model.named_children()]
    assert children == ["flatten", "fc1", "act1", "fc2", "act2", "fc3", "act3", "head"]
    assert all(p.requires_grad for p in result.experiment.model.parameters())  # fine-tuned: all unfrozen


@pytest.mark.parametrize("stopped_after", [1, 2, 3, 5])  # inside stage 0, at its end, inside stage 1, stage 2
def test_a_pretraining_run_resumes_from_any_stage_to_the_same_bits(tmp_path: Path, stopped_after: int) -> None:
    straight = run(validate(pretraining_raw(freeze_existing=True)), out=tmp_path / "a")
    raw = pretraining_raw(freeze_existing=True)
    run(validate({**raw, "train": {**raw["train"], "epochs": stopped_after}}), out=tmp_path / "b", force=True)
    resumed = run(validate(raw), out=tmp_path / "b", resume=True)
    for a, b in zip(straight.experiment.model.parameters(), resumed.experiment.model.parameters(), strict=True):
        assert torch.equal(a, b)
    assert [r["val_error"] for r in straight.history] == [r["val_error"] for r in resumed.history]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"train": {"epochs": 9}}, r"train.epochs is at most 8 \(4 stages of 2 epochs\), got 9"),
        ({"model": {"name": "cnn1d"}}, "grows an mlp one layer at a time"),
        ({"regularize": {"early_stopping": {"patience": 2}}}, r"early stopping \(regularize.early_stopping\)"),
        ({"schedule": {"name": "cosine"}}, "a learning-rate schedule is not supported"),
    ],
)
def test_what_pretraining_cannot_run_with_is_refused(change: dict[str, Any], message: str) -> None:
    raw = {**pretraining_raw(), **change}
    with pytest.raises(ConfigError, match=message):
        build_experiment(validate(raw))


def test_the_stage_of_a_checkpoint_is_the_stage_that_took_its_last_step() -> None:
    stages = build_experiment(validate(pretraining_raw())).pretraining
    assert stages is not None and stages.stages == 4
    # (completed epochs, batches into the next) -> stage; 2 epochs a stage
    cases = {(0, 0): 0, (0, 3): 0, (1, 0): 0, (2, 0): 0, (2, 1): 1, (4, 0): 1, (4, 5): 2, (7, 2): 3, (8, 0): 3}
    assert {k: stages.stage_of(*k) for k in cases} == cases


def test_diagnose_reads_a_pretraining_run(tmp_path: Path) -> None:
    """``regopt diagnose`` rebuilds the final stage's network before loading the checkpoint."""
    from regopt.cli import main

    result = run(validate(pretraining_raw()), out=tmp_path)
    assert main(["diagnose", str(result.path)]) == 0
    assert (result.path / "diagnose" / "diagnose.json").is_file()
