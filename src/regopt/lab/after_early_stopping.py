"""The book's two ways to use the validation data after early stopping (Goodfellow et al. 2016, sec. 7.8).

- Algorithm 7.2 (``then = "retrain"``): re-initialize the model and train it on training + validation data
  for the number of steps early stopping found best, i*.
- Algorithm 7.3 (``then = "continue"``): keep the early-stopped model and continue training on training +
  validation data until the loss on the validation examples falls below the training loss at the
  early-stopping point (checked once per epoch; capped at i* more steps, since it may never happen).

Both return a :class:`FinalModel`: the model the run ends with is then the new one, trained on the validation
examples too, so no validation error can be measured for it; the run directory describes it (its checkpoint,
test metrics and summary) and keeps the early-stopping phase's figures apart.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from regopt.lab.config import RunConfig
from regopt.lab.data import Dataset
from regopt.lab.experiment import Experiment, build_experiment
from regopt.lab.trainer import Trainer
from regopt.regularize import EarlyStopping, algorithm_7_2, algorithm_7_3


@dataclass
class FinalModel:
    """The model a run ends with after Algorithm 7.2 or 7.3, and how it came to be."""

    experiment: Experiment
    """Whose ``trainer.test()`` evaluates the final model."""
    trainer: Trainer
    """The trainer that trained the final model last: its state is the run's final checkpoint."""
    description: str
    """What the final model is, one line for ``summary.json`` (``final_model``)."""
    action: str
    """What was done after early stopping, a few words for the stop reason ("retrained ... (Algorithm 7.2)")."""
    info: dict[str, Any]
    """What was done, for ``summary.json`` (``early_stopping.then``)."""
    trained_on_validation: bool
    """Whether the final model took optimizer steps on the validation examples."""


def merged_data(data: Dataset) -> Dataset:
    """Training and validation examples together as the training split (validation kept for monitoring)."""
    return dataclasses.replace(
        data,
        x_train=torch.cat([data.x_train, data.x_val]),
        y_train=torch.cat([data.y_train, data.y_val]),
    )


def retrain(config: RunConfig, experiment: Experiment, stopper: EarlyStopping) -> FinalModel:
    """Algorithm 7.2: a fresh model trained on all data for i* = ``stopper.best_step`` steps."""
    best_steps = int(stopper.best_step or experiment.trainer.step)
    plain = config.regularize.model_copy(update={"early_stopping": None})
    fresh_config = config.model_copy(update={"regularize": plain})
    fresh = build_experiment(fresh_config, data=merged_data(experiment.data))
    trainer = fresh.trainer

    def train_for(steps: int) -> None:
        trainer.fit(max_epochs=trainer.epochs_for(steps), max_steps=steps)

    algorithm_7_2(train_for, best_steps)
    info = {"algorithm": "7.2 retrain on train+validation", "steps": trainer.step, "best_steps": best_steps}
    description = (
        f"a new model retrained from new initial weights on train+validation for {trainer.step} steps "
        f"(Algorithm 7.2; i* = {best_steps} steps from early stopping)"
    )
    action = f"retrained a new model on train+validation for {trainer.step} steps (Algorithm 7.2)"
    return FinalModel(fresh, trainer, description, action, info, trained_on_validation=trainer.step > 0)


def continue_training(experiment: Experiment, stopper: EarlyStopping) -> FinalModel:
    """Algorithm 7.3: continue on all data until the validation loss is below the training loss at i*."""
    best_row = next(row for row in experiment.trainer.history if row["epoch"] == stopper.best_epoch)
    target = best_row["train_loss"]
    old = experiment.trainer
    data = merged_data(experiment.data)
    trainer = Trainer(
        old.model,
        old.optimizer,
        data,
        epochs=1,  # one epoch at a time below
        batch_size=old.batch_size,
        loss_fn=old.loss_fn,
        batch_transforms=old.batch_transforms,
        penalties=old.penalties,
        terms=old.terms,
        grad_transforms=old.grad_transforms,
        post_step=old.post_step,
        eval_views=old.eval_views,
        seed=int(old.step),
        prediction=old.prediction,
        start_step=old.step,  # count the model's optimizer steps on from the early-stopping phase
        world=old.world,
    )
    steps_per_epoch = trainer.steps_per_epoch()

    def one_epoch() -> None:
        trainer.fit(max_epochs=trainer.epoch + 1)

    def validation_loss() -> float:
        return trainer.evaluate(experiment.data.x_val, experiment.data.y_val)[0]

    max_epochs = max(1, trainer.epochs_for(int(stopper.best_step or steps_per_epoch)))
    epochs = algorithm_7_3(one_epoch, validation_loss, target, max_steps=max_epochs, check_every=1)
    final_loss = validation_loss()
    taken = trainer.step - old.step
    info = {
        "algorithm": "7.3 continue on train+validation",
        "target_train_loss": target,
        "epochs": epochs,
        "steps": taken,
        "final_validation_loss": final_loss,
        "reached_target": final_loss <= target,
    }
    if stopper.best_weights is not None:
        weights = f"the early-stopped weights (epoch {stopper.best_epoch})"
    else:
        weights = f"the weights of epoch {old.epoch}"
    action = f"trained further on train+validation for {taken} steps (Algorithm 7.3)"
    if taken:
        description = f"{weights} {action}"
    else:
        description = f"{weights}: Algorithm 7.3 took no steps (the validation loss was already at its target)"
    return FinalModel(experiment, trainer, description, action, info, trained_on_validation=taken > 0)
