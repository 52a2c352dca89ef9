"""Noise robustness (Goodfellow et al. 2016, sec. 7.5): noise on the inputs, hidden units, weights and targets.

Four places to inject noise during training, each a small composable piece:

- inputs: :class:`InputNoise`, a batch transform ``(x, y) -> (x + std * N(0, 1), y)`` (dataset augmentation);
- hidden units: :class:`GaussianNoise`, a layer that is the identity in eval mode, and
  :func:`add_hidden_noise`, which inserts one after every activation of an ``nn.Sequential``;
- weights: :func:`add_weight_noise` / :func:`remove_weight_noise`, a ``torch.nn.utils.parametrize``
  parametrization ``W -> W + std * N(0, 1)`` active in training mode (Graves 2011; used mostly for RNNs);
- output targets (sec. 7.5.1): :func:`smoothed_cross_entropy` (label smoothing) and :func:`soft_targets`.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

ACTIVATION_TYPES: tuple[type[nn.Module], ...] = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.ELU, nn.LeakyReLU)
"""Activations after which :func:`add_hidden_noise` inserts noise by default."""

WEIGHT_NOISE_MODULES: tuple[type[nn.Module], ...] = (nn.Linear, nn.modules.conv._ConvNd)
"""Modules whose weights (``dim >= 2``) :func:`add_weight_noise` perturbs by default."""

ParameterSelector = Callable[[nn.Module], list[tuple[str, nn.Parameter]]]


def check_std(name: str, value: float) -> float:
    """``value`` as a float if it is finite and ``>= 0``; otherwise a ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


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
        self.std = check_std("std", std)
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
        self.std = check_std("std", std)
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
    std = check_std("std", std)
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


class WeightNoise(nn.Module):
    """Parametrization ``W -> W + std * N(0, 1)`` in training mode, ``W`` in eval mode (see
    :func:`add_weight_noise`)."""

    def __init__(self, std: float, *, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.std = check_std("std", std)
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
        isinstance(p, WeightNoise) for p in module.parametrizations[tensor_name]
    )


def default_weight_selector(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The ``weight`` (``dim >= 2``, trainable) of every ``Linear`` and convolution module, including weights
    that already carry another parametrization (weight norm, orthogonality)."""
    selected: list[tuple[str, nn.Parameter]] = []
    seen: set[int] = set()
    for name, module in model.named_modules():
        if not isinstance(module, WEIGHT_NOISE_MODULES):
            continue
        if parametrize.is_parametrized(module, "weight"):
            weight = module.parametrizations["weight"].original
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
    std = check_std("std", std)
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
        for tensor_name in list(module.parametrizations.keys()):
            chain = module.parametrizations[tensor_name]
            if all(isinstance(p, WeightNoise) for p in chain):
                parametrize.remove_parametrizations(module, tensor_name, leave_parametrized=False)
            else:
                for i in reversed(range(len(chain))):
                    if isinstance(chain[i], WeightNoise):
                        del chain[i]
    return model


def _check_eps(eps: float, name: str = "label_smoothing") -> float:
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0.0 <= eps <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {eps!r}")
    return float(eps)


def smoothed_cross_entropy(label_smoothing: float) -> Callable[[Tensor, Tensor], Tensor]:
    """Cross-entropy against label-smoothed targets (noise at the output targets, sec. 7.5.1).

    Returns ``loss(logits, y) = F.cross_entropy(logits, y, label_smoothing=eps)``, which is the cross-entropy
    ``-sum_c q_c log softmax(logits)_c`` against the soft targets of :func:`soft_targets`::

        q_c = (1 - eps) * [c == y] + eps / k      (k classes)

    i.e. ``1 - (k - 1) / k * eps`` for the true class and ``eps / k`` for each other class. Unlike hard 0/1
    targets, these keep softmax logits finite: maximum likelihood can no longer push them to infinity.

    Args:
        label_smoothing: eps in [0, 1] (0 is the plain cross-entropy).

    Example::

        >>> loss_fn = smoothed_cross_entropy(0.1)
        >>> round(float(loss_fn(torch.zeros(2, 5), torch.tensor([0, 3]))), 4)  # uniform prediction: log 5
        1.6094

    Note:
        Goodfellow et al. (2016, sec. 7.5.1) write the targets as ``eps_b / (k - 1)`` and ``1 - eps_b``; torch
        (and Szegedy et al. 2016) spread eps over all k classes. They are the same targets with
        ``eps = eps_b * k / (k - 1)``. Used as a Trainer loss function, the reported evaluation loss is the
        smoothed one too; error rates are unaffected.

    References:
        Szegedy et al. (2016), label smoothing; Goodfellow, Bengio & Courville (2016), sec. 7.5.1.
    """
    return SmoothedCrossEntropy(_check_eps(label_smoothing))


class SmoothedCrossEntropy:
    """The loss that :func:`smoothed_cross_entropy` returns: ``F.cross_entropy(logits, y, label_smoothing)``."""

    def __init__(self, label_smoothing: float) -> None:
        self.label_smoothing = _check_eps(label_smoothing)

    def __call__(self, logits: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)

    def __repr__(self) -> str:
        return f"smoothed_cross_entropy({self.label_smoothing})"


def soft_targets(y: Tensor, num_classes: int, eps: float) -> Tensor:
    """The label-smoothed target matrix ``q = (1 - eps) * one_hot(y) + eps / k``, shape ``(n, k)``.

    Its rows sum to 1; the true class holds ``1 - (k - 1) / k * eps`` and every other class ``eps / k``
    (torch's ``label_smoothing`` convention; see :func:`smoothed_cross_entropy`).

    Args:
        y: class indices, an integer tensor of shape ``(n,)`` with values in ``[0, num_classes)``.
        num_classes: k (>= 1).
        eps: smoothing in [0, 1].

    Example::

        >>> soft_targets(torch.tensor([1]), 4, 0.2)
        tensor([[0.0500, 0.8500, 0.0500, 0.0500]])
    """
    eps = _check_eps(eps, "eps")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    if y.dtype.is_floating_point or y.dtype.is_complex or y.dim() != 1:
        raise ValueError(f"y must be a 1-D integer tensor of class indices, got {y.dtype} {tuple(y.shape)}")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(f"y must hold class indices in [0, {num_classes}), got values in [{y.min()}, {y.max()}]")
    one_hot = F.one_hot(y.long(), num_classes).to(torch.get_default_dtype())
    return (1.0 - eps) * one_hot + eps / num_classes
