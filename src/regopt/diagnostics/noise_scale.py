r"""The gradient noise scale from two batch sizes (McCandlish et al. 2018, App. A): almost free under DDP.

With examples drawn independently, a batch of ``B`` gives a gradient ``G_B`` with

    E ||G_B||^2 = ||G||^2 + tr(Sigma) / B,

``G`` the true gradient and ``Sigma`` the per-example gradient covariance. Two batch sizes ``b < B`` give
unbiased estimates of both terms:

    ||G||^2  ~  (B ||G_B||^2 - b ||G_b||^2) / (B - b),        tr(Sigma)  ~  (||G_b||^2 - ||G_B||^2) / (1/b - 1/B),

and the simple noise scale ``B_simple = tr(Sigma) / ||G||^2`` (the batch size at which the gradient's signal
and noise are equal, see :mod:`~regopt.diagnostics.noise`). Under data parallelism over ``k`` ranks each rank's
gradient is a batch of ``b`` and their average a batch of ``B = k b``: :func:`rank_gradient_norms` returns
``||G_b||^2`` (averaged over the ranks) and ``||G_B||^2``. Each step's pair is noisy and the ratio of two noisy
estimates is biased, so, as the paper does, :class:`NoiseScaleEstimate` averages the two estimates over many
steps (an epoch) before dividing.

:func:`~regopt.diagnostics.noise.gradient_noise` computes the same ``tr(Sigma)`` and ``||G||^2`` exactly from
per-example gradients, in one process, at ``n`` per-example gradients' cost.

References:
    McCandlish, S., Kaplan, J., Amodei, D. & OpenAI Dota Team (2018). An empirical model of large-batch
    training. arXiv:1812.06162, sec. 2.2 and App. A.1.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["NoiseScaleEstimate", "NoiseScaleHook", "noise_scale_terms", "rank_gradient_norms"]


def noise_scale_terms(
    small_norm_sq: float, small_batch: int, big_norm_sq: float, big_batch: int
) -> tuple[float, float]:
    """Unbiased estimates ``(||G||^2, tr(Sigma))`` from squared gradient norms at two batch sizes.

    Args:
        small_norm_sq: ``||G_b||^2``, the squared norm of a gradient averaged over ``small_batch`` examples (or
            the mean of several such squared norms).
        small_batch: ``b``.
        big_norm_sq: ``||G_B||^2`` for a gradient averaged over ``big_batch`` examples.
        big_batch: ``B > b``.

    Returns:
        ``((B ||G_B||^2 - b ||G_b||^2) / (B - b), (||G_b||^2 - ||G_B||^2) / (1/b - 1/B))``; either can be
        negative for one noisy pair: average over steps before taking the ratio (:class:`NoiseScaleEstimate`).

    Example:
        >>> noise_scale_terms(1.0 + 8.0 / 2, 2, 1.0 + 8.0 / 8, 8)  # ||G||^2 = 1, tr(Sigma) = 8
        (1.0, 8.0)
    """
    if not 1 <= small_batch < big_batch:
        raise ValueError(f"need 1 <= small_batch < big_batch, got {small_batch} and {big_batch}")
    norm_sq = (big_batch * big_norm_sq - small_batch * small_norm_sq) / (big_batch - small_batch)
    trace = (small_norm_sq - big_norm_sq) / (1 / small_batch - 1 / big_batch)
    return norm_sq, trace


def rank_gradient_norms(local_gradient: Tensor, group: dist.ProcessGroup | None = None) -> tuple[float, float]:
    """``(mean_i ||g_i||^2, ||mean_i g_i||^2)`` over the ranks of ``group``, from each rank's own gradient.

    Collective (every rank calls it, in the same order) and the same on every rank: one all-reduce of the
    gradient and one of a scalar, in float64. Each rank's ``g_i`` must average the same number ``b`` of
    examples (DDP's even shards); then the results are ``||G_b||^2`` and ``||G_B||^2`` with ``B = world * b``.
    Under :class:`~torch.nn.parallel.DistributedDataParallel` the local gradient is the one before DDP's
    all-reduce (e.g. taken in a ``no_sync()`` backward, or summed per bucket by a communication hook, which
    gives the same two numbers without the extra all-reduce).

    Args:
        local_gradient: this rank's gradient, any shape (flattened here).
        group: the process group (default: the default group).
    """
    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError("rank_gradient_norms needs torch.distributed initialized (dist.init_process_group)")
    world = dist.get_world_size(group)
    g = local_gradient.detach().reshape(-1).to(torch.float64)
    local_sq = g.square().sum().reshape(1)
    total = g.clone()
    dist.all_reduce(local_sq, group=group)
    dist.all_reduce(total, group=group)
    return float(local_sq) / world, float((total / world).square().sum())


class NoiseScaleEstimate:
    """Running means of the two unbiased estimates over steps; :attr:`noise_scale` is their ratio.

    Call :meth:`update` each step with the two squared norms (e.g. from :func:`rank_gradient_norms`), read
    :meth:`result` at the end of an epoch, then :meth:`reset`.

    Example:
        >>> est = NoiseScaleEstimate()
        >>> est.update(4.0, 2, 1.0, 8)  # alone: ||G||^2 ~ 0, tr(Sigma) ~ 8, no ratio
        >>> est.update(6.0, 2, 3.0, 8)  # alone: ||G||^2 ~ 2, tr(Sigma) ~ 8, ratio 4
        >>> est.result()
        {'grad_norm_sq': 1.0, 'trace_cov': 8.0, 'noise_scale': 8.0, 'steps': 2}
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget all steps."""
        self.steps, self._norm_sq, self._trace = 0, 0.0, 0.0

    def update(self, small_norm_sq: float, small_batch: int, big_norm_sq: float, big_batch: int) -> None:
        """Add one step's squared norms (arguments as :func:`noise_scale_terms`)."""
        norm_sq, trace = noise_scale_terms(small_norm_sq, small_batch, big_norm_sq, big_batch)
        self.steps += 1
        self._norm_sq += norm_sq
        self._trace += trace

    @property
    def grad_norm_sq(self) -> float:
        """Mean estimate of ``||G||^2`` (``nan`` before any step)."""
        return self._norm_sq / self.steps if self.steps else math.nan

    @property
    def trace_cov(self) -> float:
        """Mean estimate of ``tr(Sigma)`` (``nan`` before any step)."""
        return self._trace / self.steps if self.steps else math.nan

    @property
    def noise_scale(self) -> float:
        """``B_simple = tr(Sigma) / ||G||^2`` from the means (``nan`` before any step or if ``||G||^2 <= 0``:
        too few steps to separate the signal from the noise)."""
        norm_sq = self.grad_norm_sq
        return self.trace_cov / norm_sq if norm_sq > 0 else math.nan

    def result(self) -> dict[str, float]:
        """``{"grad_norm_sq", "trace_cov", "noise_scale", "steps"}``."""
        return {
            "grad_norm_sq": self.grad_norm_sq,
            "trace_cov": self.trace_cov,
            "noise_scale": self.noise_scale,
            "steps": self.steps,
        }


class NoiseScaleHook:
    """A DDP communication hook that measures the noise scale from the all-reduce DDP does anyway.

    For each gradient bucket it takes the squared norm of the local (this rank's) gradient before the
    all-reduce and of the averaged one after it; summed over the buckets of a step, these are ``||g_i||^2``
    (batch ``b``, this rank's examples per optimizer step) and ``||G_B||^2`` (``B = world * b``). Training is
    unchanged (the same average as DDP's default all-reduce); the cost is two squared norms per bucket.

    Args:
        batch_size: ``b``, examples per rank per synchronized backward (with gradient accumulation: all the
            micro-batches of the step); may be changed between steps.
        group: the process group (default: the default group).

    Use: ``hook = NoiseScaleHook(b); hook.register(ddp_model)``, train, then ``hook.result()`` on every rank
    (collective: one all-reduce of two numbers averages the per-rank estimates, so all ranks report the same)
    and ``hook.reset()`` for the next epoch. DDP takes one communication hook: this one replaces its default.
    """

    def __init__(self, batch_size: int, group: dist.ProcessGroup | None = None) -> None:
        self.batch_size, self.group = batch_size, group
        self.estimate = NoiseScaleEstimate()
        self._lock = threading.Lock()
        self._pending: list[float] | None = None  # [local_sq, global_sq, b] of the step in flight
        self._new_step = True

    def register(self, model: torch.nn.parallel.DistributedDataParallel) -> None:
        """Install the hook on a DDP model."""

        def hook(state: object, bucket: dist.GradBucket) -> torch.futures.Future[Tensor]:
            return self._hook(state, bucket)

        # DDP checks the annotations as objects; ``from __future__ import annotations`` made them strings
        hook.__annotations__ = {"state": object, "bucket": dist.GradBucket, "return": torch.futures.Future[Tensor]}
        model.register_comm_hook(None, hook)

    def _flush(self) -> None:
        if self._pending is not None:
            local_sq, global_sq, b = self._pending
            world = dist.get_world_size(self.group)
            self.estimate.update(local_sq, int(b), global_sq, int(b) * world)
        self._pending = None

    def _hook(self, state: object, bucket: dist.GradBucket) -> torch.futures.Future[Tensor]:
        if self._new_step:  # DDP waited for the previous step's buckets before its backward returned
            self._flush()
            self._pending = [0.0, 0.0, float(self.batch_size)]
        record = self._pending
        assert record is not None
        self._new_step = bucket.is_last()
        buffer = bucket.buffer()
        local_sq = float(buffer.detach().double().square().sum())
        buffer.div_(dist.get_world_size(self.group))
        future = dist.all_reduce(buffer, group=self.group, async_op=True).get_future()

        def done(fut: torch.futures.Future[Any]) -> Tensor:
            averaged: Tensor = fut.value()[0]
            with self._lock:
                record[0] += local_sq
                record[1] += float(averaged.detach().double().square().sum())
            return averaged

        return future.then(done)

    def discard_step(self) -> None:
        """Leave the step whose backward just ran out of the estimate (e.g. a batch whose slices differ)."""
        self._pending = None

    def result(self) -> dict[str, float]:
        """The estimate over the steps since the last :meth:`reset`, averaged over the ranks (collective)."""
        self._flush()
        self._new_step = True
        sums = torch.tensor([self.estimate._norm_sq, self.estimate._trace], dtype=torch.float64)
        dist.all_reduce(sums, group=self.group)
        world = dist.get_world_size(self.group)
        merged = NoiseScaleEstimate()
        merged.steps = self.estimate.steps
        merged._norm_sq, merged._trace = float(sums[0]) / world, float(sums[1]) / world
        return merged.result()

    def reset(self) -> None:
        """Forget all steps (e.g. at the start of an epoch)."""
        self._flush()
        self._new_step = True
        self.estimate.reset()
