"""Config section ``[regularize]``: each regularizer optional, and where each plugs into the Trainer.

Every regularizer is a section class here, a field of :class:`RegularizeConfig`, and one row of
:data:`REGULARIZERS` (``key -> (phase, factory)``): adding a regularizer touches this file (its technique lives in
``regopt.regularize``); :mod:`regopt.lab.regularization` puts what the factories build into the Trainer's phases.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, PositiveInt
from torch import Tensor, nn

from regopt.lab.batch_order import has_batch_norm
from regopt.lab.schema.base import ConfigError, NonNegative, Pair, Strict
from regopt.lab.schema.defaults import default_of
from regopt.lab.schema.wiring import WiringContext
from regopt.regularize import (
    L1,
    L2,
    ActivationL1,
    EarlyStopping,
    ElasticNet,
    ImageAugment,
    InputNoise,
    MaxNorm,
    MultiTaskModel,
    SignalAugment,
    TangentProp,
    add_hidden_noise,
    add_weight_noise,
    signal_shift_tangent,
    tangent_vectors,
)
from regopt.regularize.noise import ACTIVATION_TYPES

if TYPE_CHECKING:
    pass

# ------------------------------------------------------------------------------------------- regularize


class AlphaConfig(Strict):
    """A penalty weight alpha: the objective becomes J + alpha * Omega(theta)."""

    alpha: NonNegative


class L1Config(AlphaConfig):
    proximal: bool = default_of(L1, "proximal")
    """Soft-threshold the weights after each step (exact zeros) instead of adding alpha*||w||_1 to the loss."""


class ElasticNetConfig(AlphaConfig):
    l1_ratio: Annotated[float, Field(ge=0.0, le=1.0)] = default_of(ElasticNet, "l1_ratio")


class MaxNormConfig(Strict):
    c: Annotated[float, Field(gt=0.0)]
    """Radius of the ball each unit's incoming weight vector is projected onto after every step."""


class NoiseConfig(Strict):
    std: NonNegative


class ImageAugmentConfig(Strict):
    """Random rotation (degrees), horizontal flip, scaling range and shift (fraction of the size), via kornia."""

    rotate: NonNegative = default_of(ImageAugment, "rotate")
    flip: bool = default_of(ImageAugment, "flip")
    scale: Pair | None = default_of(ImageAugment, "scale")
    shift: Annotated[float, Field(ge=0.0, lt=1.0)] = default_of(ImageAugment, "shift")


class SignalAugmentConfig(Strict):
    """Random shift (positions), amplitude scaling range and additive noise for 1-D signals such as MNIST-1D."""

    shift: Annotated[int, Field(ge=0)] = default_of(SignalAugment, "shift")
    scale: Pair | None = default_of(SignalAugment, "scale")
    noise: NonNegative = default_of(SignalAugment, "noise")


class EarlyStoppingConfig(Strict):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs (Algorithm 7.1);
    ``then`` uses the validation data afterwards: "retrain" (Algorithm 7.2) or "continue" (Algorithm 7.3)."""

    monitor: Literal["val_error", "val_loss", "train_error", "train_loss"] = default_of(EarlyStopping, "monitor")
    patience: PositiveInt = default_of(EarlyStopping, "patience")
    min_delta: NonNegative = default_of(EarlyStopping, "min_delta")
    restore_best: bool = default_of(EarlyStopping, "restore_best")
    then: Literal["none", "retrain", "continue"] = "none"


class TangentPropConfig(Strict):
    """Tangent propagation (Simard et al. 1992; sec. 7.14): alpha * mean_i sum_t ||J_f(x_i) v_t||^2, the squared
    directional derivative of the output along each input's known tangents: ``"image"`` a shift in x, a shift in
    y and a rotation (images, also stored flat); ``"signal"`` a shift of 1-D signals (MNIST-1D)."""

    alpha: NonNegative
    """Weight of the penalty; 0 turns it off."""
    tangents: Literal["image", "signal"] = "image"
    """Which transformations the output should not change under: image shifts and rotation, or a signal shift."""


class RegularizeConfig(Strict):
    """Regularizers, each optional; see ``regopt list``."""

    l2: AlphaConfig | None = None
    """L2 penalty alpha/2 * ||w||^2 on the weights (weight decay in the loss)."""
    l1: L1Config | None = None
    """L1 penalty alpha * ||w||_1; ``proximal = true`` soft-thresholds after each step (exact zeros)."""
    elastic_net: ElasticNetConfig | None = None
    """alpha * (l1_ratio * ||w||_1 + (1 - l1_ratio)/2 * ||w||^2)."""
    max_norm: MaxNormConfig | None = None
    """Project each unit's incoming weight vector onto the ball of radius c after every step."""
    input_noise: NoiseConfig | None = None
    """Gaussian noise of standard deviation ``std`` added to training inputs."""
    hidden_noise: NoiseConfig | None = None
    """Gaussian noise layers after every hidden activation (training only)."""
    weight_noise: NoiseConfig | None = None
    """Gaussian noise on the weights in each training forward pass (torch parametrize)."""
    label_smoothing: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    """Noise at the output targets: soft targets with this smoothing (0 = off)."""
    augment_image: ImageAugmentConfig | None = None
    augment_signal: SignalAugmentConfig | None = None
    activation_l1: AlphaConfig | None = None
    """Sparse representations: alpha * mean L1 norm of the hidden activations."""
    early_stopping: EarlyStoppingConfig | None = None
    tangent_prop: TangentPropConfig | None = None
    """Penalize the output's change along known transformations of each training input (an objective term)."""


# ------------------------------------------------------------------------------------------------- wiring
Phase = Literal["model", "penalties", "terms", "batch_transforms", "post_step", "monitors"]
"""Where a regularizer plugs in: ``model`` wraps the model before the optimizer is built (noise layers); the
others are the Trainer's phases of the same names (see :mod:`regopt.lab.trainer`)."""


def _l1(c: L1Config, ctx: WiringContext) -> Any:
    l1 = L1(c.alpha, proximal=c.proximal)
    if not c.proximal:
        return l1
    optimizer = ctx.optimizer
    assert optimizer is not None
    return lambda m: l1.shrink(m, optimizer.param_groups[0]["lr"])  # soft-threshold with the current lr


def _activation_l1(c: AlphaConfig, ctx: WiringContext) -> Any:
    activations = [m for m in ctx.model.modules() if isinstance(m, ACTIVATION_TYPES)]
    if not activations:
        raise ConfigError("regularize.activation_l1: the model has no activation layers to penalize")
    return ActivationL1(c.alpha, activations)


def _hidden_noise(c: NoiseConfig, ctx: WiringContext) -> Any:
    model = ctx.model
    if isinstance(model, MultiTaskModel):  # the noise goes into the shared trunk
        if not isinstance(model.trunk, nn.Sequential):
            raise ConfigError("regularize.hidden_noise: the multi-task trunk is not a Sequential model")
        model.trunk = add_hidden_noise(model.trunk, c.std)
        return model
    if not isinstance(model, nn.Sequential):
        raise ConfigError("regularize.hidden_noise: needs a Sequential model (mlp, cnn1d, cnn2d)")
    return add_hidden_noise(model, c.std)


def _augment_image(c: ImageAugmentConfig, ctx: WiringContext) -> Any:
    shape = ctx.data.input_shape
    if ctx.data.image_shape is None:
        raise ConfigError(f"regularize.augment_image: needs image data, got inputs of shape {shape}")
    flat = ctx.data.image_shape if ctx.data.image_shape != shape else None  # images stored as vectors
    return ImageAugment(c.rotate, c.flip, c.scale, c.shift, image_shape=flat)


def _augment_signal(c: SignalAugmentConfig, ctx: WiringContext) -> Any:
    shape = ctx.data.input_shape
    if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
        raise ConfigError(f"regularize.augment_signal: needs 1-D signals, got inputs of shape {shape}")
    return SignalAugment(c.shift, c.scale, c.noise)


def _early_stopping(c: EarlyStoppingConfig, ctx: WiringContext) -> Any:
    return EarlyStopping(
        ctx.model,
        monitor=c.monitor,
        patience=c.patience,
        min_delta=c.min_delta,
        restore_best=c.restore_best,
        optimizer=ctx.optimizer,  # Nesterov: keep the theta that was evaluated, not the interim point
    )


def _tangent_prop(c: TangentPropConfig, ctx: WiringContext) -> Any:
    shape = ctx.data.input_shape
    if c.tangents == "signal":
        if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
            raise ConfigError(f"regularize.tangent_prop: signal tangents need 1-D signals, got inputs of shape {shape}")
        tangents: Callable[[Tensor], Tensor] = signal_shift_tangent
    else:
        if ctx.data.image_shape is None:
            raise ConfigError(f"regularize.tangent_prop: image tangents need image data, got inputs of shape {shape}")
        flat = ctx.data.image_shape if ctx.data.image_shape != shape else None  # images stored as vectors
        tangents = functools.partial(tangent_vectors, image_shape=flat)

    if has_batch_norm(ctx.model):
        raise ConfigError(
            "regularize.tangent_prop: the model has BatchNorm, whose running statistics the tangents' forward-mode "
            "pass would update; use the model without batch_norm"
        )
    penalty = TangentProp(c.alpha, tangents, output=ctx.output)  # a multi-task model: the judged head's output
    return lambda batch: penalty(batch.model, batch.x)  # an objective term: it needs the batch's inputs


def _phase_of_l1(c: L1Config) -> Phase:
    return "post_step" if c.proximal else "penalties"


REGULARIZERS: dict[str, tuple[Phase | Callable[[Any], Phase], Callable[[Any, WiringContext], Any]]] = {
    # key            phase                 factory: (section, context) -> hook (None: nothing to add)
    "l2": ("penalties", lambda c, ctx: L2(c.alpha)),
    "l1": (_phase_of_l1, _l1),
    "elastic_net": ("penalties", lambda c, ctx: ElasticNet(c.alpha, c.l1_ratio)),
    "max_norm": ("post_step", lambda c, ctx: MaxNorm(c.c)),
    "input_noise": ("batch_transforms", lambda c, ctx: InputNoise(c.std) if c.std > 0 else None),
    "hidden_noise": ("model", lambda c, ctx: _hidden_noise(c, ctx) if c.std > 0 else None),
    "weight_noise": ("model", lambda c, ctx: add_weight_noise(ctx.model, c.std) if c.std > 0 else None),
    "augment_image": ("batch_transforms", _augment_image),
    "augment_signal": ("batch_transforms", _augment_signal),
    "activation_l1": ("penalties", _activation_l1),
    "early_stopping": ("monitors", _early_stopping),
    "tangent_prop": ("terms", _tangent_prop),
}
"""``[regularize]`` key -> (Trainer phase, or a function of the section giving it; factory). Applied in this
order within each phase (penalties are summed in it). ``label_smoothing`` is not a section: it changes the task
loss (:mod:`regopt.lab.regularization`)."""
