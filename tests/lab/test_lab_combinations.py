"""The new lab features meet the old ones (issue 16, review): multi-task with Algorithm 7.3, ``regopt diagnose``,
tangent prop, ``[init]`` and hidden noise; tangent prop with BatchNorm; a curriculum without shuffling; monitor
tables that would overwrite a file. Each either works or is refused in one line."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor

from regopt.cli import main
from regopt.lab.config import ConfigError, validate
from regopt.lab.diagnosis import report_diagnostics
from regopt.lab.experiment import build_experiment
from regopt.lab.runs import run
from regopt.monitor import Monitor, MonitorReport
from regopt.regularize import GaussianNoise, MultiTaskModel


def digits(**sections: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "name": "combo",
        "data": {"name": "digits", "train_size": 120},
        "model": {"name": "mlp", "widths": [16]},
        "optimizer": {"name": "adam", "lr": 1e-2},
        "train": {"epochs": 3, "batch_size": 40},
    }
    return {**raw, **sections}


def test_multitask_with_algorithm_7_3_trains_on_and_judges_the_digit_head(tmp_path: Path) -> None:
    raw = digits(multitask={}, regularize={"early_stopping": {"patience": 1, "then": "continue"}})
    result = run(validate(raw), out=tmp_path)
    assert result.summary["early_stopping"]["then"]["algorithm"].startswith("7.3")  # its trainer evaluated
    assert 0.0 <= result.summary["test_error"] <= 1.0


def test_tangent_prop_reaches_the_algorithm_7_3_phase(tmp_path: Path) -> None:
    raw = digits(regularize={"tangent_prop": {"alpha": 0.1}, "early_stopping": {"patience": 1, "then": "continue"}})
    config = validate(raw)
    experiment = build_experiment(config)
    experiment.trainer.fit()
    from regopt.lab.after_early_stopping import continue_training

    assert experiment.early_stopping is not None
    final = continue_training(experiment, experiment.early_stopping)
    assert final.trainer.terms == experiment.trainer.terms and len(final.trainer.terms) == 1


def test_diagnose_reads_a_multitask_run(tmp_path: Path) -> None:
    result = run(validate(digits(multitask={})), out=tmp_path)
    assert main(["diagnose", str(result.path)]) == 0


def test_tangent_prop_on_a_multitask_model_penalizes_the_digit_head() -> None:
    experiment = build_experiment(validate(digits(multitask={}, regularize={"tangent_prop": {"alpha": 0.1}})))
    x, y = experiment.data.x_train[:8], experiment.data.y_train[:8]
    experiment.trainer.train_step(x, y)  # runs: the term reads output["digit"]


def test_tangent_prop_with_batch_norm_is_refused() -> None:
    raw = digits(model={"name": "mlp", "widths": [16], "batch_norm": True}, regularize={"tangent_prop": {"alpha": 1}})
    with pytest.raises(ConfigError, match=r"regularize\.tangent_prop: the model has BatchNorm"):
        build_experiment(validate(raw))


def test_init_reaches_every_multitask_head() -> None:
    model = build_experiment(validate(digits(multitask={}, init={"policy": "orthogonal", "bias": 0.5}))).model
    assert isinstance(model, MultiTaskModel)
    for task, head in model.heads.items():
        assert torch.all(head.bias == 0.5), task


def test_hidden_noise_goes_into_the_multitask_trunk() -> None:
    raw = digits(multitask={}, regularize={"hidden_noise": {"std": 0.1}})
    model = build_experiment(validate(raw)).model
    assert isinstance(model, MultiTaskModel) and any(isinstance(m, GaussianNoise) for m in model.trunk.modules())


def test_a_curriculum_without_shuffling_is_refused_before_anything_trains() -> None:
    raw = {
        **digits(curriculum={"epochs_to_full": 2}),
        "train": {"epochs": 3, "batch_size": 40, "shuffle": False},
    }
    with pytest.raises(ConfigError, match="curriculum: draws each epoch's examples in a random order"):
        build_experiment(validate(raw))


class Tables(Monitor):
    def __init__(self, *names: str) -> None:
        self.names = names

    def after_epoch(self, epoch: int, metrics: Mapping[str, float]) -> tuple[bool, str]:
        return False, ""

    def after_step(self, step: int, loss: Tensor) -> None:
        pass

    def report(self) -> MonitorReport:
        return MonitorReport({name: [{"a": 1}] for name in self.names})


@pytest.mark.parametrize(
    ("monitors", "message"),
    [
        ([Tables("metrics.csv")], r"Tables.report\(\): table 'metrics.csv' would overwrite the run directory's own"),
        ([Tables("x.csv"), Tables("x.csv")], r"table 'x.csv' would overwrite Tables's table"),
        ([Tables("../x.csv")], r"table '../x.csv' is not a plain .csv file name"),
    ],
)
def test_a_monitor_table_may_not_overwrite_a_file(tmp_path: Path, monitors: list[Monitor], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        report_diagnostics(monitors, tmp_path)
    assert not (tmp_path / "metrics.csv").exists() and not (tmp_path.parent / "x.csv").exists()
