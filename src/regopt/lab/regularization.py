"""Wire a ``[regularize]`` config section into the Trainer's phases (no math here: it lives in regopt.regularize).

=====================  ===========================================  ====================
config key             technique                                    Trainer phase
=====================  ===========================================  ====================
l2, l1, elastic_net    alpha * Omega(weights)                       penalties
l1.proximal            soft-thresholding with the current lr        post-step
max_norm               projection of each unit's incoming weights   post-step
activation_l1          alpha * mean |h| over hidden activations     penalties
input_noise            x + N(0, std^2)                              batch transforms
augment_image/signal   kornia affine / 1-D shift, scale, noise      batch transforms
hidden_noise           GaussianNoise after every activation         the model
weight_noise           w + N(0, std^2) in the forward pass          the model
label_smoothing        soft targets                                 the task loss
early_stopping         Algorithm 7.1 with restore                   monitors
=====================  ===========================================  ====================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn
from torch.optim import Optimizer

from regopt.lab.config import ConfigError, RegularizeConfig
from regopt.lab.data import Dataset
from regopt.monitor import Monitor
from regopt.regularize import (
    L1,
    L2,
    ActivationL1,
    EarlyStopping,
    ElasticNet,
    ImageAugment,
    InputNoise,
    MaxNorm,
    SignalAugment,
    add_hidden_noise,
    add_weight_noise,
    smoothed_cross_entropy,
)
from regopt.regularize.noise import ACTIVATION_TYPES


@dataclass
class RegularizationHooks:
    """What a ``[regularize]`` section adds to each Trainer phase."""

    penalties: list[Callable[[nn.Module], Tensor]] = field(default_factory=list)
    batch_transforms: list[Any] = field(default_factory=list)
    post_step: list[Callable[[nn.Module], Any]] = field(default_factory=list)
    monitors: list[Monitor] = field(default_factory=list)
    loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None
    early_stopping: EarlyStopping | None = None


def regularize_model(config: RegularizeConfig, model: nn.Module) -> nn.Module:
    """Model-level regularizers (before the optimizer is built): hidden-unit noise and weight noise."""
    if config.hidden_noise is not None and config.hidden_noise.std > 0:
        if not isinstance(model, nn.Sequential):
            raise ConfigError("regularize.hidden_noise: needs a Sequential model (mlp, cnn1d, cnn2d)")
        model = add_hidden_noise(model, config.hidden_noise.std)
    if config.weight_noise is not None and config.weight_noise.std > 0:
        model = add_weight_noise(model, config.weight_noise.std)
    return model


def _augmentation(config: RegularizeConfig, data: Dataset) -> list[Any]:
    transforms: list[Any] = []
    shape = data.input_shape
    if config.augment_image is not None:
        a = config.augment_image
        if data.image_shape is None:
            raise ConfigError(f"regularize.augment_image: needs image data, got inputs of shape {shape}")
        flat = data.image_shape if data.image_shape != shape else None  # images stored as vectors
        transforms.append(ImageAugment(a.rotate, a.flip, a.scale, a.shift, image_shape=flat))
    if config.augment_signal is not None:
        signal = config.augment_signal
        if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
            raise ConfigError(f"regularize.augment_signal: needs 1-D signals, got inputs of shape {shape}")
        transforms.append(SignalAugment(signal.shift, signal.scale, signal.noise))
    return transforms


def regularization_hooks(
    config: RegularizeConfig, model: nn.Module, optimizer: Optimizer, data: Dataset
) -> RegularizationHooks:
    """Penalties, batch transforms, post-step actions, monitors and loss for the Trainer."""
    hooks = RegularizationHooks()
    if config.l2 is not None:
        hooks.penalties.append(L2(config.l2.alpha))
    if config.l1 is not None:
        l1 = L1(config.l1.alpha, proximal=config.l1.proximal)
        if config.l1.proximal:
            hooks.post_step.append(lambda m: l1.shrink(m, optimizer.param_groups[0]["lr"]))
        else:
            hooks.penalties.append(l1)
    if config.elastic_net is not None:
        hooks.penalties.append(ElasticNet(config.elastic_net.alpha, config.elastic_net.l1_ratio))
    if config.activation_l1 is not None:
        activations = [m for m in model.modules() if isinstance(m, ACTIVATION_TYPES)]
        if not activations:
            raise ConfigError("regularize.activation_l1: the model has no activation layers to penalize")
        hooks.penalties.append(ActivationL1(config.activation_l1.alpha, activations))
    if config.max_norm is not None:
        hooks.post_step.append(MaxNorm(config.max_norm.c))
    if config.input_noise is not None and config.input_noise.std > 0:
        hooks.batch_transforms.append(InputNoise(config.input_noise.std))
    hooks.batch_transforms.extend(_augmentation(config, data))
    if config.label_smoothing > 0:
        if data.task != "classification":
            raise ConfigError("regularize.label_smoothing: only for classification data")
        hooks.loss_fn = smoothed_cross_entropy(config.label_smoothing)
    if config.early_stopping is not None:
        e = config.early_stopping
        hooks.early_stopping = EarlyStopping(
            model,
            monitor=e.monitor,
            patience=e.patience,
            min_delta=e.min_delta,
            restore_best=e.restore_best,
            optimizer=optimizer,  # Nesterov: keep the theta that was evaluated, not the interim point
        )
        hooks.monitors.append(hooks.early_stopping)
    return hooks
