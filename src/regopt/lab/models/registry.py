"""Build any model of the config's ``[model]`` section by name."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from torch import nn

from regopt.lab.config import ModelConfig
from regopt.lab.models.base import ModelError
from regopt.lab.models.cnn1d import build_cnn1d
from regopt.lab.models.cnn2d import build_cnn2d
from regopt.lab.models.custom import build_custom
from regopt.lab.models.gru import build_gru
from regopt.lab.models.linear import build_linear
from regopt.lab.models.mlp import build_mlp

MODELS: dict[str, str] = {
    "linear": "one affine layer on the flattened input (linear regression)",
    "logistic": "one affine layer on the flattened input (logistic / softmax regression)",
    "mlp": "multilayer perceptron with optional dropout and batch norm",
    "cnn1d": "MNIST-1D paper's ConvBase: 3 strided 1-D convolutions and a linear head",
    "cnn2d": "small 2-D CNN for images (digits with data.image = true, npz x of shape (n, C, H, W)): conv blocks",
    "gru": "MNIST-1D paper's GRU over the features as a sequence, classifying from the final state",
    "custom": "your own model: target = 'package.module:function' returning an nn.Module",
}
"""Model name -> one-line description (``regopt list``)."""

_BUILDERS: dict[str, Callable[[Any, tuple[int, ...], int], nn.Module]] = {
    "linear": build_linear,
    "logistic": build_linear,
    "mlp": build_mlp,
    "cnn1d": build_cnn1d,
    "cnn2d": build_cnn2d,
    "gru": build_gru,
    "custom": build_custom,
}


def build_model(cfg: ModelConfig, input_shape: tuple[int, ...], output_dim: int) -> nn.Module:
    """Build the model ``cfg`` describes for examples of shape ``input_shape`` and ``output_dim`` outputs.

    The model maps a float32 batch of shape ``(n, *input_shape)`` to ``(n, output_dim)`` (logits for
    classification, predictions for regression). Parameters get torch's default initialization, so the
    result is determined by the RNG state: seed with ``torch.manual_seed`` first for a reproducible model.

    Args:
        cfg: a validated model section (:class:`~regopt.lab.config.MlpConfig`, ...).
        input_shape: shape of one example, e.g. ``(40,)``, ``(40, 1)`` or ``(1, 8, 8)``.
        output_dim: number of classes or regression targets.

    Raises:
        ModelError: with one line naming what is wrong (an unknown name, shapes the model cannot take, an
            unusable custom target).

    Example:
        >>> import torch
        >>> from regopt.lab.config import MlpConfig
        >>> _ = torch.manual_seed(0)
        >>> model = build_model(MlpConfig(name="mlp", widths=[32]), (40,), 10)
        >>> model(torch.zeros(5, 40)).shape
        torch.Size([5, 10])
    """
    name = getattr(cfg, "name", None)
    builder = _BUILDERS.get(name) if isinstance(name, str) else None
    if builder is None:
        raise ModelError(f"model.name: unknown model {name!r}; expected one of {sorted(MODELS)}")
    try:
        shape = tuple(operator.index(d) for d in input_shape)
        output_dim = operator.index(output_dim)
    except TypeError:
        raise ModelError(
            f"model {name}: input_shape and output_dim must be integers, got {input_shape!r}, {output_dim!r}"
        ) from None
    if not shape or min(shape) < 1:
        raise ModelError(f"model {name}: input shape must be non-empty positive sizes, got {shape}")
    if output_dim < 1:
        raise ModelError(f"model {name}: output_dim must be positive, got {output_dim}")
    return builder(cfg, shape, output_dim)
