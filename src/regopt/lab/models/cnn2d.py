"""A small convolutional network for images such as the 1x8x8 digits."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from regopt.lab.config import Cnn2dConfig
from regopt.lab.models.base import ModelError, make_activation


def build_cnn2d(cfg: Cnn2dConfig, input_shape: tuple[int, ...], output_dim: int) -> nn.Sequential:
    """``(conv -> [bn] -> act -> [pool]) x len(channels) -> flatten -> [dropout] -> head``.

    Each block is ``Conv2d(c_in, c, 3, padding=1)`` (same size), then ``BatchNorm2d`` if ``batch_norm``, the
    activation, and ``MaxPool2d(2)`` while both spatial sizes are still >= 2. On 8x8 digits with the default
    ``channels = [16, 32]`` the map shrinks 8 -> 4 -> 2 and the head sees 32 * 2 * 2 = 128 features. Children
    are named ``conv1``, ``bn1``, ``act1``, ``pool1``, ..., ``flatten``, ``dropout``, ``head``.

    Args:
        cfg: ``channels`` (output channels of each block), ``activation``, ``batch_norm``,
            ``dropout_hidden`` (dropout before the head; 0 = no layer).
        input_shape: ``(channels, height, width)``.
        output_dim: number of outputs.

    Raises:
        ModelError: when ``input_shape`` is not an image shape; the message says how to get images for each
            kind of data (digits: ``data.image = true``; your own data: an ``.npz`` with ``x`` of shape
            ``(n, channels, height, width)``; 1-D signals such as mnist1d: model ``cnn1d``).

    Example:
        >>> model = build_cnn2d(Cnn2dConfig(name="cnn2d"), (1, 8, 8), 10)
        >>> model.head
        Linear(in_features=128, out_features=10, bias=True)
    """
    if len(input_shape) != 3:
        raise ModelError(
            f"model cnn2d needs image input of shape (channels, height, width), got {input_shape}; "
            "for digits set data.image = true; for your own data save x as (n, channels, height, width) "
            "in an .npz (a csv is always flat); for 1-D signals such as mnist1d use model cnn1d"
        )
    channels_in, height, width = input_shape
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    for i, channels in enumerate(cfg.channels, start=1):
        layers[f"conv{i}"] = nn.Conv2d(channels_in, channels, kernel_size=3, padding=1)
        if cfg.batch_norm:
            layers[f"bn{i}"] = nn.BatchNorm2d(channels)
        layers[f"act{i}"] = make_activation(cfg.activation)
        if min(height, width) >= 2:
            layers[f"pool{i}"] = nn.MaxPool2d(2)
            height, width = height // 2, width // 2
        channels_in = channels
    layers["flatten"] = nn.Flatten()
    if cfg.dropout_hidden > 0:
        layers["dropout"] = nn.Dropout(cfg.dropout_hidden)
    layers["head"] = nn.Linear(channels_in * height * width, output_dim)
    return nn.Sequential(layers)
