"""Config section ``[regularize]``: each regularizer optional."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, PositiveInt

from regopt.lab.schema.base import NonNegative, Pair, Strict

# ------------------------------------------------------------------------------------------- regularize


class AlphaConfig(Strict):
    """A penalty weight alpha: the objective becomes J + alpha * Omega(theta)."""

    alpha: NonNegative


class L1Config(AlphaConfig):
    proximal: bool = False
    """Soft-threshold the weights after each step (exact zeros) instead of adding alpha*||w||_1 to the loss."""


class ElasticNetConfig(AlphaConfig):
    l1_ratio: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5


class MaxNormConfig(Strict):
    c: Annotated[float, Field(gt=0.0)]
    """Radius of the ball each unit's incoming weight vector is projected onto after every step."""


class NoiseConfig(Strict):
    std: NonNegative


class ImageAugmentConfig(Strict):
    """Random rotation (degrees), horizontal flip, scaling range and shift (fraction of the size), via kornia."""

    rotate: NonNegative = 0.0
    flip: bool = False
    scale: Pair | None = None
    shift: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0


class SignalAugmentConfig(Strict):
    """Random shift (positions), amplitude scaling range and additive noise for 1-D signals such as MNIST-1D."""

    shift: Annotated[int, Field(ge=0)] = 0
    scale: Pair | None = None
    noise: NonNegative = 0.0


class EarlyStoppingConfig(Strict):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs (Algorithm 7.1);
    ``then`` uses the validation data afterwards: "retrain" (Algorithm 7.2) or "continue" (Algorithm 7.3)."""

    monitor: Literal["val_error", "val_loss", "train_error", "train_loss"] = "val_error"
    patience: PositiveInt = 10
    min_delta: NonNegative = 0.0
    restore_best: bool = True
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
