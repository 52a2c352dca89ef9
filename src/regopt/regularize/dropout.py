"""Dropout inference (Goodfellow et al. 2016, sec. 7.12): the weight-scaling rule and Monte Carlo averaging.

Dropout itself is torch's ``nn.Dropout``: during training each unit is kept with probability ``1 - p`` and
the kept units are scaled by ``1 / (1 - p)`` ("inverted dropout"). Training with dropout trains an ensemble
of the 2^n subnetworks obtained by removing units, all sharing parameters. At test time the ensemble's
prediction can be computed two ways:

- :func:`weight_scaling_predict`: one forward pass in eval mode, the weight-scaling inference rule;
- :func:`mc_dropout_predict`: the average prediction of ``samples`` random subnetworks (dropout kept on);

and :func:`compare_inference` measures how far apart the two are on a data set.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal

import torch
from torch import Tensor, nn

from regopt._checks import is_int

DROPOUT_TYPES: tuple[type[nn.Module], ...] = (
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
)
"""The module classes that :func:`mc_dropout_predict` switches to training mode."""

Mean = Literal["arithmetic", "geometric"]


@contextlib.contextmanager
def _modes(model: nn.Module, dropout_on: bool) -> Iterator[None]:
    """Eval mode for every module (dropout modules in train mode if ``dropout_on``); restore all on exit."""
    saved = [(module, module.training) for module in model.modules()]
    try:
        model.eval()
        if dropout_on:
            for module in model.modules():
                if isinstance(module, DROPOUT_TYPES):
                    module.train()
        yield
    finally:
        for module, training in saved:
            module.training = training


@torch.no_grad()
def weight_scaling_predict(model: nn.Module, x: Tensor, *, softmax: bool = True) -> Tensor:
    """The weight-scaling inference rule: one forward pass of ``model`` in eval mode.

    The rule (Hinton et al. 2012) evaluates the full network with each weight out of a unit that is kept with
    probability ``1 - p`` multiplied by ``1 - p``, so each unit's expected input matches training. torch's
    dropout is inverted: it scales the kept units by ``1 / (1 - p)`` during training instead, so the eval-mode
    network (dropout the identity) already *is* the weight-scaled network; no weights need rescaling.

    For a softmax model without nonlinear hidden units the rule is exact: its output is the renormalized
    geometric mean of the predictions of all 2^n subnetworks (sec. 7.12). For deep nonlinear networks it is an
    approximation, one that works well in practice at the cost of a single forward pass.

    Args:
        model: any ``nn.Module``; its train/eval modes are restored afterwards.
        x: a batch of inputs.
        softmax: return ``softmax(output, dim=1)`` (class probabilities) rather than the raw output.

    Example::

        >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3))
        >>> probabilities = weight_scaling_predict(net, torch.randn(2, 4))
        >>> torch.allclose(probabilities.sum(dim=1), torch.ones(2))
        True

    References:
        Hinton et al. (2012); Srivastava et al. (2014); Goodfellow, Bengio & Courville (2016), sec. 7.12.
    """
    with _modes(model, dropout_on=False):
        output = model(x)
    return output.softmax(dim=1) if softmax else output


@torch.no_grad()
def mc_dropout_predict(
    model: nn.Module,
    x: Tensor,
    samples: int = 50,
    *,
    seed: int | None = None,
    softmax: bool = True,
    mean: Mean = "arithmetic",
) -> Tensor:
    """Monte Carlo dropout: the average prediction of ``samples`` random subnetworks.

    Every dropout module (:data:`DROPOUT_TYPES`) is put in training mode and every other module in eval mode
    (batch norm uses its running statistics), ``model(x)`` is run ``samples`` times with fresh dropout masks,
    and the predictions are averaged: arithmetically, ``p_ens(y|x) = 1/S sum_s p(y|x, mu_s)`` (eq. 7.54, the
    bagging-style ensemble), or geometrically, ``p_ens ∝ (prod_s p(y|x, mu_s))^(1/S)`` (eq. 7.56), the quantity
    the weight-scaling rule approximates (and equals exactly for a softmax model without nonlinear hidden
    units). Modes of all modules are restored afterwards.

    Args:
        model: an ``nn.Module`` holding at least one dropout module.
        x: a batch of inputs.
        samples: number of subnetworks S (>= 1).
        seed: seed the masks for a reproducible result; torch's global RNG is then left untouched (default:
            draw from torch's global RNG).
        softmax: average class probabilities ``softmax(output, dim=1)`` (default); ``False`` averages the
            raw outputs (``mean="arithmetic"`` only), e.g. for regression.
        mean: ``"arithmetic"`` (default) or ``"geometric"`` (renormalized over classes).

    Example::

        >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3))
        >>> mc_dropout_predict(net, torch.randn(2, 4), samples=10, seed=0).shape
        torch.Size([2, 3])

    References:
        Gal & Ghahramani (2016), dropout as a Bayesian approximation; Goodfellow, Bengio & Courville (2016),
        sec. 7.12.
    """
    if not is_int(samples) or samples < 1:
        raise ValueError(f"samples must be a positive integer, got {samples!r}")
    if mean not in ("arithmetic", "geometric"):
        raise ValueError(f"mean must be 'arithmetic' or 'geometric', got {mean!r}")
    if mean == "geometric" and not softmax:
        raise ValueError("mean='geometric' needs softmax=True (a geometric mean of probabilities)")
    if not any(isinstance(m, DROPOUT_TYPES) for m in model.modules()):
        raise ValueError(
            f"model has no dropout module ({', '.join(t.__name__ for t in DROPOUT_TYPES)}); "
            "functional F.dropout calls cannot be switched on for Monte Carlo inference"
        )
    devices = [x.device] if x.device.type == "cuda" else []
    rng = torch.random.fork_rng(devices=devices) if seed is not None else contextlib.nullcontext()
    with rng, _modes(model, dropout_on=True):
        if seed is not None:
            torch.manual_seed(seed)
        average = torch.empty(0)
        for s in range(1, samples + 1):
            output = model(x)
            if softmax:
                output = output.log_softmax(dim=1) if mean == "geometric" else output.softmax(dim=1)
            # running mean: exact when all subnetworks agree (p = 0), and stable for many samples
            average = output if s == 1 else average + (output - average) / s
    return average.softmax(dim=1) if mean == "geometric" else average


def compare_inference(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    samples: int = 50,
    *,
    seed: int | None = 0,
) -> dict[str, float]:
    """Error rates of the weight-scaling rule and of Monte Carlo dropout, and how far their predictions differ.

    Returns a dict with:

    - ``weight_scaling_error``: error rate of :func:`weight_scaling_predict`;
    - ``mc_error``: error rate of :func:`mc_dropout_predict` (arithmetic mean of ``samples`` subnetworks);
    - ``mean_abs_prob_diff``: mean absolute difference of the two probability matrices;
    - ``agreement``: fraction of examples on which both rules predict the same class;
    - ``samples``: S.

    Args:
        model: a classifier holding at least one dropout module.
        x: inputs; y: class indices of shape ``(n,)``.
        samples: Monte Carlo samples S (>= 1).
        seed: seed of the dropout masks (``None``: torch's global RNG).

    Example::

        >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3))
        >>> sorted(compare_inference(net, torch.randn(16, 4), torch.randint(3, (16,)), samples=5))
        ['agreement', 'mc_error', 'mean_abs_prob_diff', 'samples', 'weight_scaling_error']
    """
    if y.dim() != 1 or len(y) != len(x):
        raise ValueError(f"y must hold one class index per example of x, got shape {tuple(y.shape)}")
    scaled = weight_scaling_predict(model, x)
    mc = mc_dropout_predict(model, x, samples, seed=seed)
    scaled_class, mc_class = scaled.argmax(dim=1), mc.argmax(dim=1)
    return {
        "weight_scaling_error": (scaled_class != y).double().mean().item(),
        "mc_error": (mc_class != y).double().mean().item(),
        "mean_abs_prob_diff": (scaled - mc).abs().mean().item(),
        "agreement": (scaled_class == mc_class).double().mean().item(),
        "samples": float(samples),
    }
