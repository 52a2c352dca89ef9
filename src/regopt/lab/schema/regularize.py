"""Config section ``[regularize]``: each regularizer optional."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, PositiveInt

from regopt.lab.schema.base import NonNegative, Pair, Strict
from regopt.lab.schema.defaults import default_of
from regopt.regularize import L1, EarlyStopping, ElasticNet, ImageAugment, SignalAugment

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
