"""Initialization policies over a whole model (sec. 8.4), and the scale of signals through depth.

:func:`initialize` re-draws the weight of every ``Linear`` and convolution of a model by one named policy of
``torch.nn.init`` and sets every bias by one rule. With m inputs (fan_in) and n outputs (fan_out) of a layer:

==================  ===================================================================  ==========================
policy              weights                                                              reference
==================  ===================================================================  ==========================
``xavier_uniform``  U(-gain sqrt(6 / (m + n)), +gain sqrt(6 / (m + n)))                  Glorot & Bengio (2010)
``xavier_normal``   N(0, gain^2 2 / (m + n))                                             Glorot & Bengio (2010)
``he_uniform``      U(-gain sqrt(3 / m), +gain sqrt(3 / m)), gain = sqrt(2) for ReLU     He et al. (2015)
``he_normal``       N(0, gain^2 / m), gain = sqrt(2) for ReLU                            He et al. (2015)
``lecun_normal``    N(0, gain^2 / m), gain = 1                                           LeCun et al. (1998)
``orthogonal``      gain times a random orthogonal matrix (rows or columns orthonormal)  Saxe et al. (2013)
``sparse``          a fraction ``sparsity`` of each unit's incoming weights zero, the    Martens (2010)
                    others N(0, gain^2 / k) with k the number of nonzero ones
``default``         torch's own layer default: U(-1/sqrt(m), 1/sqrt(m))                  torch ``reset_parameters``
==================  ===================================================================  ==========================

Biases (the book, sec. 8.4: "setting the biases to zero is compatible with most weight initialization schemes"):
``"zero"`` (the default); a number, e.g. 0.1 for ReLU units so that they start active and pass gradients
rather than "dead" (the book's example, with its caution that this does not suit every architecture); or
``"default"``, torch's U(-1/sqrt(m), 1/sqrt(m)). Normalization layers keep their own parameters (gamma = 1,
beta = 0).

Example::

    >>> import math
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))
    >>> model = initialize(model, "he_normal", generator=torch.Generator().manual_seed(0))
    >>> abs(model[0].weight.std().item() - math.sqrt(2 / 512)) < 1e-3  # He: std = sqrt(2 / fan_in)
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["POLICIES", "Policy", "activation_statistics", "initialize"]

Policy = Literal[
    "xavier_uniform", "xavier_normal", "he_uniform", "he_normal", "lecun_normal", "orthogonal", "sparse", "default"
]

POLICIES: dict[str, str] = {
    "xavier_uniform": "Glorot & Bengio (2010), normalized: U(+-gain sqrt(6 / (fan_in + fan_out)))",
    "xavier_normal": "Glorot & Bengio (2010): N(0, gain^2 2 / (fan_in + fan_out))",
    "he_uniform": "He et al. (2015): U(+-gain sqrt(3 / fan_in)), gain sqrt(2) for ReLU",
    "he_normal": "He et al. (2015): N(0, gain^2 / fan_in), gain sqrt(2) for ReLU",
    "lecun_normal": "LeCun et al. (1998): N(0, 1 / fan_in)",
    "orthogonal": "Saxe et al. (2013): gain times a random orthogonal matrix",
    "sparse": "Martens (2010): each unit has a few nonzero incoming weights, N(0, gain^2 / k) for the k kept",
    "default": "torch's layer default: U(+-1 / sqrt(fan_in)) (kaiming_uniform_ with a = sqrt(5))",
}
"""Policy name -> one-line description, for :func:`initialize`."""

LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
"""The layer types whose ``weight`` (and ``bias``) :func:`initialize` sets."""

BIAS_RULES = ("zero", "default")

M = TypeVar("M", bound=nn.Module)


def _fans(weight: Tensor) -> tuple[int, int]:
    return nn.init._calculate_fan_in_and_fan_out(weight)


def _init_weight(
    weight: Tensor,
    policy: str,
    gain: float | None,
    sparsity: float,
    nonlinearity: str,
    generator: torch.Generator | None,
) -> None:
    fan_in, _ = _fans(weight)
    if policy in ("xavier_uniform", "xavier_normal"):
        xavier = nn.init.xavier_uniform_ if policy == "xavier_uniform" else nn.init.xavier_normal_
        xavier(weight, gain=1.0 if gain is None else gain, generator=generator)
    elif policy in ("he_uniform", "he_normal") and gain is None:  # gain from the nonlinearity, as He et al.
        kaiming = nn.init.kaiming_uniform_ if policy == "he_uniform" else nn.init.kaiming_normal_
        kaiming(weight, mode="fan_in", nonlinearity=nonlinearity, generator=generator)  # type: ignore[arg-type]
    elif policy == "he_uniform":
        assert gain is not None  # the branch above took gain None
        bound = gain * math.sqrt(3.0 / fan_in)
        nn.init.uniform_(weight, -bound, bound, generator=generator)
    elif policy in ("he_normal", "lecun_normal"):
        std = (1.0 if gain is None else gain) / math.sqrt(fan_in)
        nn.init.normal_(weight, 0.0, std, generator=generator)
    elif policy == "orthogonal":
        nn.init.orthogonal_(weight, gain=1.0 if gain is None else gain, generator=generator)
    elif policy == "sparse":
        # Martens (2010): a fixed number of each unit's incoming weights nonzero. torch's sparse_ zeros a fraction
        # of each *column* (a unit's outgoing weights, for a Linear) and draws its mask from the global RNG even
        # when given a generator, so the mask is drawn here: per unit, a random subset of the inputs is zeroed.
        units = weight.shape[0]
        incoming = weight.view(units, -1) if weight.is_contiguous() else weight.reshape(units, -1)
        zeros = math.ceil(sparsity * incoming.shape[1])
        std = (1.0 if gain is None else gain) / math.sqrt(max(incoming.shape[1] - zeros, 1))
        nn.init.normal_(incoming, 0.0, std, generator=generator)
        noise = torch.rand(incoming.shape, generator=generator, device=incoming.device)
        incoming.scatter_(1, noise.argsort(dim=1)[:, :zeros], 0.0)
        if incoming.data_ptr() != weight.data_ptr():
            weight.copy_(incoming.reshape(weight.shape))
    else:  # "default": what Linear/Conv reset_parameters do, but with our generator
        nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)


def initialize(
    model: M,
    policy: Policy,
    *,
    bias: float | Literal["zero", "default"] = "zero",
    gain: float | None = None,
    sparsity: float = 0.9,
    nonlinearity: str = "relu",
    generator: torch.Generator | None = None,
) -> M:
    """Re-initialize every ``Linear`` and convolution of ``model`` in place by ``policy``; returns ``model``.

    Args:
        model: any module; its ``nn.Linear``, ``nn.ConvNd`` and ``nn.ConvTransposeNd`` layers are set, in
            registration order (other modules, e.g. normalization layers, are left as they are).
        policy: a key of :data:`POLICIES` (see the module docstring for each formula).
        bias: ``"zero"`` (default), a constant (e.g. 0.1 for ReLU units, sec. 8.4), or ``"default"`` (torch's
            U(-1/sqrt(fan_in), 1/sqrt(fan_in))).
        gain: scale factor of the weights. ``None`` means each policy's published formula: 1 for Xavier, LeCun,
            orthogonal and sparse, and ``nn.init.calculate_gain(nonlinearity)`` for He (sqrt(2) for ReLU). For
            tanh networks ``gain=nn.init.calculate_gain("tanh")`` (5/3) is torch's recommendation. Ignored by
            ``"default"``.
        sparsity: for ``"sparse"``, the fraction of each unit's incoming weights set to zero, in [0, 1).
        nonlinearity: the activation after the layers, for He's gain (``"relu"``, ``"leaky_relu"``,
            ``"tanh"``, ``"linear"``, ``"sigmoid"``, ``"selu"``).
        generator: random source; with ``None`` torch's global RNG (so ``torch.manual_seed`` makes it
            deterministic).

    Raises:
        ValueError: for an unknown policy, bias rule or nonlinearity, a gain <= 0, a sparsity outside [0, 1),
            or a model without any layer to initialize. Nothing is changed when it raises.

    Example:
        >>> from torch import nn
        >>> net = initialize(nn.Sequential(nn.Linear(4, 4), nn.Tanh()), "orthogonal", gain=5 / 3, bias=0.0)

    References:
        Glorot & Bengio (2010); He et al. (2015); LeCun et al. (1998), "Efficient backprop"; Saxe et al.
        (2013); Martens (2010); Goodfellow, Bengio & Courville (2016), sec. 8.4.
    """
    if policy not in POLICIES:
        raise ValueError(f"policy: unknown initialization policy {policy!r}; expected one of {list(POLICIES)}")
    if isinstance(bias, str) and bias not in BIAS_RULES:
        raise ValueError(f"bias: unknown bias rule {bias!r}; expected 'zero', 'default' or a number")
    if isinstance(bias, bool) or not isinstance(bias, (str, int, float)):
        raise ValueError(f"bias: expected 'zero', 'default' or a number, got {bias!r}")
    if gain is not None and not gain > 0:
        raise ValueError(f"gain: must be > 0, got {gain}")
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity: must be in [0, 1), got {sparsity}")
    try:
        nn.init.calculate_gain(nonlinearity)  # type: ignore[arg-type]
    except ValueError:
        raise ValueError(f"nonlinearity: unsupported nonlinearity {nonlinearity!r}") from None
    layers = [m for m in model.modules() if isinstance(m, LAYERS)]
    if not layers:
        raise ValueError(f"model: {type(model).__name__} has no Linear or convolution layer to initialize")
    with torch.no_grad():
        for layer in layers:
            _init_weight(layer.weight, policy, gain, sparsity, nonlinearity, generator)
            if layer.bias is None:
                continue
            if bias == "zero":
                nn.init.zeros_(layer.bias)
            elif bias == "default":
                fan_in, _ = _fans(layer.weight)
                bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
                nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
            else:
                nn.init.constant_(layer.bias, float(bias))
    return model


def _is_layer(module: nn.Module) -> bool:
    return isinstance(module, LAYERS)


def activation_statistics(
    model: nn.Sequential,
    x: Tensor,
    y: Tensor | None = None,
    *,
    loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
    generator: torch.Generator | None = None,
) -> list[dict[str, float | int | str]]:
    """Standard deviation of each hidden layer's output and of the loss gradient with respect to it.

    The hidden layers of a flat ``nn.Sequential`` are the blocks that start at each ``Linear``/convolution
    but the last (the head): ``fc1 -> [bn1] -> act1 -> [dropout1]`` is layer 1, and its *activation* is the
    output of the block's last child (``act1``, or ``dropout1``). One forward pass records every activation;
    one backward pass (``torch.autograd.grad``, so the parameters' ``.grad`` stay untouched) gives the gradient
    with respect to each. With ``y`` the gradient is that of ``loss_fn(output, y)`` (default cross-entropy);
    without it, the output receives a random N(0, 1) gradient, which shows the backward scale alone.

    Vanishing (std falling geometrically with depth) or exploding (growing) activations and gradients are what
    a good initialization avoids (Glorot & Bengio 2010): at He initialization a deep ReLU network keeps both
    roughly constant; with too small weights both shrink by a constant factor per layer.

    Args:
        model: a flat ``nn.Sequential`` (e.g. the lab's MLP: ``flatten, fc1, act1, ..., head``).
        x: a batch of inputs.
        y: targets for ``loss_fn``; ``None`` for a random output gradient.
        loss_fn: ``(output, y) -> scalar``; default ``F.cross_entropy``.
        generator: random source of the output gradient when ``y`` is ``None``.

    Returns:
        One dict per hidden layer, input side first: ``layer`` (1, 2, ...), ``name`` (the child whose output
        is measured), ``activation_std``, ``gradient_std``.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 2))
        >>> [row["name"] for row in activation_statistics(net, torch.randn(32, 8))]
        ['1', '3']
    """
    if not isinstance(model, nn.Sequential):
        raise ValueError(f"model: expected a flat nn.Sequential, got {type(model).__name__}")
    children = list(model.named_children())
    starts = [i for i, (_, child) in enumerate(children) if _is_layer(child)]
    ends = {nxt - 1: depth for depth, nxt in enumerate(starts[1:], start=1)}  # block end index -> layer number
    captured: list[tuple[int, str, Tensor]] = []
    with torch.enable_grad():
        h = x
        for i, (name, child) in enumerate(children):
            h = child(h)
            if i in ends:
                captured.append((ends[i], name, h))
        if not captured:
            return []
        if y is None:
            grad_output = torch.randn(h.shape, generator=generator, dtype=h.dtype).to(h.device)
            grads = torch.autograd.grad(h, [a for _, _, a in captured], grad_outputs=grad_output, allow_unused=True)
        else:
            loss = (loss_fn or F.cross_entropy)(h, y)
            grads = torch.autograd.grad(loss, [a for _, _, a in captured], allow_unused=True)
    rows: list[dict[str, float | int | str]] = []
    for (depth, name, activation), grad in zip(captured, grads, strict=True):
        rows.append(
            {
                "layer": depth,
                "name": name,
                "activation_std": activation.detach().float().std().item(),
                "gradient_std": 0.0 if grad is None else grad.float().std().item(),
            }
        )
    return rows
