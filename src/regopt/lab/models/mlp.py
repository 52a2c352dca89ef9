"""Multilayer perceptron as one flat ``nn.Sequential`` of standard torch modules."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from regopt.lab.config import MlpConfig
from regopt.lab.models.base import flat_size, make_activation


def build_mlp(cfg: MlpConfig, input_shape: tuple[int, ...], output_dim: int) -> nn.Sequential:
    """``flatten -> [dropout] -> (fc -> [bn] -> act -> [dropout]) x len(widths) -> head``.

    Children are named so that hidden layers stay addressable (for noise layers, hooks and parameter
    selectors): ``flatten``, ``dropout_input``, then ``fc1``, ``bn1``, ``act1``, ``dropout1``, ``fc2``, ...,
    and ``head``. Optional children (dropout when its probability is 0, batch norm when off) are left out.

    Args:
        cfg: ``widths`` (hidden sizes), ``activation``, ``dropout_input`` and ``dropout_hidden``
            (probabilities of dropping a unit, 0 = no layer), ``batch_norm`` (``BatchNorm1d`` after each
            hidden ``Linear``, before the activation; Ioffe & Szegedy 2015), ``share_hidden`` (consecutive
            hidden-to-hidden layers of equal width, ``fc2`` on, reuse one ``Linear``: parameter sharing,
            sec. 7.9; the first layer ``fc1`` reads the input and is never shared, even when the input
            width equals the hidden width).
        input_shape: shape of one example; it is flattened.
        output_dim: number of logits (classification) or targets (regression).

    Example:
        >>> model = build_mlp(MlpConfig(name="mlp", widths=[64], dropout_hidden=0.5), (40,), 10)
        >>> [name for name, _ in model.named_children()]
        ['flatten', 'fc1', 'act1', 'dropout1', 'head']

    References:
        Srivastava et al. (2014), dropout; Goodfellow, Bengio & Courville (2016), sec. 7.12.
    """
    layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
    if cfg.dropout_input > 0:
        layers["dropout_input"] = nn.Dropout(cfg.dropout_input)
    width_in = flat_size(input_shape)
    shared: nn.Linear | None = None  # the last hidden-to-hidden Linear (fc2 on); fc1 is never shared
    for i, width in enumerate(cfg.widths, start=1):
        if cfg.share_hidden and shared is not None and shared.in_features == width_in == width:
            layers[f"fc{i}"] = shared  # parameter sharing: the same module, so the same parameters
        else:
            layers[f"fc{i}"] = linear = nn.Linear(width_in, width)
            if i > 1:  # the first layer reads the input, not a hidden layer, even when the widths agree
                shared = linear
        if cfg.batch_norm:
            layers[f"bn{i}"] = nn.BatchNorm1d(width)
        layers[f"act{i}"] = make_activation(cfg.activation)
        if cfg.dropout_hidden > 0:
            layers[f"dropout{i}"] = nn.Dropout(cfg.dropout_hidden)
        width_in = width
    layers["head"] = nn.Linear(width_in, output_dim)
    return nn.Sequential(layers)
