"""A fast path for bagging plain MLPs: K members run as one stacked network of batched matrix products.

When the member model is an ``nn.Linear`` or an ``nn.Sequential`` (nested ones included) of ``nn.Linear``,
elementwise activations, ``nn.Dropout``, ``nn.Flatten`` and ``nn.Identity``, the K members need no
``vmap(functional_call(...))``: with the stacked weights ``W`` of shape ``(K, out, in)`` and biases ``b`` of
shape ``(K, out)``, layer ``h <- W h + b`` for all members at once is one ``torch.baddbmm``, and ordinary
autograd differentiates it. That saves the per-call pytree handling and parameter swapping of
``functional_call`` and vmap's batching rules (about 0.1 ms per forward pass, as much again in backward),
which dominate a training step of small models.

The activations are kept feature-major, ``(K, features, B)``, from the first ``Linear`` on: then every matrix
product, forward and backward, reads and writes contiguous operands, and the weight gradients come out of
``bmm`` already in the parameters' ``(K, out, in)`` layout, so autograd accumulates them without a copy. The
``(K, B, C)`` output is a transposed view. The arithmetic is the members' own, so the results equal K
separate models to rounding (the tests check K sequential trainings in float64).

Anything else (BatchNorm, convolutions, recurrent layers, custom modules, hooks, inputs that reach the first
``Linear`` with more than one batch axis) takes the general vmap path.

References:
    Horace He & Richard Zou, "functorch: JAX-like composable function transforms for PyTorch" (2021), the
    model-ensembling tutorial: ``torch.func.stack_module_state`` + ``vmap``; this module writes the same
    computation by hand for the case where it is a batched matrix product.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

ELEMENTWISE: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
    nn.Tanh, nn.Sigmoid, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Softplus, nn.Softsign, nn.Tanhshrink,
    nn.LogSigmoid, nn.Identity, nn.Dropout,
)  # fmt: skip
"""Parameter-free layers that act on each entry alone (exact types; subclasses may do anything), so they apply
to the stacked ``(K, ...)`` activations as they are. ``nn.Dropout`` draws an independent mask per entry, hence
per member. (``nn.PReLU`` is not here: it has a parameter of its own.)"""


@dataclass(frozen=True)
class Linear:
    """``h <- W h + b`` with ``W = params[weight]`` and ``b = params[bias]`` (``None``: no bias)."""

    weight: int
    bias: int | None


@dataclass(frozen=True)
class Flatten:
    """``nn.Flatten(start, end)`` of one member, on the stacked tensor (one leading axis more)."""

    start: int
    end: int


Layer = Linear | Flatten | nn.Module


def _leaves(module: nn.Module) -> list[nn.Module] | None:
    """The layers of ``module`` in order, nested ``nn.Sequential`` unrolled; ``None`` if any module has hooks."""
    if module._forward_hooks or module._forward_pre_hooks or module._backward_hooks or module._backward_pre_hooks:
        return None
    if type(module) is not nn.Sequential:
        return [module]
    layers: list[nn.Module] = []
    for child in module:
        inner = _leaves(child)
        if inner is None:
            return None
        layers += inner
    return layers


class StackedPlan:
    """The member model as a list of stackable layers, or no plan (:meth:`build` returns ``None``).

    Call it as ``plan(x, params)`` with ``x`` of shape ``(K, B, ...)`` (member i's inputs in ``x[i]``) and the
    stacked parameters in the member model's ``named_parameters()`` order; it returns the ``(K, B, C)``
    outputs, or ``None`` where the input does not fit (then use vmap).
    """

    SERVES = (
        "an nn.Linear or an nn.Sequential of nn.Linear, elementwise activations, nn.Dropout, nn.Flatten and "
        "nn.Identity, without hooks or buffers"
    )
    """What the plan serves, for error messages."""

    def __init__(self, layers: list[Layer]) -> None:
        self.layers = layers

    @classmethod
    def build(cls, base: nn.Module, param_names: Sequence[str], buffer_names: Sequence[str]) -> StackedPlan | None:
        """A plan for ``base`` (the member architecture, any device), or ``None`` when it is not stackable."""
        layers = _leaves(base)
        if layers is None or buffer_names:
            return None
        index = {id(p): i for i, (_, p) in enumerate(base.named_parameters())}
        if [name for name, _ in base.named_parameters()] != list(param_names):
            return None
        plan: list[Layer] = []
        used: set[int] = set()
        for layer in layers:
            if type(layer) is nn.Linear:
                weight = index[id(layer.weight)]
                bias = None if layer.bias is None else index[id(layer.bias)]
                used |= {weight} if bias is None else {weight, bias}
                plan.append(Linear(weight, bias))
            elif type(layer) is nn.Flatten and layer.start_dim >= 1:
                end = layer.end_dim + 1 if layer.end_dim >= 0 else layer.end_dim
                plan.append(Flatten(layer.start_dim + 1, end))
            elif type(layer) in ELEMENTWISE and not any(True for _ in layer.parameters()):
                plan.append(layer)
            else:
                return None
        if used != set(range(len(param_names))) or not any(isinstance(layer, Linear) for layer in plan):
            return None
        return cls(plan)

    def __call__(self, x: Tensor, params: Sequence[Tensor]) -> Tensor | None:
        h, feature_major = x, False
        for layer in self.layers:
            if isinstance(layer, Linear):
                if not feature_major:
                    if h.ndim != 3:  # the member's Linear would see more than one batch axis: not a bmm
                        return None
                    h, feature_major = h.mT, True  # (K, B, in) -> (K, in, B), a view
                w, b = params[layer.weight], None if layer.bias is None else params[layer.bias]
                h = torch.bmm(w, h) if b is None else torch.baddbmm(b.unsqueeze(-1), w, h)  # W h + b, all members
            elif isinstance(layer, Flatten):
                if not feature_major:  # once feature-major, a member's activations are (B, F): nothing to do
                    h = h.flatten(layer.start, layer.end)
            else:
                h = layer(h)
        return h.mT
