"""Early stopping (Goodfellow et al. 2016, sec. 7.8): keep the parameters of the best validation epoch.

:class:`EarlyStopping` is Algorithm 7.1 as a :class:`~regopt.monitor.Monitor`; :func:`algorithm_7_2` and
:func:`algorithm_7_3` (in :mod:`regopt.regularize.after_early_stopping`, re-exported here) are the book's two ways
to put the validation data back into training afterwards.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any, Literal

import torch
from torch import Tensor, nn

from regopt._checks import check_int, check_real
from regopt.monitor import Monitor
from regopt.regularize.after_early_stopping import algorithm_7_2, algorithm_7_3

__all__ = ["EarlyStopping", "algorithm_7_2", "algorithm_7_3"]  # 7.2 and 7.3 live in after_early_stopping


class EarlyStopping(Monitor):
    r"""Stop when a validation metric has not improved for ``patience`` epochs; keep the best parameters.

    Algorithm 7.1 of Goodfellow et al. (2016), with ``n`` the steps per epoch and ``p`` the patience::

        theta* <- theta;  i* <- 0;  v <- inf;  j <- 0
        while j < p:
            train for n steps;  i <- i + n;  v' <- ValidationSetError(theta)
            if v' < v:   j <- 0;  theta* <- theta;  i* <- i;  v <- v'      # improvement
            else:        j <- j + 1
        best parameters theta*, best number of steps i*

    Call :meth:`after_epoch` after each evaluation; it returns ``(stop, reason)``. Semantics are those of Keras'
    and Lightning's callbacks: an epoch improves when ``value < best - min_delta`` (mode ``"min"``) or
    ``value > best + min_delta`` (mode ``"max"``); an improvement resets the wait counter ``j`` (:attr:`wait`),
    any other epoch increments it, and training stops once ``wait >= patience``. A NaN value is never an
    improvement (the book's ``v' < v`` is false for NaN), so a diverged run runs out of patience. Epochs
    ``<= start_epoch`` are ignored entirely (no best, no waiting), for a warm-up during which the metric is noisy.

    With a ``model`` and ``restore_best=True``, a copy of ``model.state_dict()`` (parameters and buffers) is
    taken at each improvement (theta*) and loaded back into the model when stopping. If training ends without a
    stop, call :meth:`restore` yourself. With an ``optimizer`` that has an ``evaluation_view()``, the copy is
    taken inside that view and restored so that the view shows it again (see the Note). :attr:`best_step` is
    ``i*`` (the ``"step"`` entry of the metrics at the best epoch), the input of :func:`algorithm_7_2`. Once
    stopped, later calls return the same decision.

    Args:
        model: the model whose best weights are kept; ``None`` to only decide (default ``None``).
        monitor: the metrics key to watch (default ``"val_error"``).
        mode: ``"min"``, ``"max"``, or ``"auto"`` (default): ``"max"`` if ``monitor`` contains ``"acc"``,
            else ``"min"``.
        patience: ``p``, epochs without improvement before stopping, ``>= 1`` (default ``10``).
        min_delta: the smallest change that counts as an improvement, ``>= 0`` (default ``0.0``).
        restore_best: keep the best weights and load them back on stop (default ``True``; needs ``model``).
        start_epoch: ignore epochs ``1..start_epoch`` (default ``0``).
        optimizer: the training optimizer (default ``None``); if it has an ``evaluation_view()`` (regopt's
            Nesterov SGD and RMSProp), the best weights are copied inside it and restored through it. Optimizers
            without one are accepted and change nothing.

    Note:
        The Nesterov interim-point pitfall. regopt's Nesterov optimizers follow the chapter's Algorithm 8.3: between
        steps the parameters hold the *interim point* theta~ = theta + alpha v, where the next gradient is
        taken, and ``optimizer.evaluation_view()`` swaps theta itself in for evaluation. A hand-written loop that
        validates inside the view but lets the stopper copy the weights outside it saves theta~, weights whose
        validation error was never measured, and restores theta~, from which the next evaluation inside the view
        subtracts the last epoch's alpha v: neither is the model that was measured. Give the stopper the
        optimizer::

            optimizer = regopt.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
            stopper = EarlyStopping(model, monitor="val_loss", optimizer=optimizer)
            for epoch in range(1, 101):
                train_one_epoch(model, optimizer)
                with optimizer.evaluation_view():        # measure theta, not theta~
                    val_loss = validation_loss(model)
                stop, reason = stopper.after_epoch(epoch, {"val_loss": val_loss})  # copies theta, inside the view
                if stop:
                    break
            with optimizer.evaluation_view():            # theta* (the best epoch's val_loss, up to rounding)
                test_loss = evaluate(model, test_data)
                torch.save(model.state_dict(), "best.pt")

        On restore the parameters are set to theta* + alpha v, the interim point of theta* for the optimizer's
        current velocity v, so that the model is where the optimizer expects it: its ``evaluation_view()``
        shows theta* (to within rounding, as ``(theta* + alpha v) - alpha v``), and training can go on from
        theta* (Algorithm 7.3). Outside the view the parameters are that interim point, as always between
        Nesterov steps: evaluate and save inside the view. Call ``after_epoch`` outside the ``with`` block: a
        restore inside it would be undone when the view puts back the interim point it saved on entry.

    Example:
        >>> from torch import nn
        >>> model = nn.Linear(2, 1)
        >>> stopper = EarlyStopping(model, monitor="val_loss", patience=2)
        >>> for epoch, val_loss in enumerate([0.9, 0.5, 0.6, 0.7, 0.4], start=1):
        ...     stop, reason = stopper.after_epoch(epoch, {"val_loss": val_loss, "step": 10 * epoch})
        ...     if stop:
        ...         break
        >>> reason.split(" (")[0]
        'early stopping: val_loss did not improve for 2 epochs'
        >>> stopper.stopped_epoch, stopper.best_epoch, stopper.best_value, stopper.best_step
        (4, 2, 0.5, 20)

    In regopt's Trainer: ``Trainer(..., monitors=[EarlyStopping(model, monitor="val_loss")])``.

    References:
        Prechelt, L. (1998). Early stopping -- but when? In Neural Networks: Tricks of the Trade, LNCS 1524.
        Goodfellow, I., Bengio, Y. & Courville, A. (2016). Deep Learning, sec. 7.8 (Algorithms 7.1-7.3).
    """

    def __init__(
        self,
        model: nn.Module | None = None,
        *,
        monitor: str = "val_error",
        mode: Literal["min", "max", "auto"] = "auto",
        patience: int = 10,
        min_delta: float = 0.0,
        restore_best: bool = True,
        start_epoch: int = 0,
        optimizer: torch.optim.Optimizer | None = None,
    ) -> None:
        if model is not None and not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module or None, got {type(model).__name__}")
        if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer or None, got {type(optimizer).__name__}")
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(f"monitor must be a non-empty metric name, got {monitor!r}")
        if mode not in ("min", "max", "auto"):
            raise ValueError(f"mode must be 'min', 'max' or 'auto', got {mode!r}")
        check_int("patience", patience, 1)
        check_real("min_delta", min_delta)
        if not isinstance(restore_best, bool):
            raise ValueError(f"restore_best must be True or False, got {restore_best!r}")
        check_int("start_epoch", start_epoch, 0)
        self.model = model
        # where the evaluated weights are (Nesterov: theta = theta~ - alpha v); None: the parameters themselves
        self.view: Callable[[], AbstractContextManager[Any]] | None = getattr(optimizer, "evaluation_view", None)
        self.monitor = monitor
        if mode == "auto":
            mode = "max" if "acc" in monitor.lower() else "min"
        self.mode: Literal["min", "max"] = "max" if mode == "max" else "min"
        self.patience = patience
        self.min_delta = float(min_delta)
        self.restore_best = restore_best
        self.start_epoch = start_epoch
        self.best_value: float | None = None  # v
        self.best_epoch: int | None = None
        self.best_step: int | None = None  # i*
        self.wait = 0  # j
        self.stopped_epoch: int | None = None
        self.reason = ""
        self._best_weights: dict[str, Tensor] | None = None  # theta*; replaced, never changed in place

    # ---------------------------------------------------------------------------------------- decision
    def improves(self, value: float) -> bool:
        """Whether ``value`` is an improvement on the best so far (``v' < v`` with ``v = inf`` at first)."""
        if self.mode == "min":
            best = math.inf if self.best_value is None else self.best_value
            return value < best - self.min_delta
        best = -math.inf if self.best_value is None else self.best_value
        return value > best + self.min_delta

    def after_epoch(self, epoch: int, metrics: Mapping[str, float]) -> tuple[bool, str]:
        """One pass of Algorithm 7.1's loop body; returns ``(stop, reason)`` (``epoch`` is 1-based)."""
        if self.stopped_epoch is not None:
            return True, self.reason
        if self.monitor not in metrics:
            raise KeyError(
                f"early stopping monitors {self.monitor!r}, which is not in the metrics "
                f"(available: {', '.join(sorted(map(str, metrics))) or 'none'})"
            )
        if epoch <= self.start_epoch:
            return False, ""
        value = float(metrics[self.monitor])
        if self.improves(value):
            self.best_value, self.best_epoch, self.wait = value, epoch, 0
            self.best_step = int(metrics["step"]) if "step" in metrics else None
            if self.model is not None and self.restore_best:
                with self.view() if self.view is not None else contextlib.nullcontext():  # theta*, as evaluated
                    self._best_weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            return False, ""
        self.wait += 1
        if self.wait < self.patience:
            return False, ""
        self.stopped_epoch = epoch
        if self.best_epoch is None:
            best = f"no improvement since epoch {self.start_epoch + 1}; last value {value:.4g}"
        else:
            best = f"best {self.best_value:.4g} at epoch {self.best_epoch}"
        self.reason = (
            f"early stopping: {self.monitor} did not improve for {self.wait} epochs (patience {self.patience}; {best})"
        )
        if self._best_weights is not None:
            self.restore()
            self.reason += f"; restored the weights of epoch {self.best_epoch}"
        return True, self.reason

    # ------------------------------------------------------------------------------------------ weights
    @property
    def best_weights(self) -> dict[str, Tensor] | None:
        """theta*: the model's ``state_dict`` at the best epoch (``None`` before any improvement). Read only."""
        return self._best_weights

    def restore(self) -> None:
        """Load the best weights back into the model (done automatically on stop when ``restore_best``).

        Does nothing before the first improvement (there is nothing better than the current weights to go
        back to). Raises ``RuntimeError`` if no weights are kept (no ``model``, or ``restore_best=False``).

        With an optimizer's ``evaluation_view()``, which moves the parameters by a shift (Nesterov's -alpha v),
        the parameters become theta* minus that shift, so that the view shows theta* (see the class Note).
        """
        if self.model is None or not self.restore_best:
            raise RuntimeError("EarlyStopping keeps no weights to restore: it needs a model and restore_best=True")
        if self._best_weights is None:
            return
        self.model.load_state_dict(self._best_weights)
        if self.view is not None:
            params = [p for p in self.model.parameters()]
            with torch.no_grad():
                with self.view():
                    shifted = [p.detach().clone() for p in params]  # theta* - alpha v
                for p, inside in zip(params, shifted, strict=True):
                    p.add_(p - inside)  # theta* + alpha v: the view now shows theta*

    # -------------------------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """The counters, the best value and theta* (tensors, shared: the snapshot is never changed in place)."""
        return {
            "monitor": self.monitor,
            "mode": self.mode,
            "best_value": self.best_value,
            "best_epoch": self.best_epoch,
            "best_step": self.best_step,
            "wait": self.wait,
            "stopped_epoch": self.stopped_epoch,
            "reason": self.reason,
            "best_weights": None if self._best_weights is None else dict(self._best_weights),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned, for the same metric, mode and model architecture."""
        if state["monitor"] != self.monitor or state["mode"] != self.mode:
            raise ValueError(
                f"early stopping state watches {state['monitor']!r} ({state['mode']}), "
                f"this one watches {self.monitor!r} ({self.mode})"
            )
        weights = state["best_weights"]
        best_weights = None
        if weights is not None and self.model is not None and self.restore_best:
            current = self.model.state_dict()
            if set(current) != set(weights):
                raise ValueError(
                    "early stopping state holds weights of another model "
                    f"(missing {sorted(set(current) - set(weights))}, unexpected {sorted(set(weights) - set(current))})"
                )
            # copies on the model's devices (a checkpoint is usually read onto the CPU)
            best_weights = {k: v.detach().to(current[k].device, copy=True) for k, v in weights.items()}
        self.best_value, self.best_epoch, self.best_step = state["best_value"], state["best_epoch"], state["best_step"]
        self.wait, self.stopped_epoch, self.reason = state["wait"], state["stopped_epoch"], state["reason"]
        self._best_weights = best_weights
