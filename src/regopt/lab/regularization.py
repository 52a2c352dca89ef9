"""Put a ``[regularize]`` section into the Trainer's phases: the generic loop over
:data:`~regopt.lab.schema.regularize.REGULARIZERS`, which says, beside each section's schema, which technique of
``regopt.regularize`` goes into which phase (no math here, and no per-regularizer code). The README's
regularization table lists them for users."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn
from torch.optim import Optimizer

from regopt.lab.config import ConfigError, RegularizeConfig
from regopt.lab.data import Dataset
from regopt.lab.objective import TrainingBatch
from regopt.lab.schema.regularize import REGULARIZERS, Phase
from regopt.lab.schema.wiring import WiringContext
from regopt.monitor import Monitor
from regopt.regularize import EarlyStopping, smoothed_cross_entropy


@dataclass
class RegularizationHooks:
    """What a ``[regularize]`` section adds to each Trainer phase."""

    penalties: list[Callable[[nn.Module], Tensor]] = field(default_factory=list)
    terms: list[Callable[[TrainingBatch], Tensor]] = field(default_factory=list)
    batch_transforms: list[Any] = field(default_factory=list)
    post_step: list[Callable[[nn.Module], Any]] = field(default_factory=list)
    monitors: list[Monitor] = field(default_factory=list)
    loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None
    early_stopping: EarlyStopping | None = None


def _sections(config: RegularizeConfig) -> Iterator[tuple[Phase, Callable[[Any, WiringContext], Any], Any]]:
    """``(phase, factory, section)`` of every section the config gives, in :data:`REGULARIZERS` order."""
    for key, (phase, factory) in REGULARIZERS.items():
        section = getattr(config, key)
        if section is not None:
            yield (phase if isinstance(phase, str) else phase(section)), factory, section


def regularize_model(config: RegularizeConfig, model: nn.Module, data: Dataset) -> nn.Module:
    """Model-level regularizers (before the optimizer is built): hidden-unit noise and weight noise."""
    for phase, factory, section in _sections(config):
        if phase == "model":
            model = factory(section, WiringContext(model, None, data)) or model
    return model


def regularization_hooks(
    config: RegularizeConfig,
    model: nn.Module,
    optimizer: Optimizer,
    data: Dataset,
    *,
    output: Callable[[Any], Tensor] | None = None,
) -> RegularizationHooks:
    """Penalties, objective terms, batch transforms, post-step actions, monitors and loss for the Trainer;
    ``output`` picks the output a multi-output model is judged by (terms on the output use it)."""
    hooks = RegularizationHooks()
    context = WiringContext(model, optimizer, data, output=output)
    for phase, factory, section in _sections(config):
        if phase != "model" and (hook := factory(section, context)) is not None:
            getattr(hooks, phase).append(hook)
            if isinstance(hook, EarlyStopping):
                hooks.early_stopping = hook
    if config.label_smoothing > 0:
        if data.task != "classification":
            raise ConfigError("regularize.label_smoothing: only for classification data")
        hooks.loss_fn = smoothed_cross_entropy(config.label_smoothing)
    return hooks
