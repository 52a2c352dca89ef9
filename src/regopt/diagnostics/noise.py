"""Inexact gradients (Goodfellow et al. 2016, sec. 8.2.5): how noisy is a mini-batch gradient?

Stochastic gradient descent follows the mini-batch gradient ``g_B = (1/B) sum_{i in batch} g_i``, an unbiased
estimate of the full-batch gradient ``g = (1/n) sum_i g_i``. Drawing the ``B`` examples independently (with
replacement) from the ``n`` given ones, its error has

    E ||g_B - g||^2 = tr(Sigma) / B,        Sigma = (1/n) sum_i (g_i - g)(g_i - g)^T,

the per-example gradient covariance. Two numbers summarize it:

- the gradient signal-to-noise ratio ``SNR(B) = ||g||^2 / (tr(Sigma) / B)``, linear in ``B``;
- the simple noise scale ``B_simple = tr(Sigma) / ||g||^2`` (McCandlish et al. 2018), the batch size at which
  signal and noise are equal (``SNR(B_simple) = 1``): batches much smaller than it are dominated by noise,
  batches much larger than it waste computation.

:func:`per_example_gradients` computes the ``g_i`` with ``torch.func`` (``functional_call``, ``grad``, ``vmap``)
in one vectorized call; :func:`gradient_noise` reduces them to the statistics above, in chunks, without holding
the whole ``(n, num_params)`` matrix.

Example::

    stats = gradient_noise(model, nn.functional.cross_entropy, x, y)
    stats["noise_scale"], stats["snr"](32)
    for batch_size, variance, snr in batch_size_curve(stats, [8, 32, 128]): ...

References:
    McCandlish, Kaplan, Amodei & OpenAI Dota Team (2018), "An Empirical Model of Large-Batch Training".
    Goodfellow, Bengio & Courville (2016), *Deep Learning*, sec. 8.1.3 and 8.2.5.
"""

from __future__ import annotations

import contextlib
import math
import numbers
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from regopt._checks import check_int

LossFn = Callable[[Tensor, Tensor], Tensor]
"""``loss_fn(output, target) -> scalar``, the mean loss over the batch it is given (e.g. ``F.cross_entropy``)."""


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every submodule of ``model`` in eval mode for the block, then restore each one's own ``training``."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in flags:
            module.training = training


def per_example_gradients(
    model: nn.Module, loss_fn: LossFn, x: Tensor, y: Tensor, *, chunk_size: int | None = None
) -> Tensor:
    """The gradient of each example's loss, one row per example: a tensor of shape ``(n, num_params)``.

    Row ``i`` is ``d loss_fn(model(x[i:i+1]), y[i:i+1]) / d theta``, flattened and concatenated over the
    parameters that require grad, in ``model.named_parameters()`` order. Parameters with
    ``requires_grad=False`` and buffers are held fixed.

    Args:
        model: any module; called on single-example batches ``x[i:i+1]``.
        loss_fn: ``loss_fn(output, target) -> scalar`` (on a one-example batch it is that example's loss).
        x: inputs, examples along dimension 0.
        y: targets, examples along dimension 0.
        chunk_size: passed to ``torch.func.vmap`` to bound memory (default: all examples at once).

    Note:
        The gradients are taken with the model in **eval mode** (each submodule's mode is restored afterwards):
        a per-example gradient through batch statistics (BatchNorm in training mode) is not defined, and
        dropout would add a second source of noise. BatchNorm therefore uses its running statistics.
    """
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must hold the same number of examples, got {x.shape[0]} and {y.shape[0]}")
    params = {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}
    if not params:
        raise ValueError("model has no parameter that requires grad")
    frozen = {name: p.detach() for name, p in model.named_parameters() if not p.requires_grad}
    buffers = dict(model.named_buffers())

    def example_loss(theta: dict[str, Tensor], xi: Tensor, yi: Tensor) -> Tensor:
        out = functional_call(model, (theta, frozen, buffers), (xi.unsqueeze(0),))
        return loss_fn(out, yi.unsqueeze(0))

    with _eval_mode(model):
        grads = vmap(grad(example_loss), in_dims=(None, 0, 0), chunk_size=chunk_size)(params, x, y)
    n = x.shape[0]
    return torch.cat([g.reshape(n, -1) for g in grads.values()], dim=1)


def gradient_noise(model: nn.Module, loss_fn: LossFn, x: Tensor, y: Tensor, *, chunk_size: int = 256) -> dict[str, Any]:
    """Mean gradient, per-example gradient covariance trace, SNR and noise scale on the examples ``(x, y)``.

    Returns a dict with

    - ``"mean_gradient"``: ``g``, the full-batch gradient (flat, as in :func:`per_example_gradients`);
    - ``"grad_norm_sq"``: ``||g||^2``;
    - ``"trace_cov"``: ``tr(Sigma)``, the per-example gradient variance summed over parameters (denominator
      ``n``: the covariance of the distribution that sampling *with replacement* from these examples draws from;
      multiply by ``n / (n - 1)`` for an unbiased estimate of the data distribution's);
    - ``"noise_scale"``: ``B_simple = tr(Sigma) / ||g||^2`` (``inf`` when ``g = 0``);
    - ``"snr"``: a function ``batch_size -> ||g||^2 / (tr(Sigma) / B)``;
    - ``"num_examples"``, ``"num_params"``.

    The per-example gradients are computed ``chunk_size`` examples at a time and merged with Chan et al.'s
    (1979) pairwise update of the mean and sum of squared deviations, in float64, so memory is
    ``O(chunk_size * num_params)`` and the trace does not suffer the cancellation of ``E[g^2] - E[g]^2``.
    The model is evaluated in eval mode (see :func:`per_example_gradients`).
    """
    check_int("chunk_size", chunk_size, 1)
    n = x.shape[0]
    if n < 1:
        raise ValueError("gradient_noise needs at least one example, got 0")
    count, mean, m2 = 0, None, torch.zeros((), dtype=torch.float64)
    dtype = None
    for start in range(0, n, chunk_size):
        chunk = per_example_gradients(model, loss_fn, x[start : start + chunk_size], y[start : start + chunk_size])
        dtype = chunk.dtype
        chunk = chunk.to(torch.float64)
        size = chunk.shape[0]
        chunk_mean = chunk.mean(dim=0)
        chunk_m2 = (chunk - chunk_mean).square().sum().cpu()
        if mean is None:
            count, mean, m2 = size, chunk_mean, chunk_m2
            continue
        delta = chunk_mean - mean
        total = count + size
        mean = mean + delta * (size / total)
        m2 = m2 + chunk_m2 + delta.square().sum().cpu() * (count * size / total)
        count = total
    assert mean is not None and dtype is not None
    trace = float(m2) / n
    norm_sq = float(mean.square().sum())
    return {
        "mean_gradient": mean.to(dtype),
        "grad_norm_sq": norm_sq,
        "trace_cov": trace,
        "noise_scale": trace / norm_sq if norm_sq > 0 else math.inf,
        "snr": lambda batch_size: _snr(norm_sq, trace, batch_size),
        "num_examples": n,
        "num_params": mean.numel(),
    }


def gradient_snr(stats: dict[str, Any], batch_size: int) -> float:
    """``||g||^2 / (tr(Sigma) / B)`` from the statistics of :func:`gradient_noise` (same as ``stats["snr"]``)."""
    return _snr(stats["grad_norm_sq"], stats["trace_cov"], batch_size)


def batch_size_curve(stats: dict[str, Any], sizes: Iterable[int]) -> list[tuple[int, float, float]]:
    """Rows ``(B, tr(Sigma) / B, SNR(B))`` for each batch size: the expected squared error of the mini-batch
    gradient ``E ||g_B - g||^2`` (sampling with replacement) and the signal-to-noise ratio."""
    rows = []
    for size in sizes:
        _check_batch_size(size)
        rows.append((size, stats["trace_cov"] / size, gradient_snr(stats, size)))
    return rows


def _snr(norm_sq: float, trace: float, batch_size: int) -> float:
    _check_batch_size(batch_size)
    if trace == 0:
        return math.inf if norm_sq > 0 else math.nan
    return norm_sq * batch_size / trace


def _check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
