"""Noise robustness (Goodfellow et al. 2016, sec. 7.5): noise on the inputs, hidden units, weights and targets.

Four places to inject noise during training, each a small composable piece:

- inputs: :class:`InputNoise`, a batch transform ``(x, y) -> (x + std * N(0, 1), y)`` (dataset augmentation);
- hidden units: :class:`GaussianNoise`, a layer that is the identity in eval mode, and
  :func:`add_hidden_noise`, which inserts one after every activation of an ``nn.Sequential``;
- weights: in :mod:`regopt.regularize.weight_noise` (``W -> W + std * N(0, 1)`` in training mode);
- output targets (sec. 7.5.1): in :mod:`regopt.regularize.target_noise` (label smoothing).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import Tensor, nn

from regopt._checks import check_real

ACTIVATION_TYPES: tuple[type[nn.Module], ...] = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.ELU, nn.LeakyReLU)
"""Activations after which :func:`add_hidden_noise` inserts noise by default."""


def gaussian_like(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Standard normal noise of ``x``'s shape, dtype and device, from ``generator`` (or torch's global RNG).

    The generator may live on another device than ``x`` (a CPU generator for a CUDA batch): the noise is
    drawn where the generator lives and moved.
    """
    if generator is None:
        return torch.randn_like(x)
    noise = torch.randn(x.shape, generator=generator, device=generator.device, dtype=x.dtype)
    return noise.to(x.device)


class GeneratorState:
    """Mixin: ``state_dict``/``load_state_dict`` of an optional ``self.generator``, so that a resumed run draws
    the same noise as an uninterrupted one (regopt's Trainer checkpoints every batch transform that has them;
    without a generator the state is empty and torch's global RNG, which the Trainer saves, is used)."""

    generator: torch.Generator | None

    def state_dict(self) -> dict[str, Any]:
        return {"generator": None if self.generator is None else self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.generator is not None and state.get("generator") is not None:
            self.generator.set_state(state["generator"])


class InputNoise(GeneratorState):
    """Additive Gaussian input noise as a batch transform: ``(x, y) -> (x + std * eps, y)``, eps ~ N(0, I).

    Applied to training batches only (it is a batch transform, which the training loop calls on training
    batches and never on evaluation), it is the simplest dataset augmentation (sec. 7.4/7.5); for small ``std``
    it is equivalent to a penalty on the norm of the weights (Bishop 1995).

    Args:
        std: standard deviation of the noise (>= 0; 0 returns ``x`` itself).
        generator: a ``torch.Generator`` to draw from (default: torch's global RNG).

    Example::

        >>> transform = InputNoise(0.1, generator=torch.Generator().manual_seed(0))
        >>> x, y = transform(torch.zeros(4, 3), torch.arange(4))
        >>> x.shape, y.tolist()
        (torch.Size([4, 3]), [0, 1, 2, 3])

    References:
        Bishop (1995), training with noise is equivalent to Tikhonov regularization; Goodfellow, Bengio &
        Courville (2016), sec. 7.5.
    """

    def __init__(self, std: float, *, generator: torch.Generator | None = None) -> None:
        self.std = check_real("std", std)
        self.generator = generator

    def __call__(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        if self.std == 0:
            return x, y
        return x + self.std * gaussian_like(x, self.generator), y

    def __repr__(self) -> str:
        return f"InputNoise(std={self.std})"


class GaussianNoise(nn.Module):
    """Hidden-unit noise: adds N(0, std^2) noise to its input in training mode; the identity in eval mode.

    Insert it after a hidden activation (or use :func:`add_hidden_noise`). Noise on hidden units makes the
    model robust at every level of abstraction, which is often more powerful than shrinking parameters
    (sec. 7.5); dropout is the multiplicative relative of this additive noise (sec. 7.12).

    Args:
        std: standard deviation of the noise (>= 0).
        generator: a ``torch.Generator`` to draw from (default: torch's global RNG).

    Example::

        >>> layer = GaussianNoise(0.5)
        >>> x = torch.ones(2, 3)
        >>> torch.equal(layer.eval()(x), x)
        True
    """

    def __init__(self, std: float, *, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.std = check_real("std", std)
        self.generator = generator

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.std == 0:
            return x
        return x + self.std * gaussian_like(x, self.generator)

    def extra_repr(self) -> str:
        return f"std={self.std}"


def add_hidden_noise(
    model: nn.Sequential, std: float, after: tuple[type[nn.Module], ...] = ACTIVATION_TYPES
) -> nn.Sequential:
    """A new ``nn.Sequential`` with a :class:`GaussianNoise` inserted after each activation of ``model``.

    The original modules are reused (not copied), so the new model shares every parameter with ``model``;
    child names are kept and each noise layer is named after its activation (``act1`` -> ``act1_noise``).
    Nested ``nn.Sequential`` children are treated the same way (rebuilt, their modules shared); activations
    inside other container modules, and functional activations (``F.relu``), are not reached.

    Args:
        model: the network, an ``nn.Sequential``.
        std: standard deviation of the hidden-unit noise (>= 0).
        after: activation classes after which to insert noise (default :data:`ACTIVATION_TYPES`).

    Example::

        >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> noisy = add_hidden_noise(net, 0.1)
        >>> [name for name, _ in noisy.named_children()]
        ['0', '1', '1_noise', '2']
        >>> noisy[0] is net[0]
        True
    """
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"model must be an nn.Sequential, got {type(model).__name__}")
    std = check_real("std", std)
    if not isinstance(after, tuple) or not all(isinstance(t, type) for t in after):
        raise ValueError(f"after must be a tuple of module classes, got {after!r}")
    children: OrderedDict[str, nn.Module] = OrderedDict()
    names = {name for name, _ in model.named_children()}
    for name, module in model.named_children():
        if isinstance(module, nn.Sequential):
            module = add_hidden_noise(module, std, after)
        children[name] = module
        if isinstance(module, after):
            noise_name = f"{name}_noise"
            while noise_name in names or noise_name in children:
                noise_name += "_"
            children[noise_name] = GaussianNoise(std)
    noisy = nn.Sequential(children)
    noisy.train(model.training)
    return noisy
