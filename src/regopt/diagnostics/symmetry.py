"""Local minima and model identifiability (Goodfellow et al. 2016, sec. 8.2.2): weight-space symmetry.

A network is not *identifiable*: many parameter settings compute the same function, so every minimum comes
with a whole family of equivalent minima of exactly the same cost. Two such symmetries, as the chapter states them:

- **Permuting hidden units.** Reordering the units of a hidden layer (rows of its weight matrix and bias, and the
  matching columns of the next layer's weights) leaves the function unchanged: with ``m`` layers of ``n`` units
  there are ``n!^m`` equivalent arrangements (:func:`count_equivalent_arrangements`, :func:`permute_hidden_units`).
- **Rescaling a unit.** For a positively homogeneous activation (``relu(a x) = a relu(x)`` for ``a > 0``),
  scaling a unit's incoming weights and bias by ``alpha`` and its outgoing weights by ``1 / alpha`` leaves the
  function unchanged (:func:`rescale_relu_unit`). For tanh or sigmoid it does not.

These minima are equivalent in cost, so this kind of non-convexity is harmless; :func:`check_symmetries`
verifies both on a model numerically.

Models are ``nn.Sequential`` stacks of ``nn.Linear`` layers; a hidden layer is a ``Linear`` followed (after any
elementwise modules) by another ``Linear``. Per-unit modules in between (``BatchNorm1d``, ``LayerNorm``, a
per-channel ``PReLU``) are permuted along with the units.

Example::

    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    twin = permute_hidden_units(model, 0, torch.randperm(8))   # same function, different parameters
    check_symmetries(model, x)   # {'permutation': ~1e-7, 'rescaling': ~1e-7, ...}

References:
    Goodfellow, Bengio & Courville (2016), *Deep Learning*, sec. 8.2.2.
    Dinh, Pascanu, Bengio & Bengio (2017), "Sharp Minima Can Generalize For Deep Nets" (rescaling symmetry).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any, cast

import torch
from torch import Tensor, nn

from regopt._checks import check_alpha, is_int

POSITIVELY_HOMOGENEOUS: tuple[type[nn.Module], ...] = (nn.ReLU, nn.LeakyReLU, nn.PReLU, nn.Identity, nn.Dropout)
"""Modules ``f`` with ``f(a x) = a f(x)`` for every ``a > 0``, through which :func:`rescale_relu_unit` is exact."""

_PER_UNIT: tuple[type[nn.Module], ...] = (nn.BatchNorm1d, nn.LayerNorm, nn.PReLU)


def count_equivalent_arrangements(widths: Sequence[int]) -> int:
    """``prod_i n_i!``: the number of hidden-unit orderings of layers of widths ``n_i`` that compute the same
    function (the chapter's ``n!^m`` for ``m`` layers of ``n`` units). ``[3, 3] -> 36``."""
    total = 1
    for width in widths:
        if not is_int(width) or width < 0:
            raise ValueError(f"widths must be integers >= 0, got {width!r}")
        total *= math.factorial(width)
    return total


def hidden_layer_indices(model: nn.Sequential) -> list[int]:
    """Indices in ``model`` of the ``nn.Linear`` layers whose outputs are hidden units (every Linear but the last)."""
    linears = [i for i, module in enumerate(model) if isinstance(module, nn.Linear)]
    return linears[:-1]


def permute_hidden_units(model: nn.Sequential, layer_index: int, permutation: Sequence[int] | Tensor) -> nn.Sequential:
    """A deep copy of ``model`` whose hidden units after ``model[layer_index]`` are reordered.

    New unit ``j`` is old unit ``permutation[j]``: rows of that ``Linear``'s weight and its bias, per-unit
    parameters and buffers of a ``BatchNorm1d``/``LayerNorm``/``PReLU`` in between, and the matching columns of
    the next ``Linear``'s weight. The copy computes the same function; ``model`` is not modified.

    Args:
        model: an ``nn.Sequential``; ``model[layer_index]`` must be an ``nn.Linear`` followed by another one.
        layer_index: index of that ``Linear`` in ``model``.
        permutation: a permutation of ``range(model[layer_index].out_features)``.
    """
    first, between, nxt = _hidden_block(model, layer_index)
    width = _linear(model, first).out_features
    perm = torch.as_tensor(permutation, dtype=torch.long).flatten()
    if perm.numel() != width or not torch.equal(torch.sort(perm).values, torch.arange(width)):
        raise ValueError(f"permutation must be a permutation of range({width}), got {perm.tolist()}")
    for i in between:
        module = model[i]
        stateful = any(True for _ in module.parameters()) or any(True for _ in module.buffers())
        if stateful and not _is_per_unit(module, width):
            raise ValueError(f"cannot permute hidden units through model[{i}] ({type(module).__name__})")
    out = copy.deepcopy(model)
    with torch.no_grad():
        layer = _linear(out, first)
        layer.weight.copy_(layer.weight[perm.to(layer.weight.device)])
        bias = _bias(layer)
        if bias is not None:
            bias.copy_(bias[perm.to(bias.device)])
        for i in between:
            for tensor in [*out[i].parameters(), *out[i].buffers()]:
                if tensor.dim() == 1 and tensor.numel() == width:
                    tensor.copy_(tensor[perm.to(tensor.device)])
        following = _linear(out, nxt)
        following.weight.copy_(following.weight[:, perm.to(following.weight.device)])
    return out


def rescale_relu_unit(
    model: nn.Sequential, layer_index: int, unit: int, alpha: float, *, strict: bool = True
) -> nn.Sequential:
    """A deep copy of ``model`` with hidden unit ``unit`` of ``model[layer_index]`` rescaled by ``alpha > 0``.

    The unit's incoming weights (row ``unit`` of the weight) and bias are multiplied by ``alpha`` and its outgoing
    weights (column ``unit`` of the next ``Linear``) by ``1 / alpha``. Through a positively homogeneous activation
    (ReLU, leaky ReLU, PReLU, identity, dropout; see :data:`POSITIVELY_HOMOGENEOUS`) the function is unchanged.

    Args:
        model: an ``nn.Sequential``; ``model[layer_index]`` must be an ``nn.Linear`` followed by another one.
        layer_index: index of that ``Linear`` in ``model``.
        unit: which hidden unit (row).
        alpha: the scale, a finite number ``> 0``.
        strict: raise ``ValueError`` if a module between the two layers is not positively homogeneous (pass
            ``False`` to rescale anyway, e.g. to show that a tanh unit's function changes).
    """
    first, _, _ = _hidden_block(model, layer_index)
    width = _linear(model, first).out_features
    if not is_int(unit) or not 0 <= unit < width:
        raise ValueError(f"unit must be an integer in [0, {width}), got {unit!r}")
    check_alpha(alpha, positive=True)
    scales = torch.ones(width, dtype=torch.float64)
    scales[unit] = alpha
    return _rescale_units(model, layer_index, scales, strict=strict)


def check_symmetries(model: nn.Sequential, x: Tensor, *, seed: int = 0) -> dict[str, Any]:
    """Measure both symmetries on ``model`` at inputs ``x``: the largest absolute output change after

    - ``"permutation"``: a random permutation of every hidden layer at once;
    - ``"rescaling"``: a random positive rescaling of every hidden unit (``alpha`` log-uniform in ``[1/2, 2]``),
      exact only if ``"positively_homogeneous"`` is true.

    Both are at rounding level (about ``1e-6`` of the output in float32) for a ReLU network. Also returns
    ``"hidden_layers"`` (indices of the hidden ``Linear`` layers), ``"widths"``, ``"arrangements"``
    (:func:`count_equivalent_arrangements`) and ``"output_scale"`` (the largest ``|model(x)|``). Outputs are
    computed in eval mode on copies; ``model`` is not modified.
    """
    base = copy.deepcopy(model).eval()
    hidden = hidden_layer_indices(base)
    widths = [_linear(base, i).out_features for i in hidden]
    generator = torch.Generator().manual_seed(seed)
    permuted, rescaled = base, base
    homogeneous = True
    for index, width in zip(hidden, widths, strict=True):
        permuted = permute_hidden_units(permuted, index, torch.randperm(width, generator=generator))
        log_alpha = (torch.rand(width, generator=generator, dtype=torch.float64) * 2 - 1) * math.log(2.0)
        rescaled = _rescale_units(rescaled, index, log_alpha.exp(), strict=False)
        homogeneous = homogeneous and all(
            isinstance(base[i], POSITIVELY_HOMOGENEOUS) for i in _hidden_block(base, index)[1]
        )
    with torch.no_grad():
        reference = base(x)
        return {
            "permutation": (permuted(x) - reference).abs().max().item() if hidden else 0.0,
            "rescaling": (rescaled(x) - reference).abs().max().item() if hidden else 0.0,
            "positively_homogeneous": homogeneous,
            "hidden_layers": hidden,
            "widths": widths,
            "arrangements": count_equivalent_arrangements(widths),
            "output_scale": reference.abs().max().item(),
        }


def _rescale_units(model: nn.Sequential, layer_index: int, scales: Tensor, *, strict: bool) -> nn.Sequential:
    """Copy of ``model`` with unit ``k`` of ``model[layer_index]`` scaled by ``scales[k]`` in, ``1/scales[k]`` out."""
    first, between, nxt = _hidden_block(model, layer_index)
    if strict:
        for i in between:
            if not isinstance(model[i], POSITIVELY_HOMOGENEOUS):
                raise ValueError(
                    f"model[{i}] ({type(model[i]).__name__}) is not positively homogeneous, so rescaling a unit "
                    "changes the function; pass strict=False to rescale anyway"
                )
    out = copy.deepcopy(model)
    with torch.no_grad():
        layer, following = _linear(out, first), _linear(out, nxt)
        layer.weight.mul_(scales.to(layer.weight).unsqueeze(1))
        bias = _bias(layer)
        if bias is not None:
            bias.mul_(scales.to(bias))
        following.weight.div_(scales.to(following.weight).unsqueeze(0))
    return out


def _hidden_block(model: nn.Sequential, layer_index: int) -> tuple[int, list[int], int]:
    """``(layer_index, indices of the modules in between, index of the next Linear)``, validated."""
    if not isinstance(model, nn.Sequential):
        raise ValueError(f"model must be an nn.Sequential, got {type(model).__name__}")
    if not is_int(layer_index) or not 0 <= layer_index < len(model):
        raise ValueError(f"layer_index must be an index into the model (0..{len(model) - 1}), got {layer_index!r}")
    if not isinstance(model[layer_index], nn.Linear):
        raise ValueError(f"model[{layer_index}] must be nn.Linear, got {type(model[layer_index]).__name__}")
    for nxt in range(layer_index + 1, len(model)):
        if isinstance(model[nxt], nn.Linear):
            if model[nxt].in_features != model[layer_index].out_features:
                raise ValueError(
                    f"model[{nxt}].in_features ({model[nxt].in_features}) != model[{layer_index}].out_features "
                    f"({model[layer_index].out_features})"
                )
            return layer_index, list(range(layer_index + 1, nxt)), nxt
    raise ValueError(f"model[{layer_index}] is the last Linear layer: its outputs are not hidden units")


def _linear(model: nn.Sequential, index: int) -> nn.Linear:
    """``model[index]``, typed as the ``nn.Linear`` that :func:`_hidden_block` or :func:`hidden_layer_indices`
    found there (no runtime check)."""
    return cast(nn.Linear, model[index])


def _bias(layer: nn.Linear) -> Tensor | None:
    """``layer.bias`` (``None`` for ``bias=False``), typed: torch leaves the attribute unannotated."""
    return cast("Tensor | None", layer.bias)


def _is_per_unit(module: nn.Module, width: int) -> bool:
    """Whether every parameter/buffer of ``module`` is a per-unit vector or a single shared value (BatchNorm's
    step counter, a single-parameter PReLU)."""
    if not isinstance(module, _PER_UNIT):
        return False
    return all(
        t.numel() == 1 or (t.dim() == 1 and t.numel() == width) for t in [*module.parameters(), *module.buffers()]
    )
