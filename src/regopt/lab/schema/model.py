"""Config sections of ``[model]``: one class per model, chosen by ``name``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, PositiveInt

from regopt.lab.schema.base import Strict

# -------------------------------------------------------------------------------------------------- model
Activation = Literal["relu", "tanh", "sigmoid", "gelu", "elu", "leaky_relu", "identity"]
DropoutP = Annotated[float, Field(ge=0.0, lt=1.0)]


class LinearModelConfig(Strict):
    """One affine layer: linear regression, or logistic (softmax) regression for classification."""

    name: Literal["linear", "logistic"]


class MlpConfig(Strict):
    """Multilayer perceptron: [dropout] -> (Linear -> [BatchNorm] -> activation -> [dropout]) x len(widths)."""

    name: Literal["mlp"]
    widths: list[PositiveInt] = Field(default_factory=lambda: [100, 100])
    activation: Activation = "relu"
    dropout_input: DropoutP = 0.0
    dropout_hidden: DropoutP = 0.0
    batch_norm: bool = False
    share_hidden: bool = False
    """Parameter sharing (sec. 7.9): consecutive hidden-to-hidden layers of equal width (``fc2`` on) reuse one
    ``Linear`` module; the first layer ``fc1`` reads the input and is never shared, whatever its width."""


class Cnn1dConfig(Strict):
    """MNIST-1D paper's ConvBase: 3 conv layers (kernels 5, 3, 3; stride 2; padding 1) and a linear head."""

    name: Literal["cnn1d"]
    channels: PositiveInt = 25
    activation: Activation = "relu"
    dropout_hidden: DropoutP = 0.0
    batch_norm: bool = False


class Cnn2dConfig(Strict):
    """Small CNN for 8x8 digits: conv blocks with the given channels, then a linear head."""

    name: Literal["cnn2d"]
    channels: list[PositiveInt] = Field(default_factory=lambda: [16, 32])
    activation: Activation = "relu"
    dropout_hidden: DropoutP = 0.0
    batch_norm: bool = False


class GruConfig(Strict):
    """GRU over the feature axis (a sequence of scalars), classifying from the last hidden state."""

    name: Literal["gru"]
    hidden_size: PositiveInt = 6
    num_layers: PositiveInt = 1
    bidirectional: bool = True


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
