"""Name -> optimizer and name -> learning-rate schedule, as a config refers to them.

Optimizers are torch.optim classes for now (regopt's own join them here); every config key besides ``name`` is
checked against the constructor's signature before anything is built. Schedules are torch's
``lr_scheduler`` classes; Algorithm 8.1's linear decay is a ``LambdaLR``.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    ExponentialLR,
    LambdaLR,
    LRScheduler,
    StepLR,
)

from regopt.lab.config import (
    ConfigError,
    CosineSchedule,
    ExponentialSchedule,
    LinearSchedule,
    OptimizerConfig,
    ScheduleConfig,
    StepSchedule,
)

OPTIMIZERS: dict[str, type[Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adagrad": torch.optim.Adagrad,
    "rmsprop": torch.optim.RMSprop,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "adadelta": torch.optim.Adadelta,
    "adamax": torch.optim.Adamax,
    "nadam": torch.optim.NAdam,
    "radam": torch.optim.RAdam,
}

SCHEDULES: dict[str, str] = {
    "constant": "fixed learning rate",
    "step": "multiply by gamma every step_size epochs/steps (StepLR)",
    "exponential": "multiply by gamma every epoch/step (ExponentialLR)",
    "cosine": "cosine annealing to eta_min over the run (CosineAnnealingLR)",
    "linear": "Algorithm 8.1: linear decay from lr to final_fraction*lr at tau, then constant (LambdaLR)",
}

_NOT_CONFIGURABLE = {"self", "params"}


def optimizer_options(name: str) -> list[str]:
    """The keyword arguments a config may give optimizer ``name``."""
    signature = inspect.signature(OPTIMIZERS[name].__init__)
    return [p for p in signature.parameters if p not in _NOT_CONFIGURABLE]


def build_optimizer(config: OptimizerConfig, params: Iterable[Any]) -> Optimizer:
    """Construct the configured optimizer; :class:`ConfigError` names the offending key."""
    if config.name not in OPTIMIZERS:
        raise ConfigError(f"optimizer.name: unknown optimizer {config.name!r}; expected one of {sorted(OPTIMIZERS)}")
    allowed = optimizer_options(config.name)
    kwargs = config.kwargs()
    for key in kwargs:
        if key not in allowed:
            raise ConfigError(f"optimizer.{key}: not an option of {config.name!r}; options are {allowed}")
    try:
        return OPTIMIZERS[config.name](params, **kwargs)
    except (ValueError, TypeError, RuntimeError) as err:
        raise ConfigError(f"optimizer: {config.name}: {err}") from None


def linear_decay(tau: int, final_fraction: float):
    """Algorithm 8.1's factor eps_k / eps_0 = (1 - k/tau) + (k/tau) * final_fraction for k <= tau, then constant."""

    def factor(k: int) -> float:
        a = min(k, tau) / tau
        return (1.0 - a) + a * final_fraction

    return factor


def build_scheduler(
    config: ScheduleConfig, optimizer: Optimizer, *, epochs: int, steps_per_epoch: int
) -> LRScheduler | None:
    """Construct the configured schedule (None for ``constant``); lengths count the schedule's interval."""
    horizon = epochs if config.interval == "epoch" else epochs * steps_per_epoch
    if isinstance(config, StepSchedule):
        return StepLR(optimizer, step_size=config.step_size, gamma=config.gamma)
    if isinstance(config, ExponentialSchedule):
        return ExponentialLR(optimizer, gamma=config.gamma)
    if isinstance(config, CosineSchedule):
        return CosineAnnealingLR(optimizer, T_max=horizon, eta_min=config.eta_min)
    if isinstance(config, LinearSchedule):
        return LambdaLR(optimizer, linear_decay(config.tau or horizon, config.final_fraction))
    return None
