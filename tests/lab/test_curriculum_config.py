"""Curriculum learning from a config (issue 16): ``[curriculum]`` is a batch order of the Trainer, so a curriculum
run gets a run directory and resumes like any run. It computes exactly what the plain loop of
:mod:`tests.lab.plain_loops` computes (the loop the gallery's ``curriculum`` entry ran before it moved onto
``run()``), reference model included."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from regopt.curriculum import Curriculum, difficulty_by_loss
from regopt.lab.config import ConfigError, validate
from regopt.lab.experiment import build_experiment
from regopt.lab.gallery import meta_runs
from regopt.lab.runs import run
from tests.lab import plain_loops

EPOCHS, HALF = 3, 2


def curriculum_raw(seed: int = 0, epochs: int = EPOCHS, **curriculum: Any) -> dict[str, Any]:
    return {
        "name": "cur",
        "seed": seed,
        "data": {"name": "mnist1d", "train_size": 1000},
        "model": {"name": "mlp", "widths": [100, 100]},
        "optimizer": {"name": "adam", "lr": 1e-3},
        "train": {"epochs": epochs, "batch_size": meta_runs.BATCH},
        "curriculum": {"epochs_to_full": HALF, "start_fraction": 0.2, **curriculum},
    }


def gallery_difficulty(data: Any) -> torch.Tensor:
    """The ``curriculum`` entry's reference: an MLP [32] trained 3 epochs from seed 100, its per-example loss."""
    torch.manual_seed(100)
    reference = meta_runs.mlp([32])
    plain_loops.train_epochs(reference, data, 3, torch.Generator().manual_seed(100), [])
    return difficulty_by_loss(reference, None, data.x_train, data.y_train)


@pytest.mark.parametrize(("same_steps", "order"), [(False, "easy_first"), (True, "easy_first"), (True, "hard_first")])
def test_a_curriculum_run_is_the_plain_loop_bit_for_bit(tmp_path: Path, same_steps: bool, order: str) -> None:
    result = run(validate(curriculum_raw(same_steps=same_steps, order=order)), out=tmp_path)
    data = result.experiment.data
    difficulty = gallery_difficulty(data)
    schedule = Curriculum(-difficulty if order == "hard_first" else difficulty, start_fraction=0.2, epochs_to_full=HALF)
    history, test, steps = plain_loops.curriculum_run(schedule, same_steps, 0, data, EPOCHS)
    # The plain loop counts errors in float32: 1e-6 absorbs its rounding; one example differently classified
    # would differ by 1/1000 or more.
    assert [row["val_error"] for row in result.history] == pytest.approx(history, abs=1e-6)
    assert result.summary["test_error"] == pytest.approx(test, abs=1e-6) and result.summary["steps"] == steps
    # 1000 training examples in batches of 100: epoch 0 takes the easiest 200 once (2 steps) or cycled (10 steps)
    assert result.history[0]["step"] == (10 if same_steps else 2)


def test_a_curriculum_run_resumes_to_the_same_bits(tmp_path: Path) -> None:
    straight = run(validate(curriculum_raw()), out=tmp_path / "a")
    run(validate(curriculum_raw(epochs=1)), out=tmp_path / "b")
    resumed = run(validate(curriculum_raw()), out=tmp_path / "b", resume=True)
    for a, b in zip(straight.experiment.model.parameters(), resumed.experiment.model.parameters(), strict=True):
        assert torch.equal(a, b)
    assert [r["val_error"] for r in straight.history] == [r["val_error"] for r in resumed.history]


def test_a_per_step_schedule_needs_same_steps() -> None:
    raw = {**curriculum_raw(), "schedule": {"name": "cosine", "interval": "step"}}
    with pytest.raises(ConfigError, match="curriculum: a per-step schedule needs as many steps every epoch"):
        build_experiment(validate(raw))
    raw["curriculum"] = {**raw["curriculum"], "same_steps": True}
    build_experiment(validate(raw))
