"""Defaults live once, in the technique: an omitted optimizer ``lr`` trains at the optimizer's own default and the
run directory's config.toml records it; every schema default shared with a technique equals the technique's."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
import torch
from pydantic import BaseModel
from pydantic_core import PydanticUndefined
from torch.optim.lr_scheduler import CosineAnnealingLR, ExponentialLR, StepLR

from regopt.diagnostics import GradientMonitor, IllConditioningMonitor, PlateauMonitor
from regopt.init import initialize
from regopt.lab.config import (
    AveragingConfig,
    CosineSchedule,
    EarlyStoppingConfig,
    ElasticNetConfig,
    ExponentialSchedule,
    GradientNormsConfig,
    IllConditioningConfig,
    ImageAugmentConfig,
    InitConfig,
    L1Config,
    LinearSchedule,
    MaxNormConfig,
    NoiseConfig,
    OptimizerConfig,
    PlateauConfig,
    SignalAugmentConfig,
    StepSchedule,
    TrainConfig,
    read_toml,
    validate,
)
from regopt.lab.registry import build_optimizer
from regopt.lab.runs import run
from regopt.lab.schema.defaults import default_of
from regopt.lab.trainer import Trainer
from regopt.optim import CoordinateDescent, PolyakAveraging, linear_decay
from regopt.regularize import L1, EarlyStopping, ElasticNet, ImageAugment, InputNoise, MaxNorm, SignalAugment
from tests.conftest import small_raw

OLD_SCHEMA_LR = 0.01
"""The lr the schema used to pass to every optimizer whatever its own default (issue 16)."""


def _built_lr(section: dict[str, Any]) -> tuple[float, torch.optim.Optimizer]:
    optimizer = build_optimizer(OptimizerConfig.model_validate(section), torch.nn.Linear(3, 2))
    lrs = {group["lr"] for group in optimizer.param_groups}
    assert len(lrs) == 1
    return lrs.pop(), optimizer


def _own_default_lr(optimizer: torch.optim.Optimizer) -> float:
    if isinstance(optimizer, CoordinateDescent):
        optimizer = optimizer.inners[0]
    return inspect.signature(type(optimizer).__init__).parameters["lr"].default


@pytest.mark.parametrize(
    "section",
    [
        {"name": "adam"},
        {"name": "adamw"},
        {"name": "rmsprop"},
        {"name": "adagrad"},
        {"name": "delta_bar_delta"},
        {"name": "sgd"},
        {"name": "torch.adam"},
        {"name": "torch.sgd"},
        {"name": "coordinate", "inner": "adam"},
        {"name": "coordinate", "inner": "rmsprop", "order": "random"},
    ],
)
def test_an_omitted_lr_trains_at_the_optimizers_own_default(section):
    lr, optimizer = _built_lr(section)
    assert lr == _own_default_lr(optimizer)
    assert OptimizerConfig.model_validate(section).lr == lr  # what config.optimizer.lr and config.toml say


def test_adam_no_longer_trains_at_the_schemas_old_lr():
    assert _built_lr({"name": "adam"})[0] == 1e-3 != OLD_SCHEMA_LR  # regopt.Adam's documented default


@pytest.mark.parametrize("name", ["adam", "rmsprop", "delta_bar_delta", "torch.adam", "sgd"])
def test_an_explicit_lr_wins(name):
    assert _built_lr({"name": name, "lr": 0.0375})[0] == 0.0375
    assert _built_lr({"name": "coordinate", "inner": name, "lr": 0.0375})[0] == 0.0375


def test_an_unknown_optimizer_is_still_refused_by_name():
    config = validate({"optimizer": {"name": "adamm"}})
    assert config.optimizer.lr is None
    with pytest.raises(ValueError, match=r"optimizer\.name: unknown optimizer 'adamm'"):
        build_optimizer(config.optimizer, torch.nn.Linear(3, 2))


def test_config_toml_records_the_default_lr_and_reruns_the_same_run(tmp_path):
    config = validate(small_raw(optimizer={"name": "adam"}, train={"epochs": 2, "batch_size": 32}))
    first = run(config, out=tmp_path / "a")
    saved = read_toml(first.path / "config.toml")
    assert saved["optimizer"] == {"name": "adam", "lr": 1e-3}
    reloaded = validate(saved)
    assert reloaded.optimizer == config.optimizer and reloaded.optimizer.kwargs() == config.optimizer.kwargs()
    second = run(reloaded, out=tmp_path / "b")
    strip = [{k: v for k, v in row.items() if k != "seconds"} for row in first.history]
    assert strip == [{k: v for k, v in row.items() if k != "seconds"} for row in second.history]
    assert first.history[0]["lr"] == 1e-3


# ---------------------------------------------------------------------- schema defaults == technique defaults
SHARED: list[tuple[type[BaseModel], Any]] = [
    (EarlyStoppingConfig, EarlyStopping),
    (L1Config, L1),
    (ElasticNetConfig, ElasticNet),
    (MaxNormConfig, MaxNorm),
    (NoiseConfig, InputNoise),
    (ImageAugmentConfig, ImageAugment),
    (SignalAugmentConfig, SignalAugment),
    (GradientNormsConfig, GradientMonitor),
    (IllConditioningConfig, IllConditioningMonitor),
    (PlateauConfig, PlateauMonitor),
    (AveragingConfig, PolyakAveraging),
    (StepSchedule, StepLR),
    (ExponentialSchedule, ExponentialLR),
    (CosineSchedule, CosineAnnealingLR),
    (LinearSchedule, linear_decay),
    (InitConfig, initialize),
    (TrainConfig, Trainer),
]
"""Each config section beside the technique it is passed to (key for key, by name)."""


def _shared_defaults(section: type[BaseModel], technique: Any) -> dict[str, tuple[Any, Any]]:
    """Key -> (schema default, technique default) for every key both declare a default for."""
    parameters = inspect.signature(technique).parameters
    out = {}
    for key, info in section.model_fields.items():
        parameter = parameters.get(key)
        if parameter is None or parameter.default is inspect.Parameter.empty or info.default is PydanticUndefined:
            continue
        out[key] = (info.default, parameter.default)
    return out


@pytest.mark.parametrize(("section", "technique"), SHARED, ids=[s.__name__ for s, _ in SHARED])
def test_a_schema_default_shared_with_a_technique_equals_the_techniques(section, technique):
    for key, (schema, own) in _shared_defaults(section, technique).items():
        assert schema == own and type(schema) is type(own), f"{section.__name__}.{key}: {schema!r} vs {own!r}"


def test_the_shared_defaults_are_compared_at_all():
    compared = {f"{s.__name__}.{key}" for s, t in SHARED for key in _shared_defaults(s, t)}
    assert {"EarlyStoppingConfig.patience", "PlateauConfig.window", "AveragingConfig.start_step"} <= compared
    assert {"LinearSchedule.final_fraction", "IllConditioningConfig.patience", "InitConfig.bias"} <= compared
    assert len(compared) >= 25


def test_default_of_refuses_a_parameter_without_a_default():
    assert default_of(PlateauMonitor, "grad_tol") is None  # a None default is a default
    with pytest.raises(TypeError, match="no default for 'alpha'"):
        default_of(L1, "alpha")
    with pytest.raises(TypeError, match="no default for 'nonexistent'"):
        default_of(L1, "nonexistent")
