"""Continue a run from its checkpoint, including a run lengthened on resume (see :mod:`regopt.lab.run_dir`).

A finished run's checkpoint records why it stopped. To continue it exactly as the longer run would have gone:

- the epochs (or steps) ran out: :meth:`~regopt.lab.trainer.Trainer.fit` takes its limits as totals, so it runs
  on to the new ``epochs``; a restored ``"completed N epochs"`` (or ``"reached N steps"``) is lifted.
- early stopping stopped it (its wait counter reached the old patience) and the new patience is larger: the
  stop is lifted (``stopped_epoch`` and ``reason`` cleared, the counters and the best weights kept, so it decides
  from there as the patient run did), and the model gets back the weights it had at the stop, before early
  stopping replaced them with the best ones (kept by :class:`LiveWeights` in the checkpoint).

A checkpoint whose top level describes a different final model (after Algorithm 7.2 or 7.3, or the best weights
restored at the end) keeps the state training continues from under ``"training_state"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from regopt.lab.checkpoint import CheckpointError, load_checkpoint
from regopt.lab.checkpoint_check import check_trainer_state
from regopt.lab.experiment import Experiment
from regopt.lab.run_dir import RunDirError, RunPlan
from regopt.lab.trainer_state import upgraded
from regopt.monitor import Monitor
from regopt.regularize import EarlyStopping

TRAINING_STATE = "training_state"


class LiveWeights(Monitor):
    """The weights of the latest epoch, taken before early stopping may replace them with its best ones.

    Put it before the :class:`~regopt.regularize.EarlyStopping` among a trainer's monitors. It copies the weights
    only in an epoch where early stopping could stop (``wait + 1 >= patience``), and its state holds them once
    early stopping has stopped, so every checkpoint from then on carries the weights training would continue from.
    """

    def __init__(self, model: nn.Module, stopper: EarlyStopping) -> None:
        self.model, self.stopper = model, stopper
        self.weights: dict[str, Tensor] | None = None

    def after_epoch(self, epoch: int, metrics: Mapping[str, float]) -> tuple[bool, str]:
        if self.stopper.stopped_epoch is None and self.stopper.wait + 1 >= self.stopper.patience:
            self.weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        return False, ""

    def state_dict(self) -> dict[str, Any]:
        if self.stopper.stopped_epoch is None or self.weights is None:
            return {}
        return {"weights": self.weights}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.weights = state.get("weights")


def training_state(state: dict[str, Any]) -> dict[str, Any]:
    """The Trainer state a checkpoint continues from (its top level, or its ``"training_state"``)."""
    inner = state.get(TRAINING_STATE)
    return upgraded(dict(inner) if isinstance(inner, dict) else dict(state))


def resume_training(
    experiment: Experiment, checkpoint: Path, plan: RunPlan, live: LiveWeights | None, *, run_monitors: int = 0
) -> list[str]:
    """Load the run's checkpoint into ``experiment``'s trainer; lift the stops a lengthened run no longer has.

    ``run_monitors`` is the number of stateless-at-start monitors the run directory put first among the trainer's
    monitors; a checkpoint written before some of them existed (the metrics writer and live weights before issue
    14, the best weights' tracker before issue 17) lacks the first entries and gets empty ones. Returns notes for
    the summary. Raises :class:`CheckpointError` (one line, naming the field) if the checkpoint's structure does
    not fit this trainer (checked before any of it is used), :class:`RunDirError` if loading it still fails.
    """
    trainer, stopper = experiment.trainer, experiment.early_stopping
    if trainer.world is not None:  # rank 0 reads the file (on its machine) and hands every rank the same state
        saved = trainer.world.from_main(lambda: load_checkpoint(checkpoint))
    else:
        saved = load_checkpoint(checkpoint, map_location=experiment.device)
    if TRAINING_STATE in saved and not isinstance(saved[TRAINING_STATE], dict):
        found = type(saved[TRAINING_STATE]).__name__
        raise CheckpointError(f"{checkpoint}: {TRAINING_STATE} is a {found}, expected a dict")
    state = training_state(saved)
    hooks = state.get("hook_states")
    missing = len(trainer.stateful()) - len(hooks) if isinstance(hooks, list) else 0
    if isinstance(hooks, list) and 0 < missing <= run_monitors:  # the run monitors added since, at the front
        state["hook_states"] = [{} for _ in range(missing)] + hooks
    if experiment.pretraining is not None:  # the network and optimizer of the stage the checkpoint holds
        experiment.pretraining.prepare_resume(trainer, state)
    check_trainer_state(state, trainer, checkpoint, prefix=f"{TRAINING_STATE}." if TRAINING_STATE in saved else "")
    try:
        trainer.load_state_dict(state)
    except (KeyError, ValueError, RuntimeError) as err:
        raise RunDirError(f"{checkpoint}: does not fit this config ({err})") from None
    if not plan.extended:
        return []
    notes: list[str] = []
    if stopper is not None and stopper.stopped_epoch is not None and stopper.wait < stopper.patience:
        stopped_by_it, epoch = trainer.stop_reason == stopper.reason, stopper.stopped_epoch
        stopper.stopped_epoch, stopper.reason = None, ""
        if stopped_by_it:
            trainer.stop_reason = ""
        if live is not None and live.weights is not None:
            trainer.model.load_state_dict(live.weights)
        elif stopper.restore_best and stopper.best_weights is not None:
            notes.append(f"continues from the best weights (epoch {stopper.best_epoch}): those at the stop are lost")
        patience = stopper.patience
        notes.append(f"early stopping had stopped the run at epoch {epoch}; continuing with patience {patience}")
    if trainer.stopped_at_limits() and not trainer.limit_reached():
        trainer.stop_reason = ""  # train.epochs raised: fit() would lift it too; cleared here so no note says so
    if trainer.stop_reason:
        notes.append(f"nothing to extend: the run had stopped ({trainer.stop_reason})")
    return notes


__all__ = ["TRAINING_STATE", "LiveWeights", "resume_training", "training_state"]
