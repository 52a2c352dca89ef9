"""The book's two ways to use the validation data after early stopping (Goodfellow et al. 2016, sec. 7.8).

- Algorithm 7.2 (``then = "retrain"``): re-initialize the model and train it on training + validation data
  for the number of steps early stopping found best, i*.
- Algorithm 7.3 (``then = "continue"``): keep the early-stopped model and continue training on training +
  validation data until the loss on the validation examples falls below the training loss at the
  early-stopping point (checked once per epoch; capped at i* more steps, since it may never happen).

Both return a dict for ``summary.json``; the model under evaluation afterwards is the new one.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from regopt.lab.config import RunConfig
from regopt.lab.data import Dataset
from regopt.lab.experiment import Experiment, build_experiment
from regopt.lab.trainer import Trainer
from regopt.regularize import EarlyStopping, algorithm_7_2, algorithm_7_3


def merged_data(data: Dataset) -> Dataset:
    """Training and validation examples together as the training split (validation kept for monitoring)."""
    return dataclasses.replace(
        data,
        x_train=torch.cat([data.x_train, data.x_val]),
        y_train=torch.cat([data.y_train, data.y_val]),
    )


def retrain(config: RunConfig, experiment: Experiment, stopper: EarlyStopping) -> tuple[Experiment, dict[str, Any]]:
    """Algorithm 7.2: a fresh model trained on all data for i* = ``stopper.best_step`` steps."""
    best_steps = int(stopper.best_step or experiment.trainer.step)
    plain = config.regularize.model_copy(update={"early_stopping": None})
    fresh_config = config.model_copy(update={"regularize": plain})
    fresh = build_experiment(fresh_config, data=merged_data(experiment.data))
    trainer = fresh.trainer

    def train_for(steps: int) -> None:
        trainer.max_steps = steps
        trainer.epochs = -(-steps // trainer.steps_per_epoch())
        trainer.fit()

    algorithm_7_2(train_for, best_steps)
    return fresh, {"algorithm": "7.2 retrain on train+validation", "steps": trainer.step, "best_steps": best_steps}


def continue_training(experiment: Experiment, stopper: EarlyStopping) -> dict[str, Any]:
    """Algorithm 7.3: continue on all data until the validation loss is below the training loss at i*."""
    best_row = next(row for row in experiment.trainer.history if row["epoch"] == stopper.best_epoch)
    target = best_row["train_loss"]
    old = experiment.trainer
    data = merged_data(experiment.data)
    trainer = Trainer(
        old.model,
        old.optimizer,
        data,
        epochs=1,
        batch_size=old.batch_size,
        loss_fn=old.loss_fn,
        batch_transforms=old.batch_transforms,
        penalties=old.penalties,
        grad_transforms=old.grad_transforms,
        post_step=old.post_step,
        eval_views=old.eval_views,
        seed=int(old.step),
    )
    trainer.epochs = 0
    steps_per_epoch = trainer.steps_per_epoch()

    def one_epoch() -> None:
        trainer.epochs += 1
        trainer.stop_reason = ""
        trainer.fit()

    def validation_loss() -> float:
        return trainer.evaluate(experiment.data.x_val, experiment.data.y_val)[0]

    max_epochs = max(1, -(-int(stopper.best_step or steps_per_epoch) // steps_per_epoch))
    epochs = algorithm_7_3(one_epoch, validation_loss, target, max_steps=max_epochs, check_every=1)
    return {
        "algorithm": "7.3 continue on train+validation",
        "target_train_loss": target,
        "epochs": epochs,
        "steps": trainer.step,
        "final_validation_loss": validation_loss(),
        "reached_target": validation_loss() <= target,
    }
