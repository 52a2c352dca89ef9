"""Polyak averaging of the parameter trajectory (arithmetic mean or exponential moving average)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import update_bn as _swa_update_bn

from regopt._checks import is_int, is_real
from regopt.optim.dtensor import is_dtensor

__all__ = ["PolyakAveraging"]


class PolyakAveraging:
    r"""Keep a running average of a model's parameters and evaluate with it (Polyak & Juditsky, 1992).

    Gradient descent with a noisy gradient or a large step bounces around a minimum instead of settling in it;
    the average of the iterates sits closer to the minimum than any single one (Goodfellow et al. 2016,
    sec. 8.7.3). After each optimizer step, with ``theta_t`` the parameters after step ``t``::

        decay=None (arithmetic):  theta_bar_t = (1/t) sum_{i<=t} theta_i
                                             = theta_bar_{t-1} + (theta_t - theta_bar_{t-1}) / t
        decay in [0, 1) (EMA):     theta_bar_1 = theta_1
                                  theta_bar_t = decay * theta_bar_{t-1} + (1 - decay) * theta_t

    Both are one ``torch._foreach_lerp_`` over all averaged tensors, with weight ``1/t`` or ``1 - decay``
    (``1`` for the first averaged iterate). The EMA forgets the early trajectory, which suits non-convex
    training; the arithmetic mean is the textbook estimator for convex problems. ``t`` counts averaged
    iterates, i.e. updates after the first ``start_step`` ones.

    Only floating-point *parameters* are averaged. Buffers such as BatchNorm running statistics are not: they
    were estimated for the live weights, so after training call :meth:`update_bn` to recompute them for the
    averaged weights; the averaged view then uses those recomputed statistics (until the next
    :meth:`update_bn`: they are not refreshed by later :meth:`update` calls).

    The model is never changed except inside :meth:`averaged` (which copies the original values back bit for
    bit on exit) and by an explicit :meth:`copy_to`. Before the first averaged iterate the averaged view is the
    model itself.

    Args:
        model: the model whose parameters are averaged; it is held by reference.
        decay: ``None`` (default) for the arithmetic mean, or the EMA decay in ``[0, 1)`` (e.g. ``0.999``).
        start_step: number of initial :meth:`update` calls to ignore (default ``0``). Averaging from the start of
            training includes the poor early iterates far from any minimum, which pull the arithmetic mean
            away for a long time; start averaging once the loss has stopped dropping fast (as SWA does).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from regopt.optim.averaging import PolyakAveraging
        >>> model = nn.Linear(3, 1)
        >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
        >>> avg = PolyakAveraging(model, decay=0.9)
        >>> for _ in range(5):
        ...     opt.zero_grad()
        ...     model(torch.randn(8, 3)).pow(2).mean().backward()
        ...     opt.step()
        ...     avg.update()
        >>> with avg.averaged() as averaged_model, torch.no_grad():
        ...     y = averaged_model(torch.randn(2, 3))
        >>> avg.num_averaged
        5

    In regopt's Trainer: ``Trainer(..., post_step=[avg], eval_views=[avg.evaluation_view])``.

    References:
        Polyak, B. T. & Juditsky, A. B. (1992). Acceleration of stochastic approximation by averaging.
        SIAM Journal on Control and Optimization 30(4).
        Goodfellow, I., Bengio, Y. & Courville, A. (2016). Deep Learning, sec. 8.7.3 (Polyak averaging).
    """

    def __init__(self, model: nn.Module, decay: float | None = None, *, start_step: int = 0) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        if decay is not None and (not is_real(decay) or not 0 <= decay < 1):
            raise ValueError(f"decay must be in [0, 1) or None, got {decay!r}")
        if not is_int(start_step) or start_step < 0:
            raise ValueError(f"start_step must be a non-negative integer, got {start_step!r}")
        names, params = _float_params(model)
        if not params:
            raise ValueError("model has no floating-point parameters to average")
        self.model = model
        self.decay = None if decay is None else float(decay)
        self.start_step = start_step
        self._names = names
        self._params = params
        self._averages = [p.detach().clone() for p in params]
        self._updates_seen = 0  # calls to update(), skipped ones included
        self._num_averaged = 0  # t: iterates in the average
        self._bn_stats: dict[str, Tensor] | None = None  # BN buffers recomputed for the averages

    # ------------------------------------------------------------------------------------------ update
    @torch.no_grad()
    def update(self, model: nn.Module | None = None) -> None:
        """Fold the current parameters into the average; call after each optimizer step.

        ``model`` defaults to the model given at construction; another model must have the same parameter
        names and shapes (e.g. a copy trained elsewhere).
        """
        self._updates_seen += 1
        if self._updates_seen <= self.start_step:
            return
        params = self._params if model is None or model is self.model else self._matching_params(model)
        if self._num_averaged == 0:
            weight = 1.0
        elif self.decay is None:
            weight = 1.0 / (self._num_averaged + 1)
        else:
            weight = 1.0 - self.decay
        torch._foreach_lerp_(self._averages, params, weight)  # theta_bar += weight * (theta - theta_bar)
        self._num_averaged += 1

    def __call__(self, model: nn.Module) -> None:
        """Same as :meth:`update`, so the object is a Trainer ``post_step`` action."""
        self.update(model)

    @property
    def num_averaged(self) -> int:
        """Number of iterates folded into the average so far (``t``)."""
        return self._num_averaged

    # ------------------------------------------------------------------------------------------- views
    @contextmanager
    def averaged(self) -> Iterator[nn.Module]:
        """Swap the averaged weights (and BN statistics from :meth:`update_bn`, if any) into the model.

        Yields the model. On exit the model's own parameters and buffers are copied back exactly. Before any
        iterate has been averaged, the model is yielded unchanged.
        """
        if self._num_averaged == 0:
            yield self.model
            return
        with self._swapped(self._bn_stats or {}):
            yield self.model

    def evaluation_view(self) -> AbstractContextManager[nn.Module]:
        """``self.averaged()``, for the Trainer's ``eval_views``."""
        return self.averaged()

    @torch.no_grad()
    def copy_to(self, model: nn.Module | None = None) -> None:
        """Write the averages (and recomputed BN statistics, if any) into ``model`` permanently."""
        self._require_averages("copy_to")
        target = self.model if model is None else model
        params = self._params if target is self.model else self._matching_params(target)
        _copy_(params, self._averages)
        if self._bn_stats:
            buffers = dict(target.named_buffers())
            for name, value in self._bn_stats.items():
                buffers[name].copy_(value)

    def update_bn(self, batches: Iterable[Tensor]) -> None:
        """Recompute BatchNorm running statistics for the averaged weights and keep them for the averaged view.

        One pass of ``batches`` (tensors, or tuples whose first element is the input, already on the model's
        device) through the model with the averages swapped in, via :func:`torch.optim.swa_utils.update_bn`.
        The model's own buffers are restored afterwards; the recomputed ones are stored with the averages.
        Models without BatchNorm are left alone.
        """
        self._require_averages("update_bn")
        if not _bn_buffers(self.model):
            return
        saved = {name: b.detach().clone() for name, b in self.model.named_buffers()}
        try:
            with self._swapped({}):
                _swa_update_bn(batches, self.model)
                self._bn_stats = {name: b.detach().clone() for name, b in _bn_buffers(self.model).items()}
        finally:
            with torch.no_grad():
                for name, b in self.model.named_buffers():
                    b.copy_(saved[name])

    # ------------------------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """The averages, the counters and the recomputed BN statistics: enough to continue identically."""
        return {
            "decay": self.decay,
            "start_step": self.start_step,
            "updates_seen": self._updates_seen,
            "num_averaged": self._num_averaged,
            "names": list(self._names),
            "averages": [a.clone() for a in self._averages],
            "bn_stats": None if self._bn_stats is None else {k: v.clone() for k, v in self._bn_stats.items()},
        }

    @torch.no_grad()
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (for a model with the same parameter names and shapes)."""
        if list(state["names"]) != self._names:
            raise ValueError("state_dict was saved for a model with different parameter names")
        for name, avg, saved in zip(self._names, self._averages, state["averages"], strict=True):
            if avg.shape != saved.shape:
                raise ValueError(
                    f"state_dict average of {name} has shape {tuple(saved.shape)}, expected {tuple(avg.shape)}"
                )
        _copy_(self._averages, list(state["averages"]))
        self.decay, self.start_step = state["decay"], state["start_step"]
        self._updates_seen, self._num_averaged = state["updates_seen"], state["num_averaged"]
        bn = state["bn_stats"]
        self._bn_stats = None if bn is None else {k: v.clone() for k, v in bn.items()}

    # ----------------------------------------------------------------------------------------- helpers
    @contextmanager
    def _swapped(self, buffers: Mapping[str, Tensor]) -> Iterator[None]:
        """Copy the averages (and ``buffers`` by name) into the model; copy the saved originals back on exit."""
        live_buffers = dict(self.model.named_buffers())
        with torch.no_grad():
            saved_params = [p.detach().clone() for p in self._params]
            saved_buffers = {name: live_buffers[name].detach().clone() for name in buffers}
            _copy_(self._params, self._averages)
            for name, value in buffers.items():
                live_buffers[name].copy_(value)
        try:
            yield
        finally:
            with torch.no_grad():
                _copy_(self._params, saved_params)
                for name, value in saved_buffers.items():
                    live_buffers[name].copy_(value)

    def _matching_params(self, model: nn.Module) -> list[Tensor]:
        names, params = _float_params(model)
        if names != self._names:
            raise ValueError("model's floating-point parameters differ in names from the averaged model's")
        return params

    def _require_averages(self, what: str) -> None:
        if self._num_averaged == 0:
            raise RuntimeError(f"{what}: no iterate has been averaged yet (call update() after optimizer steps)")


def _copy_(targets: list[Tensor], sources: list[Tensor]) -> None:
    """``targets[i].copy_(sources[i])``: one ``torch._foreach_copy_``, or one copy each for DTensors (FSDP2, tensor
    parallel), which have no sharding rule for the foreach copy."""
    if any(is_dtensor(t) for t in (*targets, *sources)):
        for target, source in zip(targets, sources, strict=True):
            target.copy_(source)
    else:
        torch._foreach_copy_(targets, sources)


def _float_params(model: nn.Module) -> tuple[list[str], list[Tensor]]:
    named = [(n, p) for n, p in model.named_parameters() if p.is_floating_point()]
    return [n for n, _ in named], [p for _, p in named]


def _bn_buffers(model: nn.Module) -> dict[str, Tensor]:
    """The running statistics of every BatchNorm layer, by their name in ``model.named_buffers()``."""
    out: dict[str, Tensor] = {}
    for module_name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            for name, buffer in module.named_buffers(recurse=False):
                out[f"{module_name}.{name}" if module_name else name] = buffer
    return out
