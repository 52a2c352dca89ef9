"""Tangent prop from a config (issue 16): ``[regularize] tangent_prop`` is an objective term on the Trainer, so it
trains in ``regopt run`` with a run directory and resumes like any run."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from regopt.lab.config import ConfigError, validate
from regopt.lab.experiment import build_experiment
from regopt.lab.runs import run
from regopt.regularize import TangentProp, tangent_vectors


def digits_raw(**train: Any) -> dict[str, Any]:
    return {
        "name": "tp",
        "data": {"name": "digits", "train_size": 300},
        "model": {"name": "mlp", "widths": [32]},
        "optimizer": {"name": "sgd", "lr": 0.1},
        "train": {"epochs": 2, "batch_size": 50, "evaluate_test": False, **train},
        "regularize": {"tangent_prop": {"alpha": 0.5}},
    }


def test_one_step_is_sgd_on_cross_entropy_plus_tangent_prop_by_hand() -> None:
    experiment = build_experiment(validate(digits_raw()))
    trainer, model = experiment.trainer, experiment.model
    by_hand = copy.deepcopy(model)
    x, y = experiment.data.x_train[:50], experiment.data.y_train[:50]
    trainer.train_step(x, y)

    tangents = lambda batch: tangent_vectors(batch, image_shape=(1, 8, 8))  # noqa: E731 - digits stored flat
    objective = F.cross_entropy(by_hand(x), y) + TangentProp(0.5, tangents)(by_hand, x)
    objective.backward()
    penalty_only = TangentProp(0.5, tangents)(copy.deepcopy(by_hand), x)
    assert float(penalty_only.detach()) > 1e-4  # the term is not zero here, so the comparison below sees it
    with torch.no_grad():
        for trained, p in zip(model.parameters(), by_hand.parameters(), strict=True):
            torch.testing.assert_close(trained, p - 0.1 * p.grad, rtol=1e-5, atol=1e-6)


def test_a_tangent_prop_run_resumes_to_the_same_bits(tmp_path: Path) -> None:
    straight = run(validate(digits_raw()), out=tmp_path / "straight")
    run(validate(digits_raw(epochs=1)), out=tmp_path / "resumed")
    resumed = run(validate(digits_raw()), out=tmp_path / "resumed", resume=True)
    for a, b in zip(straight.experiment.model.parameters(), resumed.experiment.model.parameters(), strict=True):
        assert torch.equal(a, b)
    drop = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert drop(straight.history) == drop(resumed.history)


def test_tangent_prop_changes_training() -> None:
    """The term reaches training: alpha = 0 and alpha = 0.5 end with different weights."""
    on = build_experiment(validate(digits_raw(epochs=1)))
    off_raw = digits_raw(epochs=1)
    off_raw["regularize"] = {"tangent_prop": {"alpha": 0.0}}
    off = build_experiment(validate(off_raw))
    on.trainer.fit()
    off.trainer.fit()
    assert not all(torch.equal(a, b) for a, b in zip(on.model.parameters(), off.model.parameters(), strict=True))


@pytest.mark.parametrize(
    ("data", "tangents", "message"),
    [
        ({"name": "moons"}, "image", r"image tangents need image data, got inputs of shape \(2,\)"),
        (
            {"name": "digits", "image": True},
            "signal",
            r"signal tangents need 1-D signals, got inputs of shape \(1, 8, 8\)",
        ),
    ],
)
def test_tangents_that_do_not_fit_the_data_are_refused(data: dict[str, Any], tangents: str, message: str) -> None:
    raw = digits_raw()
    raw["data"] = data
    raw["regularize"] = {"tangent_prop": {"alpha": 0.1, "tangents": tangents}}
    with pytest.raises(ConfigError, match=rf"^regularize\.tangent_prop: {message}"):
        build_experiment(validate(raw))
