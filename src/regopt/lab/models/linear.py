"""Linear and logistic regression: flatten, then one affine layer."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from regopt.lab.config import LinearModelConfig
from regopt.lab.models.base import flat_size


def build_linear(cfg: LinearModelConfig, input_shape: tuple[int, ...], output_dim: int) -> nn.Sequential:
    """``flatten -> head`` with ``head = nn.Linear(prod(input_shape), output_dim)``.

    The same network serves linear regression (``name = "linear"``, squared loss) and logistic (softmax)
    regression (``name = "logistic"``, cross-entropy on the logits); the loss is the trainer's business.

    Example:
        >>> import torch
        >>> model = build_linear(LinearModelConfig(name="logistic"), (40,), 10)
        >>> model(torch.zeros(3, 40)).shape
        torch.Size([3, 10])
    """
    del cfg  # nothing to configure
    return nn.Sequential(OrderedDict(flatten=nn.Flatten(), head=nn.Linear(flat_size(input_shape), output_dim)))
