"""Config sections of ``[optimizer]``, ``[schedule]``, ``[train]`` and ``[averaging]``."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, PositiveInt, Tag, model_validator
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, ReduceLROnPlateau, StepLR

from regopt.init import initialize
from regopt.lab.optimizer_table import optimizer_default
from regopt.lab.schedule_table import (
    PER_STEP,
    SCHEDULERS,
    SUPPLIED,
    TORCH_PREFIX,
    required_options,
    scheduler_options,
    takes_text,
    unknown_scheduler,
)
from regopt.lab.schema.base import MAX_SCALE, STRICT_TYPES, Fraction, Rate, Strict, key_error
from regopt.lab.schema.defaults import default_of
from regopt.optim import PolyakAveraging, linear_decay


# ------------------------------------------------------------------------------------ optimizer, schedule
class OptimizerConfig(BaseModel):
    """``name`` picks an optimizer from the registry (``regopt list``); every other key is passed to its
    constructor and checked against its signature when the run is built. A key left out takes the
    optimizer's own default."""

    model_config = ConfigDict(extra="allow", frozen=True, **STRICT_TYPES)
    name: str = "sgd"
    lr: Rate | None = None

    @model_validator(mode="after")
    def _record_default_lr(self) -> OptimizerConfig:
        """An omitted ``lr`` becomes the default of the optimizer that will run (a wrapper's inner one), read
        from its signature: ``config.optimizer.lr`` and the run directory's config.toml then show the
        learning rate used, while the default itself is written once, in the optimizer. It stays None for
        an unknown name (building the optimizer reports that) or an optimizer without a default."""
        if self.lr is None:
            self.__dict__["lr"] = optimizer_default(self.name, "lr", self.model_extra)
        return self

    def kwargs(self) -> dict[str, Any]:
        """Constructor keyword arguments: everything but ``name``; TOML arrays become tuples (``betas``). ``lr``
        is passed when known (given, or the optimizer's own default recorded at validation)."""
        extra = {k: tuple(v) if isinstance(v, list) else v for k, v in (self.model_extra or {}).items()}
        return {"lr": self.lr, **extra} if self.lr is not None else extra


class ScheduleBase(Strict):
    interval: Literal["epoch", "step"] = "epoch"
    """Whether the schedule advances once per epoch or once per optimizer step."""
    warmup_steps: Annotated[int, Field(ge=0)] = 0
    """Linear warmup over the first this many optimizer steps (``interval = "step"``), from
    ``warmup_start_factor`` x lr to lr; the named schedule then runs over the rest (torch LinearLR +
    SequentialLR)."""
    warmup_epochs: Annotated[int, Field(ge=0)] = 0
    """The same over the first this many epochs (``interval = "epoch"``)."""
    warmup_start_factor: Annotated[float, Field(gt=0.0, le=1.0)] = default_of(LinearLR, "start_factor")
    """The learning rate at the first warmup step, as a fraction of lr."""

    @model_validator(mode="after")
    def _warmup_counts_the_interval(self) -> ScheduleBase:
        if self.warmup_steps and self.interval != "step":
            raise ValueError('warmup_steps counts optimizer steps: it needs interval = "step" (or use warmup_epochs)')
        if self.warmup_epochs and self.interval != "epoch":
            raise ValueError('warmup_epochs counts epochs: it needs interval = "epoch" (or use warmup_steps)')
        return self

    @property
    def warmup(self) -> int:
        """Warmup length in the schedule's own interval."""
        return self.warmup_steps or self.warmup_epochs


class ConstantSchedule(ScheduleBase):
    name: Literal["constant"]


class StepSchedule(ScheduleBase):
    """Multiply the learning rate by ``gamma`` every ``step_size`` intervals (torch ``StepLR``)."""

    name: Literal["step"]
    step_size: PositiveInt = 30
    gamma: Fraction = default_of(StepLR, "gamma")


class ExponentialSchedule(ScheduleBase):
    """Multiply the learning rate by ``gamma`` every interval (torch ``ExponentialLR``)."""

    name: Literal["exponential"]
    gamma: Annotated[float, Field(gt=0.0, le=1.0)] = 0.95


class CosineSchedule(ScheduleBase):
    """Cosine annealing to ``eta_min`` over the whole run, or what a warmup leaves of it (``CosineAnnealingLR``)."""

    name: Literal["cosine"]
    eta_min: Annotated[float, Field(ge=0.0, le=MAX_SCALE)] = default_of(CosineAnnealingLR, "eta_min")


class LinearSchedule(ScheduleBase):
    """Algorithm 8.1's decay: eps_k = (1 - k/tau) eps_0 + (k/tau) eps_tau for k <= tau, then eps_tau, with
    eps_tau = ``final_fraction`` * eps_0; ``tau`` defaults to the whole run (after a warmup, the rest of it, and
    k counts from the warmup's end)."""

    name: Literal["linear"]
    tau: PositiveInt | None = None
    final_fraction: Annotated[float, Field(ge=0.0, le=1.0)] = default_of(linear_decay, "final_fraction")


class PlateauSchedule(ScheduleBase):
    """Multiply the learning rate by ``factor`` once ``monitor`` has not improved (by ``threshold``, relative)
    for ``patience`` epochs, judged after each epoch's evaluation (torch ``ReduceLROnPlateau``); never below
    ``min_lr``. Per epoch only, and without warmup."""

    name: Literal["plateau"]
    monitor: Literal["val_error", "val_loss", "train_error", "train_loss"] = "val_loss"
    """The metric of metrics.csv that must keep improving."""
    mode: Literal["min", "max"] = default_of(ReduceLROnPlateau, "mode")
    """Whether improving means falling (errors and losses) or rising."""
    patience: Annotated[int, Field(ge=0)] = default_of(ReduceLROnPlateau, "patience")
    """Epochs without improvement before the rate is reduced."""
    factor: Fraction = default_of(ReduceLROnPlateau, "factor")
    """What the rate is multiplied by at a reduction."""
    threshold: Annotated[float, Field(ge=0.0, le=1.0)] = default_of(ReduceLROnPlateau, "threshold")
    """The relative change that counts as an improvement."""
    min_lr: Annotated[float, Field(ge=0.0, le=MAX_SCALE)] = default_of(ReduceLROnPlateau, "min_lr")
    """The rate is never reduced below this."""

    @model_validator(mode="after")
    def _per_epoch_without_warmup(self) -> PlateauSchedule:
        if self.interval != "epoch":
            raise ValueError('the plateau schedule judges each epoch\'s metrics: it needs interval = "epoch"')
        if self.warmup:
            raise ValueError("the plateau schedule takes no warmup (torch's SequentialLR cannot hold it)")
        return self


class TorchSchedule(ScheduleBase):
    """Any scheduler of torch.optim.lr_scheduler by its class name, ``name = "torch.OneCycleLR"``: every key
    besides ``name``, ``interval`` and the warmup keys is passed to its constructor and checked against its
    signature when the config is read (the table below); ``optimizer`` is the run's. ``OneCycleLR`` and
    ``CyclicLR`` step after every batch (``interval = "step"``) and take no warmup (they start from their own
    base rate); ``OneCycleLR`` without ``total_steps`` (or ``epochs`` and ``steps_per_epoch``) spans the whole
    run, and like ``CyclicLR`` it also cycles the optimizer's momentum (or Adam's beta1) unless
    ``cycle_momentum = false``."""

    model_config = ConfigDict(extra="allow")
    name_form: ClassVar[str] = f'"{TORCH_PREFIX}<Class>"'
    """How the reference writes this variant's ``name``."""
    name: Annotated[str, Field(pattern="^" + re.escape(TORCH_PREFIX))]
    """``torch.`` and the class name, e.g. ``torch.MultiStepLR``."""

    @model_validator(mode="after")
    def _a_scheduler_and_its_options(self) -> TorchSchedule:
        cls = self.scheduler_class
        if cls not in SCHEDULERS:
            raise key_error("name", unknown_scheduler(self.name))
        options, given = scheduler_options(cls), self.model_extra or {}
        for key, value in given.items():
            if key in SUPPLIED:
                raise key_error(key, f"regopt passes {self.name} the run's {key} itself; leave it out")
            if key not in options:
                raise key_error(key, f"not an option of {self.name}; its options are {options}")
            if any(not math.isfinite(number) for number in _numbers(value)):
                raise key_error(key, f"{value!r} is not a finite number")
            if isinstance(value, str) and not takes_text(cls, key):
                raise key_error(key, f"{value!r} is text; {self.name} takes a number (or an array) here")
        for key in required_options(cls):
            if key not in given:
                raise key_error(key, f"{self.name} needs it (no default)")
        if cls in PER_STEP:
            if self.interval != "step":
                problem = f'{self.name} steps after every batch ({PER_STEP[cls]}): it needs interval = "step"'
                raise key_error("interval", problem)
            if self.warmup:
                problem = f"{self.name} takes no warmup: it starts from its own base rate (and warms up itself)"
                raise key_error("warmup_steps", problem)
        return self

    @property
    def scheduler_class(self) -> str:
        """The class name after ``torch.``."""
        return self.name[len(TORCH_PREFIX) :]

    def kwargs(self) -> dict[str, Any]:
        """Constructor keyword arguments: every key but ``name``, ``interval`` and the warmup keys (TOML arrays
        stay lists, which torch's schedulers take wherever they take a sequence)."""
        return dict(self.model_extra or {})


def _numbers(value: Any) -> list[float]:
    """The numbers in an option's value (an array's elements); booleans and strings are not numbers."""
    if isinstance(value, (tuple, list)):
        return [x for v in value for x in _numbers(v)]
    return [value] if isinstance(value, (int, float)) and not isinstance(value, bool) else []


def _schedule_tag(value: Any) -> str | None:
    """The union member a ``[schedule]`` table is: its ``name``, or ``torch.<Class>`` for every torch name."""
    name = value.get("name") if isinstance(value, dict) else getattr(value, "name", None)
    return f"{TORCH_PREFIX}<Class>" if isinstance(name, str) and name.startswith(TORCH_PREFIX) else name


ScheduleConfig = Annotated[
    Annotated[ConstantSchedule, Tag("constant")]
    | Annotated[StepSchedule, Tag("step")]
    | Annotated[ExponentialSchedule, Tag("exponential")]
    | Annotated[CosineSchedule, Tag("cosine")]
    | Annotated[LinearSchedule, Tag("linear")]
    | Annotated[PlateauSchedule, Tag("plateau")]
    | Annotated[TorchSchedule, Tag(f"{TORCH_PREFIX}<Class>")],
    Discriminator(_schedule_tag),
]


# --------------------------------------------------------------------------------------------------- train
class TrainConfig(Strict):
    epochs: PositiveInt = 20
    batch_size: PositiveInt = 64
    shuffle: bool = True
    """Draw a fresh order of the training examples every epoch; ``false`` takes batches as consecutive slices of
    one fixed order every epoch, as the MNIST-1D paper's loop does."""
    clip_grad_norm: Annotated[float, Field(gt=0.0)] | None = None
    """Rescale the global gradient norm to at most this (torch.nn.utils.clip_grad_norm_)."""
    clip_grad_value: Annotated[float, Field(gt=0.0)] | None = None
    """Clamp every gradient entry to [-v, v] (torch.nn.utils.clip_grad_value_)."""
    evaluate_test: bool = True
    """Evaluate the test split once, at the end."""
    checkpoint_every: PositiveInt | None = None
    """Also checkpoint every this many optimizer steps (a checkpoint is always written each epoch)."""
    accumulate: PositiveInt = 1
    """Gradient accumulation: each optimizer step runs this many forward and backward passes over micro-batches
    of ``batch_size / accumulate`` examples and adds their gradients, weighted so that the step equals one on the
    whole batch (to float rounding; dropout and BatchNorm see the smaller batches). Penalties count once per
    step; monitors and schedules see optimizer steps."""
    precision: Literal["32", "bf16", "fp16"] = "32"
    """The forward pass's number format: "32" (float32), "bf16" (torch.autocast to bfloat16, on CPU or CUDA) or
    "fp16" (autocast to float16 with torch.amp.GradScaler, which skips a step whose gradients overflow; meant for
    CUDA). Parameters, gradients and optimizer state stay float32."""
    compile: bool = False
    """torch.compile the model (its forward and backward; the optimizer's own ``compile`` is separate).
    Checkpoints keep the uncompiled model's keys."""

    keep_best: bool = False
    """Keep the weights of the best validation epoch as ``best.pt`` in the run directory (the metric, mode and
    min_delta of ``[regularize.early_stopping]`` if given, else the lowest ``val_error``); early stopping that
    restores keeps it without this key."""

    @model_validator(mode="after")
    def _accumulate_within_batch(self) -> TrainConfig:
        if self.accumulate > self.batch_size:
            raise ValueError(
                f"accumulate = {self.accumulate} micro-batches cannot split batch_size = {self.batch_size} examples"
            )
        return self


class AveragingConfig(Strict):
    """Polyak averaging of the weights (sec. 8.7.3): evaluation uses the averages; ``decay`` None is the
    arithmetic mean of all iterates since ``start_step``, a number in [0, 1) an exponential moving average."""

    decay: Annotated[float, Field(ge=0.0, lt=1.0)] | None = default_of(PolyakAveraging, "decay")
    start_step: Annotated[int, Field(ge=0)] = default_of(PolyakAveraging, "start_step")


class InitConfig(Strict):
    """Initialization policy over the whole model (regopt.init.initialize; sec. 8.4)."""

    policy: Literal[
        "xavier_uniform", "xavier_normal", "he_uniform", "he_normal", "lecun_normal", "orthogonal", "sparse", "default"
    ] = "default"
    bias: float | Literal["zero", "default"] = default_of(initialize, "bias")
    """Bias rule: "zero", a constant (e.g. 0.1 for ReLU units), or torch's "default"."""
