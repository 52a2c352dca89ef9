"""What to do after early stopping (Goodfellow et al. 2016, sec. 7.8): Algorithms 7.2 and 7.3.

Both put the validation data back into training once :class:`~regopt.regularize.EarlyStopping` (Algorithm 7.1)
has found where to stop: 7.2 retrains from scratch on all the data for the same number of steps, 7.3 continues
from the early-stopped parameters until the validation loss falls to the training loss at the stop.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from regopt._checks import check_int, is_finite_real, is_int

__all__ = ["algorithm_7_2", "algorithm_7_3"]


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
    if not is_int(best_steps) or best_steps < 1:
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
    if not is_finite_real(target):
        raise ValueError(f"target must be a finite number (the training loss at the early stop), got {target!r}")
    check_int("max_steps", max_steps, 0)
    check_int("check_every", check_every, 1)
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
