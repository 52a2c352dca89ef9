"""Multi-task learning from a config (issue 16): ``[multitask]`` trains a shared trunk and one head per task on
the Trainer, so it gets a run directory, resume and the NaN guard. It computes exactly what the textbook loop
below computes (the loop the gallery's ``multitask`` entry ran before it moved onto ``run()``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from regopt.lab.config import ConfigError, validate
from regopt.lab.experiment import build_experiment
from regopt.lab.gallery import multitask as entry
from regopt.lab.runs import run
from regopt.regularize import DIGIT_TASK_CLASSES, MultiTaskLoss, MultiTaskModel, digit_tasks


@torch.no_grad()
def digit_error(model: nn.Module, x: Tensor, y: Tensor) -> float:
    model.eval()
    return (model(x)["digit"].argmax(dim=1) != y).double().mean().item()


def textbook_loop(data: Any, tasks: tuple[str, ...], seed: int, epochs: int) -> tuple[nn.Module, list[float]]:
    """Shared trunk (seeded first) and heads; Adam on the summed losses; digit validation error each epoch."""
    torch.manual_seed(seed)
    width = entry.WIDTH
    trunk = nn.Sequential(nn.Linear(64, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU())
    model = MultiTaskModel(trunk, {task: nn.Linear(width, DIGIT_TASK_CLASSES[task]) for task in tasks})
    loss_fn = MultiTaskLoss(dict.fromkeys(tasks, F.cross_entropy))
    optimizer = torch.optim.Adam(model.parameters(), lr=entry.LR)
    targets = digit_tasks(data.y_train)
    order = torch.Generator().manual_seed(seed)
    curve = []
    for _ in range(epochs):
        model.train()
        for index in torch.randperm(len(data.x_train), generator=order).split(entry.BATCH_SIZE):
            loss = loss_fn(model(data.x_train[index]), {task: targets[task][index] for task in tasks})
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        curve.append(digit_error(model, data.x_val, data.y_val))
    return model, curve


def multitask_raw(seed: int = 0, epochs: int = 4, **multitask: Any) -> dict[str, Any]:
    return {
        "name": "mt",
        "seed": seed,
        "data": {"name": "digits", "train_size": entry.TRAIN_SIZE},
        "model": {"name": "mlp", "widths": [entry.WIDTH, entry.WIDTH]},
        "optimizer": {"name": "torch.adam", "lr": entry.LR},
        "train": {"epochs": epochs, "batch_size": entry.BATCH_SIZE, "evaluate_test": True},
        "multitask": multitask,
    }


@pytest.mark.parametrize("seed", [0, 1])
def test_a_multitask_run_is_the_textbook_loop_bit_for_bit(tmp_path: Path, seed: int) -> None:
    result = run(validate(multitask_raw(seed)), out=tmp_path)
    data = result.experiment.data
    model, curve = textbook_loop(data, tuple(DIGIT_TASK_CLASSES), seed, 4)
    assert [row["val_error"] for row in result.history] == curve
    for ours, theirs in zip(result.experiment.model.parameters(), model.parameters(), strict=True):
        assert torch.equal(ours, theirs)
    assert result.summary["test_error"] == digit_error(model, data.x_test, data.y_test)


def test_the_model_is_a_trunk_with_one_head_per_task() -> None:
    experiment = build_experiment(validate(multitask_raw(tasks=["digit", "parity"], weights={"parity": 0.5})))
    assert isinstance(experiment.model, MultiTaskModel) and experiment.model.tasks == ("digit", "parity")
    x, y = experiment.data.x_train[:8], experiment.data.y_train[:8]
    out = experiment.model(x)
    loss = experiment.trainer.loss_fn(out, y)
    ce = torch.nn.functional.cross_entropy
    torch.testing.assert_close(loss, ce(out["digit"], y) + 0.5 * ce(out["parity"], y % 2))


def test_a_multitask_run_resumes_to_the_same_bits(tmp_path: Path) -> None:
    straight = run(validate(multitask_raw(epochs=3)), out=tmp_path / "a")
    run(validate(multitask_raw(epochs=1)), out=tmp_path / "b")
    resumed = run(validate(multitask_raw(epochs=3)), out=tmp_path / "b", resume=True)
    for a, b in zip(straight.experiment.model.parameters(), resumed.experiment.model.parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"multitask": {"tasks": ["parity"]}}, "tasks must include 'digit'"),
        ({"multitask": {"tasks": ["digit", "digit"]}}, "listed more than once"),
        ({"multitask": {"weights": {"shape": 1.0}}}, "multitask.weights.shape"),
        ({"multitask": {"tasks": ["digit"], "weights": {"parity": 2.0}}}, "weights name tasks that are not trained"),
    ],
)
def test_bad_multitask_sections_are_refused(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate({**multitask_raw(), **change})


def test_multitask_needs_digit_labels() -> None:
    raw = {**multitask_raw(), "data": {"name": "moons"}}
    with pytest.raises(ConfigError, match="multitask: the tasks are views of digit labels"):
        build_experiment(validate(raw))
