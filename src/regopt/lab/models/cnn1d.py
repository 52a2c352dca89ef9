"""The MNIST-1D paper's convolutional baseline (``ConvBase``, Greydanus 2020) for any sequence length."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from regopt.lab.config import Cnn1dConfig
from regopt.lab.models.base import ModelError, make_activation, sequence_shape

_CONVS = ((5, 2, 1), (3, 2, 1), (3, 2, 1))
"""(kernel, stride, padding) of the three conv layers of ConvBase."""


class ToChannels(nn.Module):
    """Reshape ``(n, L)`` or ``(n, L, F)`` sequences to channels-first ``(n, F, L)`` for ``nn.Conv1d``."""

    def __init__(self, length: int, features: int) -> None:
        super().__init__()
        self.length = length
        self.features = features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], self.length, self.features).transpose(1, 2)

    def extra_repr(self) -> str:
        return f"length={self.length}, features={self.features}"


def conv_length(length: int, kernel: int, stride: int, padding: int) -> int:
    """Output length of ``nn.Conv1d`` (dilation 1): ``floor((L + 2 p - k) / s) + 1``."""
    return (length + 2 * padding - kernel) // stride + 1


def build_cnn1d(cfg: Cnn1dConfig, input_shape: tuple[int, ...], output_dim: int) -> nn.Sequential:
    """ConvBase: three strided convolutions and a linear head, as one flat ``nn.Sequential``.

    ``to_channels -> (conv -> [bn] -> act) x 3 -> flatten -> [dropout] -> head``, with convolutions
    ``Conv1d(F, C, 5, stride=2, padding=1)``, ``Conv1d(C, C, 3, 2, 1)``, ``Conv1d(C, C, 3, 2, 1)`` and
    ``head = Linear(C * L_out, output_dim)``. A length-40 input shrinks 40 -> 19 -> 10 -> 5, so for C = 25 the
    head sees 125 features and the model has 5,210 parameters, as in the paper.

    Args:
        cfg: ``channels`` (C), ``activation``, ``batch_norm`` (``BatchNorm1d`` after each conv, before the
            activation), ``dropout_hidden`` (dropout before the head; 0 = no layer).
        input_shape: ``(L,)`` for L scalars (MNIST-1D's 40 features) or ``(L, F)`` for L F-vectors
            (``as_sequence``: ``(40, 1)``); any L >= 3.
        output_dim: number of outputs.

    Example:
        >>> from regopt.lab.models.base import count_parameters
        >>> count_parameters(build_cnn1d(Cnn1dConfig(name="cnn1d"), (40,), 10))
        5210

    References:
        Greydanus (2020), "Scaling down deep learning", github.com/greydanus/mnist1d (``ConvBase``).
    """
    length, features = sequence_shape("cnn1d", input_shape)
    layers: OrderedDict[str, nn.Module] = OrderedDict(to_channels=ToChannels(length, features))
    channels_in, length_out = features, length
    for i, (kernel, stride, padding) in enumerate(_CONVS, start=1):
        length_out = conv_length(length_out, kernel, stride, padding)
        if length_out < 1:
            raise ModelError(f"model cnn1d needs sequences of length >= 3, got input shape {input_shape}")
        layers[f"conv{i}"] = nn.Conv1d(channels_in, cfg.channels, kernel, stride=stride, padding=padding)
        if cfg.batch_norm:
            layers[f"bn{i}"] = nn.BatchNorm1d(cfg.channels)
        layers[f"act{i}"] = make_activation(cfg.activation)
        channels_in = cfg.channels
    layers["flatten"] = nn.Flatten()
    if cfg.dropout_hidden > 0:
        layers["dropout"] = nn.Dropout(cfg.dropout_hidden)
    layers["head"] = nn.Linear(cfg.channels * length_out, output_dim)
    return nn.Sequential(layers)
