"""Which parameters a regularizer acts on: by default the weights, not biases or normalization parameters."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from torch import nn

from regopt.optim.param_groups import NORM_TYPES

Include = Literal["weights", "all"]


@dataclass(frozen=True)
class Selector:
    """A reusable choice of parameters: ``Selector(...)(model)`` lists ``(qualified name, parameter)`` pairs.

    With ``include="weights"`` (the default) a parameter is selected when it has at least two dimensions and
    its module is not a normalization layer (:data:`regopt.optim.param_groups.NORM_TYPES`): the weight
    matrices and convolution kernels that norm penalties shrink, never biases or the scale/shift of
    BatchNorm/LayerNorm (Goodfellow et al. 2016, sec. 7.1: biases need little data to fit and shrinking them
    does not reduce capacity). ``include="all"`` selects every trainable parameter.

    Parameters with ``requires_grad=False`` (a frozen backbone) are never selected, and a parameter shared
    between modules is listed once, under the first name that reaches it.

    Args:
        include: ``"weights"`` (default) or ``"all"``.
        module_types: keep only parameters owned directly by modules of these types (``None``: any module).
        name_pattern: keep only parameters whose qualified name matches this regex (``re.search``).

    Example::

        >>> model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
        >>> [name for name, _ in Selector()(model)]
        ['0.weight', '2.weight']
        >>> [name for name, _ in Selector(include="all", name_pattern=r"^2\\.")(model)]
        ['2.weight', '2.bias']
    """

    include: Include = "weights"
    module_types: tuple[type[nn.Module], ...] | None = None
    name_pattern: str | None = None

    def __post_init__(self) -> None:
        if self.include not in ("weights", "all"):
            raise ValueError(f"include must be 'weights' or 'all', got {self.include!r}")
        if self.module_types is not None:
            types = self.module_types
            if not isinstance(types, tuple) or not types or not all(isinstance(t, type) for t in types):
                raise ValueError(f"module_types must be a non-empty tuple of classes or None, got {types!r}")
        if self.name_pattern is not None:
            try:
                re.compile(self.name_pattern)
            except (re.error, TypeError) as error:
                raise ValueError(f"name_pattern must be a valid regex, got {self.name_pattern!r}: {error}") from None

    def __call__(self, model: nn.Module) -> list[tuple[str, nn.Parameter]]:
        pattern = re.compile(self.name_pattern) if self.name_pattern is not None else None
        selected: list[tuple[str, nn.Parameter]] = []
        seen: set[int] = set()
        for module_name, module in model.named_modules():
            if self.module_types is not None and not isinstance(module, self.module_types):
                continue
            is_norm = isinstance(module, NORM_TYPES)
            for param_name, p in module.named_parameters(recurse=False):
                if id(p) in seen or not p.requires_grad:
                    continue
                if self.include == "weights" and (is_norm or p.dim() < 2 or param_name.endswith("bias")):
                    continue
                name = f"{module_name}.{param_name}" if module_name else param_name
                if pattern is not None and pattern.search(name) is None:
                    continue
                seen.add(id(p))
                selected.append((name, p))
        return selected


def select_parameters(
    model: nn.Module,
    *,
    include: Include = "weights",
    module_types: tuple[type[nn.Module], ...] | None = None,
    name_pattern: str | None = None,
) -> list[tuple[str, nn.Parameter]]:
    """The ``(qualified name, parameter)`` pairs of ``model`` chosen by a :class:`Selector` with these options.

    Example::

        >>> model = nn.Sequential(nn.Conv1d(1, 4, 3), nn.LayerNorm(4), nn.Linear(4, 2))
        >>> [name for name, _ in select_parameters(model, module_types=(nn.Linear,))]
        ['2.weight']
    """
    return Selector(include=include, module_types=module_types, name_pattern=name_pattern)(model)
