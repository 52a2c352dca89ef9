"""Config sections of ``[model]``: one class per model, chosen by ``name``."""

from __future__ import annotations

from itertools import pairwise
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from regopt.lab.schema.base import MAX_HIDDEN_WEIGHTS, Strict, Width

# -------------------------------------------------------------------------------------------------- model
Activation = Literal["relu", "tanh", "sigmoid", "gelu", "elu", "leaky_relu", "identity"]
DropoutP = Annotated[float, Field(ge=0.0, lt=1.0)]


def _weights_fit(value: Any, weights: int) -> Any:
    """``value`` if the hidden weights it implies fit in :data:`MAX_HIDDEN_WEIGHTS`, else a ValueError saying how
    much memory they would take."""
    if weights > MAX_HIDDEN_WEIGHTS:
        raise ValueError(
            f"{weights:,} hidden weights ({4 * weights / 2**30:.0f} GiB of float32 before gradients and optimizer "
            f"state); at most {MAX_HIDDEN_WEIGHTS:,} are allowed"
        )
    return value


class LinearModelConfig(Strict):
    """One affine layer: linear regression, or logistic (softmax) regression for classification."""

    name: Literal["linear", "logistic"]


class MlpConfig(Strict):
    """Multilayer perceptron: [dropout] -> (Linear -> [BatchNorm] -> activation -> [dropout]) x len(widths)."""

    name: Literal["mlp"]
    widths: list[Width] = Field(default_factory=lambda: [100, 100])
    """Width of each hidden layer, input side first; at most 65,536 units a layer and 1,000,000,000
    hidden-to-hidden weights in all (4 GiB of float32)."""
    activation: Activation = "relu"
    dropout_input: DropoutP = 0.0
    dropout_hidden: DropoutP = 0.0
    batch_norm: bool = False
    share_hidden: bool = False
    """Parameter sharing (sec. 7.9): consecutive hidden-to-hidden layers of equal width (``fc2`` on) reuse one
    ``Linear`` module; the first layer ``fc1`` reads the input and is never shared, whatever its width."""

    @field_validator("widths")
    @classmethod
    def _fits(cls, widths: list[int]) -> list[int]:
        return _weights_fit(widths, sum(a * b for a, b in pairwise(widths)))


class Cnn1dConfig(Strict):
    """MNIST-1D paper's ConvBase: 3 conv layers (kernels 5, 3, 3; stride 2; padding 1) and a linear head."""

    name: Literal["cnn1d"]
    channels: Width = 25
    activation: Activation = "relu"
    dropout_hidden: DropoutP = 0.0
    batch_norm: bool = False

    @field_validator("channels")
    @classmethod
    def _fits(cls, channels: int) -> int:
        return _weights_fit(channels, 2 * 3 * channels**2)


class Cnn2dConfig(Strict):
    """Small CNN for 8x8 digits: conv blocks with the given channels, then a linear head."""

    name: Literal["cnn2d"]
    channels: list[Width] = Field(default_factory=lambda: [16, 32])
    activation: Activation = "relu"
    dropout_hidden: DropoutP = 0.0
    batch_norm: bool = False

    @field_validator("channels")
    @classmethod
    def _fits(cls, channels: list[int]) -> list[int]:
        return _weights_fit(channels, sum(9 * a * b for a, b in pairwise(channels)))


class GruConfig(Strict):
    """GRU over the feature axis (a sequence of scalars), classifying from the last hidden state."""

    name: Literal["gru"]
    hidden_size: Width = 6
    num_layers: Annotated[int, Field(gt=0, le=100)] = 1
    bidirectional: bool = True

    @field_validator("hidden_size")
    @classmethod
    def _fits(cls, hidden_size: int) -> int:
        return _weights_fit(hidden_size, 3 * hidden_size**2)


class CustomModelConfig(Strict):
    """A user model: ``target = "package.module:function"`` called as ``function(input_shape, output_dim,
    **kwargs)`` and returning an ``nn.Module``."""

    name: Literal["custom"]
    target: Annotated[str, Field(pattern=r"^[\w.]+:\w+$")]
    kwargs: dict[str, Any] = Field(default_factory=dict)


ModelConfig = Annotated[
    LinearModelConfig | MlpConfig | Cnn1dConfig | Cnn2dConfig | GruConfig | CustomModelConfig,
    Field(discriminator="name"),
]
