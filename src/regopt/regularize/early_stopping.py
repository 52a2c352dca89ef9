"""Early stopping (Goodfellow et al. 2016, sec. 7.8): keep the parameters of the best validation epoch.

:class:`EarlyStopping` is Algorithm 7.1 as a :class:`~regopt.monitor.Monitor`; :func:`algorithm_7_2` and
:func:`algorithm_7_3` are the book's two ways to put the validation data back into training afterwards.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Literal

from torch import Tensor, nn

from regopt.monitor import Monitor

__all__ = ["EarlyStopping", "algorithm_7_2", "algorithm_7_3"]


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
    stop, call :meth:`restore` yourself. :attr:`best_step` is ``i*`` (the ``"step"`` entry of the metrics at the
    best epoch), the input of :func:`algorithm_7_2`. Once stopped, later calls return the same decision.

    Args:
        model: the model whose best weights are kept; ``None`` to only decide (default ``None``).
        monitor: the metrics key to watch (default ``"val_error"``).
        mode: ``"min"``, ``"max"``, or ``"auto"`` (default): ``"max"`` if ``monitor`` contains ``"acc"``,
            else ``"min"``.
        patience: ``p``, epochs without improvement before stopping, ``>= 1`` (default ``10``).
        min_delta: the smallest change that counts as an improvement, ``>= 0`` (default ``0.0``).
        restore_best: keep the best weights and load them back on stop (default ``True``; needs ``model``).
        start_epoch: ignore epochs ``1..start_epoch`` (default ``0``).

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
    ) -> None:
        if model is not None and not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module or None, got {type(model).__name__}")
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(f"monitor must be a non-empty metric name, got {monitor!r}")
        if mode not in ("min", "max", "auto"):
            raise ValueError(f"mode must be 'min', 'max' or 'auto', got {mode!r}")
        if not _is_int(patience) or patience < 1:
            raise ValueError(f"patience must be an integer >= 1, got {patience!r}")
        if not _is_real(min_delta) or not math.isfinite(min_delta) or min_delta < 0:
            raise ValueError(f"min_delta must be a finite number >= 0, got {min_delta!r}")
        if not isinstance(restore_best, bool):
            raise ValueError(f"restore_best must be True or False, got {restore_best!r}")
        if not _is_int(start_epoch) or start_epoch < 0:
            raise ValueError(f"start_epoch must be an integer >= 0, got {start_epoch!r}")
        self.model = model
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
        """
        if self.model is None or not self.restore_best:
            raise RuntimeError("EarlyStopping keeps no weights to restore: it needs a model and restore_best=True")
        if self._best_weights is not None:
            self.model.load_state_dict(self._best_weights)

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


# ----------------------------------------------------------------------------------- Algorithms 7.2, 7.3
def algorithm_7_2(train_fn: Callable[[int], object], best_steps: int) -> None:
    """Retrain on all the data for the number of steps early stopping found (Goodfellow et al. 2016, Alg. 7.2).

    The algorithm::

        split the training set (X_train, y_train) into (X_subtrain, y_subtrain) and (X_valid, y_valid)
        run early stopping (Algorithm 7.1) from random theta, training on the subtrain part and validating on
            the valid part; it returns i*, the best number of steps      # EarlyStopping.best_step
        set theta to random values again
        train on (X_train, y_train) for i* steps

    This function is the last line: it calls ``train_fn(best_steps)``, which must train on the whole training
    set (subtrain and valid together) for exactly that many optimizer steps. Steps 1-3 are the caller's:
    run a loop with :class:`EarlyStopping` on the split, take ``best_step``, and re-initialize the model (and a
    fresh optimizer) before calling this.

    Note:
        The book leaves open whether to retrain for the same number of parameter updates or the same number of
        passes through the data; with more data, the same number of passes means more updates. This function
        passes steps; to retrain for the same passes, pass ``best_epoch * steps_per_epoch_on_all_data``.

    Args:
        train_fn: ``train_fn(steps)`` trains the re-initialized model on all the data for ``steps`` steps.
        best_steps: ``i*``, a positive integer (``EarlyStopping.best_step``).
    """
    if not callable(train_fn):
        raise TypeError(f"train_fn must be callable, got {type(train_fn).__name__}")
    if not _is_int(best_steps) or best_steps < 1:
        raise ValueError(f"best_steps must be a positive integer (i* from early stopping), got {best_steps!r}")
    train_fn(best_steps)


def algorithm_7_3(
    step_fn: Callable[[], object],
    validation_loss_fn: Callable[[], float],
    target: float,
    max_steps: int,
    check_every: int,
) -> int:
    """Continue training on all the data until the validation loss reaches the training loss at the early stop.

    Goodfellow et al. (2016), Algorithm 7.3::

        split the training set into (X_subtrain, y_subtrain) and (X_valid, y_valid)
        run early stopping (Algorithm 7.1) from random theta on the split; this updates theta
        eps <- J(theta, X_subtrain, y_subtrain)          # the training objective where early stopping stopped
        while J(theta, X_valid, y_valid) > eps:
            train on (X_train, y_train) for n steps

    This function is the loop: with ``target = eps`` it evaluates ``validation_loss_fn()`` (the objective on the
    old validation subset, now part of the training data), and while that is ``> target`` runs ``step_fn()``
    (one optimizer step on all the data) ``check_every`` (``n``) times. The condition is checked before any
    training, as in the book, so a loss already at or below the target takes no steps. The book notes that the
    loop may never end, as the validation objective need not reach ``eps``; it ends after ``max_steps`` steps
    (the last block shortened to fit) whatever the loss.

    Args:
        step_fn: runs one training step on all the data; its return value (e.g. the loss) is ignored.
        validation_loss_fn: the objective ``J`` on the validation subset at the current parameters.
        target: ``eps``, the training objective on the subtrain set at the early-stopping point (finite).
        max_steps: the most steps to take, ``>= 0``.
        check_every: ``n``, steps between evaluations, ``>= 1``.

    Returns:
        The number of steps taken (``max_steps`` if the target was never reached).

    Raises:
        FloatingPointError: if the validation loss is NaN (training has diverged; continuing cannot help).
    """
    if not callable(step_fn) or not callable(validation_loss_fn):
        raise TypeError("step_fn and validation_loss_fn must be callable")
    if not _is_real(target) or not math.isfinite(target):
        raise ValueError(f"target must be a finite number (the training loss at the early stop), got {target!r}")
    if not _is_int(max_steps) or max_steps < 0:
        raise ValueError(f"max_steps must be an integer >= 0, got {max_steps!r}")
    if not _is_int(check_every) or check_every < 1:
        raise ValueError(f"check_every must be an integer >= 1, got {check_every!r}")
    steps = 0
    while steps < max_steps:
        loss = float(validation_loss_fn())
        if math.isnan(loss):
            raise FloatingPointError(f"algorithm 7.3: the validation loss is NaN after {steps} steps")
        if loss <= target:  # the book's loop condition J(valid) > eps no longer holds
            break
        for _ in range(min(check_every, max_steps - steps)):
            step_fn()
            steps += 1
    return steps


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
