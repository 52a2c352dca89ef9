"""Stopping hopeless trials of ``regopt tune`` early, without stopping the ones that look like the best.

Optuna's median rule (Golovin et al. 2017, "Google Vizier") stops a trial at epoch ``s`` when its best validation
error so far is worse than the median of the finished trials' errors at epoch ``s``. Alone, and early, it stops
the trials a search most needs: a slow starter that ends best (small lr, strong regularization) is above the
median for its first epochs, and so is every near-copy of it that TPE proposes. :class:`NearBestMedianPruner`
therefore stops a trial only when all of these hold:

* at least half of the epochs have run (the warm-up), at least 3 trials have finished, and at least 3 of them
  reported epoch ``s`` (the median is taken at the same epoch, over enough trials);
* the median rule says so;
* the trial is also worse than the best finished trial was by epoch ``s`` (best value so far, ``b_s``), by more
  than that trial's own noise there: ``max(0.1 * b_s, |c_s - c_{s-1}|, |c_{s+1} - c_s|)`` with ``c`` its curve.
  A trial within one epoch's movement of the best trial's curve (or 10% of it) may yet end as good.
"""

from __future__ import annotations

from collections.abc import Mapping

import optuna
from optuna.pruners import BasePruner, MedianPruner
from optuna.trial import FrozenTrial

from regopt.monitor import Monitor

RELATIVE_NOISE = 0.1
"""The least tolerance around the best trial's curve, as a fraction of its value."""


class PruneHopeless(Monitor):
    """Report each epoch's validation error to the trial and stop it when Optuna's pruner says so."""

    def __init__(self, trial: optuna.Trial, metric: str = "val_error") -> None:
        self.trial, self.metric = trial, metric

    def after_epoch(self, epoch: int, metrics: Mapping[str, float]) -> tuple[bool, str]:
        self.trial.report(metrics[self.metric], epoch)
        if self.trial.should_prune():
            for key in ("train_error", "val_error"):  # where it stopped: drawn as pruned in curve.png
                if metrics.get(key) is not None:
                    self.trial.set_user_attr(f"final_{key}", metrics[key])
            raise optuna.TrialPruned(f"pruned at epoch {epoch}: {self.metric} {metrics[self.metric]:.4f}")
        return False, ""


def _best_so_far(curve: Mapping[int, float], step: int) -> float | None:
    values = [v for s, v in curve.items() if s <= step]
    return min(values) if values else None


def near_best(study: optuna.Study, trial: FrozenTrial, relative: float = RELATIVE_NOISE) -> bool:
    """Whether ``trial`` is, at its last epoch, within noise of the best finished trial at that epoch."""
    step = trial.last_step
    try:
        best = study.best_trial
    except ValueError:  # no finished trial yet
        return True
    if step is None:
        return True
    mine, theirs = _best_so_far(trial.intermediate_values, step), _best_so_far(best.intermediate_values, step)
    if mine is None or theirs is None:
        return True
    curve = best.intermediate_values
    moves = [abs(curve[s + 1] - curve[s]) for s in (step - 1, step) if s in curve and s + 1 in curve]
    return mine <= theirs + max([relative * abs(theirs), *moves])


class NearBestMedianPruner(BasePruner):
    """The median rule after a warm-up of half the epochs, sparing trials near the best one (see the module)."""

    def __init__(self, epochs: int, relative: float = RELATIVE_NOISE) -> None:
        self.median = MedianPruner(n_startup_trials=3, n_warmup_steps=max(1, epochs // 2), n_min_trials=3)
        self.relative = relative

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        return self.median.prune(study, trial) and not near_best(study, trial, self.relative)
