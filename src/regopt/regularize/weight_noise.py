"""Noise on the weights (Goodfellow et al. 2016, sec. 7.5; Graves 2011): ``W -> W + std * N(0, 1)`` in training.

:func:`add_weight_noise` registers :class:`WeightNoise` as a ``torch.nn.utils.parametrize`` parametrization on
the selected weights (every ``Linear`` and convolution weight by default), active in training mode only;
:func:`remove_weight_noise` takes it off again, leaving any other parametrization in place.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import cast

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from regopt._checks import check_real
from regopt.regularize.noise import gaussian_like

WEIGHT_NOISE_MODULES: tuple[type[nn.Module], ...] = (nn.Linear, nn.modules.conv._ConvNd)
"""Modules whose weights (``dim >= 2``) :func:`add_weight_noise` perturbs by default."""

ParameterSelector = Callable[[nn.Module], list[tuple[str, nn.Parameter]]]


class WeightNoise(nn.Module):
    """Parametrization ``W -> W + std * N(0, 1)`` in training mode, ``W`` in eval mode (see
    :func:`add_weight_noise`)."""

    def __init__(self, std: float, *, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.std = check_real("std", std)
        self.generator = generator

    def forward(self, weight: Tensor) -> Tensor:
        if not self.training or self.std == 0:
            return weight
        return weight + self.std * gaussian_like(weight, self.generator)

    def extra_repr(self) -> str:
        return f"std={self.std}"


_PARAMETRIZED = re.compile(r"^(?:(.*)\.)?parametrizations\.([^.]+)\.original$")


def _owner(model: nn.Module, qualified: str) -> tuple[nn.Module, str]:
    """The module owning the tensor behind ``qualified`` and the tensor's attribute name on it."""
    match = _PARAMETRIZED.match(qualified)
    if match is not None:
        return model.get_submodule(match.group(1) or ""), match.group(2)
    module_name, _, tensor_name = qualified.rpartition(".")
    return model.get_submodule(module_name), tensor_name


def _has_weight_noise(module: nn.Module, tensor_name: str) -> bool:
    return parametrize.is_parametrized(module, tensor_name) and any(
        isinstance(p, WeightNoise) for p in _chain(module, tensor_name)
    )


def _parametrizations(module: nn.Module) -> nn.ModuleDict:
    """``module.parametrizations`` of a parametrized module (a ``ModuleDict`` of ``ParametrizationList``), typed."""
    return cast(nn.ModuleDict, module.parametrizations)


def _chain(module: nn.Module, tensor_name: str) -> parametrize.ParametrizationList:
    """``module.parametrizations[tensor_name]``, typed."""
    return cast(parametrize.ParametrizationList, _parametrizations(module)[tensor_name])


def default_weight_selector(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The ``weight`` (``dim >= 2``, trainable) of every ``Linear`` and convolution module, including weights
    that already carry another parametrization (weight norm, orthogonality)."""
    selected: list[tuple[str, nn.Parameter]] = []
    seen: set[int] = set()
    for name, module in model.named_modules():
        if not isinstance(module, WEIGHT_NOISE_MODULES):
            continue
        if parametrize.is_parametrized(module, "weight"):
            weight: Tensor | None = _chain(module, "weight").original
        else:
            weight = module._parameters.get("weight")
        if isinstance(weight, nn.Parameter) and weight.dim() >= 2 and weight.requires_grad and id(weight) not in seen:
            seen.add(id(weight))
            selected.append((f"{name}.weight" if name else "weight", weight))
    return selected


def add_weight_noise(
    model: nn.Module,
    std: float,
    selector: ParameterSelector | None = None,
    *,
    generator: torch.Generator | None = None,
) -> nn.Module:
    """Perturb the selected weights with Gaussian noise in training mode (Graves 2011), in place.

    Registers on each selected weight a :class:`WeightNoise` parametrization (``torch.nn.utils.parametrize``):
    ``module.weight`` then reads ``W + std * N(0, 1)`` while the model is in training mode and exactly ``W``
    in eval mode. Gradients flow to the clean weight, which moves to
    ``module.parametrizations.weight.original`` (the same ``Parameter`` object, so an optimizer built before
    or after this call updates it). Noise on the weights of a model is a stochastic approximation of Bayesian
    inference over them and pushes toward flat minima (sec. 7.5); it is used mostly for recurrent networks.

    Args:
        model: any ``nn.Module``; modified in place and returned.
        std: standard deviation of the weight noise (>= 0).
        selector: ``model -> [(qualified name, parameter)]`` choosing the weights, e.g. a
            :class:`regopt.regularize.selection.Selector` (default: :func:`default_weight_selector`, the
            weights of ``Linear`` and convolution modules).
        generator: a ``torch.Generator`` to draw from (default: torch's global RNG).

    Example::

        >>> net = add_weight_noise(nn.Sequential(nn.Linear(3, 2)), 0.1)
        >>> net.eval()(torch.ones(1, 3)).shape
        torch.Size([1, 2])
        >>> net = remove_weight_noise(net)

    Note:
        Parametrized weights are recomputed on every access to ``module.weight`` (every forward, and each
        read within one forward draws fresh noise); wrap a block in ``parametrize.cached()`` to draw once.
        While the noise is registered the state dict holds ``...parametrizations.weight.original`` instead of
        ``...weight``: call :func:`remove_weight_noise` before saving a plain model. A weight shared by several
        modules is perturbed only where the selector names it.

    References:
        Graves (2011), practical variational inference for neural networks; Goodfellow, Bengio & Courville
        (2016), sec. 7.5.
    """
    std = check_real("std", std)
    chosen = (selector or default_weight_selector)(model)
    targets = [_owner(model, name) for name, _ in chosen]
    for module, tensor_name in targets:
        if _has_weight_noise(module, tensor_name):
            raise ValueError(f"{type(module).__name__}.{tensor_name} already has weight noise")
    for module, tensor_name in targets:
        parametrize.register_parametrization(module, tensor_name, WeightNoise(std, generator=generator))
    return model


def remove_weight_noise(model: nn.Module) -> nn.Module:
    """Remove every :class:`WeightNoise` from ``model`` in place, keeping the clean weights; returns ``model``.

    A weight whose only parametrizations are weight noise becomes a plain ``Parameter`` again (the same
    object, via ``parametrize.remove_parametrizations(..., leave_parametrized=False)``); other
    parametrizations (weight norm, orthogonality) are left in place.
    """
    for module in list(model.modules()):
        if not parametrize.is_parametrized(module):
            continue
        for tensor_name in list(_parametrizations(module).keys()):
            chain = _chain(module, tensor_name)
            if all(isinstance(p, WeightNoise) for p in chain):
                parametrize.remove_parametrizations(module, tensor_name, leave_parametrized=False)
            else:
                for i in reversed(range(len(chain))):
                    if isinstance(chain[i], WeightNoise):
                        del chain[i]
    return model
