"""Name -> optimizer and name -> learning-rate schedule, as a config refers to them.

Plain names are regopt's own optimizers (the chapter's algorithms); ``torch.<name>`` are torch.optim's, for
comparison. Every config key besides ``name`` is checked against the constructor's signature before anything
is built. ``coordinate`` wraps an ``inner`` optimizer in block coordinate descent, one block per layer;
``sam`` wraps a ``base`` optimizer in sharpness-aware minimization (its own keys ``rho`` and ``adaptive``).
``no_decay_bias_norm`` (default true) puts biases and normalization parameters in a group without weight decay.
Schedules are torch's ``lr_scheduler`` classes; Algorithm 8.1's linear decay is a ``LambdaLR``, and
``torch.<Class>`` names any other (:mod:`regopt.lab.schedule_table`).
"""

from __future__ import annotations

import math
from typing import Any

from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    ExponentialLR,
    LambdaLR,
    LinearLR,
    LRScheduler,
    ReduceLROnPlateau,
    SequentialLR,
    StepLR,
)

from regopt.lab.config import (
    ConfigError,
    CosineSchedule,
    ExponentialSchedule,
    LinearSchedule,
    OptimizerConfig,
    PlateauSchedule,
    ScheduleConfig,
    StepSchedule,
    TorchSchedule,
)
from regopt.lab.optimizer_table import DEFAULT_INNER, OPTIMIZERS, WRAPPED, WRAPPERS, optimizer_options, takes_closure
from regopt.lab.schedule_table import LENGTH_KEYS, SCHEDULERS
from regopt.lab.schema.base import MAX_SCALE
from regopt.optim import SAM, CoordinateDescent, decay_groups, linear_decay

__all__ = ["OPTIMIZERS", "SCHEDULES", "WRAPPERS", "build_optimizer", "build_scheduler", "optimizer_options"]

SCHEDULES: dict[str, str] = {
    "constant": "fixed learning rate",
    "step": "multiply by gamma every step_size epochs/steps (StepLR)",
    "exponential": "multiply by gamma every epoch/step (ExponentialLR)",
    "cosine": "cosine annealing to eta_min over the run (CosineAnnealingLR)",
    "linear": "Algorithm 8.1: linear decay from lr to final_fraction*lr at tau, then constant (LambdaLR)",
    "plateau": "multiply by factor when a metric has not improved for patience epochs (ReduceLROnPlateau)",
    "torch.<Class>": "any class of torch.optim.lr_scheduler by name (torch.OneCycleLR, torch.MultiStepLR, ...); "
    "every other key is passed to it, checked against its signature (regopt list --config lists them)",
}


def _numbers(value: Any) -> list[float]:
    """The numbers in an option's value (an array's elements); booleans and strings are not numbers."""
    if isinstance(value, (tuple, list)):
        return [x for v in value for x in _numbers(v)]
    return [value] if isinstance(value, (int, float)) and not isinstance(value, bool) else []


def _check_numbers(key: str, value: Any) -> None:
    """Every number in an optimizer option is finite and at most :data:`MAX_SCALE` in size: beyond it a decay,
    momentum or epsilon can only be a mistake (``weight_decay = 1e300`` overflows at the first step). Ranges
    particular to an option (momentum below 1, betas in [0, 1)) are the optimizer's own checks."""
    for number in _numbers(value):
        if not math.isfinite(number):
            raise ConfigError(f"optimizer.{key}: {value!r} is not a finite number")
        if abs(number) > MAX_SCALE:
            problem = f"is beyond {MAX_SCALE:g} in size, which can only be a mistake"
            raise ConfigError(f"optimizer.{key}: {value!r} {problem}")


def _construct(name: str, kwargs: dict[str, Any], model: nn.Module, params: list[Any] | None = None) -> Optimizer:
    if name not in OPTIMIZERS:
        known = sorted([*OPTIMIZERS, *WRAPPERS])
        raise ConfigError(f"optimizer.name: unknown optimizer {name!r}; expected one of {known}")
    allowed = optimizer_options(name)
    for key in kwargs:
        if key not in allowed:
            raise ConfigError(f"optimizer.{key}: not an option of {name!r}; options are {allowed}")
    for key, value in kwargs.items():
        _check_numbers(key, value)
    kwargs = dict(kwargs)
    separate = kwargs.pop("no_decay_bias_norm", True)
    if params is None:
        decay = kwargs.get("weight_decay", 0.0)
        params = decay_groups(model, decay) if separate and decay else list(model.parameters())
    try:
        return OPTIMIZERS[name](params, **kwargs)
    except (ValueError, TypeError, RuntimeError) as err:
        raise ConfigError(f"optimizer: {name}: {err}") from None


def build_optimizer(config: OptimizerConfig, model: nn.Module, params: list[Any] | None = None) -> Optimizer:
    """Construct the configured optimizer over ``model``'s parameters (or ``params``, e.g. only those that train,
    a plain list of tensors); :class:`ConfigError` names the bad key."""
    kwargs = config.kwargs()
    if config.name not in WRAPPERS:
        return _construct(config.name, kwargs, model, params)
    key = WRAPPED[config.name]
    inner = kwargs.pop(key, DEFAULT_INNER)
    if inner in WRAPPERS or takes_closure(inner):
        kind = "a wrapper" if inner in WRAPPERS else "an optimizer that needs a closure of its own"
        raise ConfigError(f"optimizer.{key}: {config.name} cannot wrap {inner!r}, {kind}; name a plain optimizer")
    own = {k: kwargs.pop(k) for k in WRAPPERS[config.name] if k in kwargs}  # e.g. order, seed: given ones only
    for k, value in own.items():
        _check_numbers(k, value)
    if config.name == "sam":
        base = _construct(inner, kwargs, model, params)
        try:
            return SAM([p for group in base.param_groups for p in group["params"]], base, **own)
        except (ValueError, TypeError) as err:
            raise ConfigError(f"optimizer: sam: {err}") from None
    if params is not None:
        raise ConfigError(f"optimizer: {config.name} makes its own blocks of the model's parameters")
    blocks = CoordinateDescent.blocks_by_module(model)
    _construct(inner, kwargs, model)  # validate the inner options once, with clear errors
    try:
        return CoordinateDescent(blocks, lambda ps: _construct(inner, kwargs, model, ps), **own)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"optimizer: coordinate: {err}") from None


def build_scheduler(
    config: ScheduleConfig, optimizer: Optimizer, *, epochs: int, steps_per_epoch: int
) -> LRScheduler | None:
    """Construct the configured schedule (None for ``constant`` without warmup); lengths count the schedule's
    interval. A warmup of W intervals is torch's ``LinearLR`` followed, through ``SequentialLR``, by the named
    schedule over the remaining intervals of the run."""
    horizon = epochs if config.interval == "epoch" else epochs * steps_per_epoch
    warmup = config.warmup
    if warmup >= horizon:
        unit = "epochs" if config.interval == "epoch" else "steps"
        raise ConfigError(f"schedule.warmup_{unit}: {warmup} leaves nothing of the run's {horizon} {unit}")
    main = _named_schedule(config, optimizer, horizon - warmup)
    if not warmup:
        return main
    ramp = LinearLR(optimizer, start_factor=config.warmup_start_factor, end_factor=1.0, total_iters=warmup)
    return ramp if main is None else SequentialLR(optimizer, [ramp, main], milestones=[warmup])


def _named_schedule(config: ScheduleConfig, optimizer: Optimizer, horizon: int) -> LRScheduler | None:
    if isinstance(config, StepSchedule):
        return StepLR(optimizer, step_size=config.step_size, gamma=config.gamma)
    if isinstance(config, ExponentialSchedule):
        return ExponentialLR(optimizer, gamma=config.gamma)
    if isinstance(config, CosineSchedule):
        return CosineAnnealingLR(optimizer, T_max=horizon, eta_min=config.eta_min)
    if isinstance(config, LinearSchedule):
        return LambdaLR(optimizer, linear_decay(config.tau or horizon, config.final_fraction))
    if isinstance(config, PlateauSchedule):
        return ReduceLROnPlateau(
            optimizer,
            mode=config.mode,
            factor=config.factor,
            patience=config.patience,
            threshold=config.threshold,
            min_lr=config.min_lr,
        )
    if isinstance(config, TorchSchedule):
        return _torch_schedule(config, optimizer, horizon)
    return None


def _torch_schedule(config: TorchSchedule, optimizer: Optimizer, horizon: int) -> LRScheduler:
    """``torch.<Class>`` with the config's keys (checked against its signature when the config was read).
    ``OneCycleLR`` given none of its length keys spans the run (``total_steps`` = the run's steps); given one, the
    cycle must last the run, since torch raises an error at the first step past it."""
    kwargs = config.kwargs()
    if config.scheduler_class == "OneCycleLR":
        if not any(key in kwargs for key in LENGTH_KEYS["OneCycleLR"]):
            kwargs["total_steps"] = horizon
        length = kwargs.get("total_steps")
        if length is None and isinstance(kwargs.get("epochs"), int) and isinstance(kwargs.get("steps_per_epoch"), int):
            length = kwargs["epochs"] * kwargs["steps_per_epoch"]
        if isinstance(length, int) and not isinstance(length, bool) and length < horizon:
            key = "total_steps" if "total_steps" in kwargs else "epochs"
            problem = f"{config.name}'s cycle of {length} steps ends before the run's {horizon} steps"
            raise ConfigError(f"schedule.{key}: {problem} (leave the length keys out to span the run)")
    try:
        return SCHEDULERS[config.scheduler_class](optimizer, **kwargs)  # type: ignore[no-any-return]
    except (ValueError, TypeError, KeyError, ArithmeticError) as err:
        raise ConfigError(f"schedule: {config.name}: {err}") from None
