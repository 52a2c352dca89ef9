"""Shared pieces of the model builders: the error type, the activation table and shape checks."""

from __future__ import annotations

from torch import nn


class ModelError(ValueError):
    """A model that cannot be built; the message is one line naming what is wrong.

    Example: ``model.target: cannot import 'pkg.mod': No module named 'pkg'``.
    """


ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "identity": nn.Identity,
}
"""Activation name (as in the config's ``activation``) -> torch module class."""


def make_activation(name: str) -> nn.Module:
    """A fresh activation module for ``name`` (a key of :data:`ACTIVATIONS`).

    Raises:
        ModelError: for an unknown name.
    """
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ModelError(
            f"model.activation: unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}"
        ) from None


def flat_size(input_shape: tuple[int, ...]) -> int:
    """Number of features of one example of shape ``input_shape`` once flattened."""
    size = 1
    for dim in input_shape:
        size *= dim
    return size


def sequence_shape(model: str, input_shape: tuple[int, ...]) -> tuple[int, int]:
    """``(length, features)`` of a sequence input: ``(L,)`` is ``L`` scalars, ``(L, F)`` is ``L`` F-vectors.

    Raises:
        ModelError: when ``input_shape`` has more than two axes (an image, say).
    """
    if len(input_shape) == 1:
        return input_shape[0], 1
    if len(input_shape) == 2:
        return input_shape[0], input_shape[1]
    raise ModelError(f"model {model} needs sequence input of shape (length,) or (length, features), got {input_shape}")


def count_parameters(model: nn.Module) -> int:
    """Number of scalar parameters of ``model`` (shared tensors counted once, frozen ones included).

    Example:
        >>> count_parameters(nn.Linear(40, 10))
        410
    """
    return sum(p.numel() for p in model.parameters())
