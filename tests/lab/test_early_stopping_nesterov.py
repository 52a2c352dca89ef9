"""In the lab, early stopping with a Nesterov optimizer restores the weights that were evaluated: between steps
the parameters hold the interim point theta + alpha v, so a snapshot taken outside the optimizer's evaluation
view would restore a model whose validation loss is not the best one recorded."""

from __future__ import annotations

import math

from regopt.lab.config import validate
from regopt.lab.experiment import build_experiment


def test_restored_model_scores_the_best_recorded_validation_loss() -> None:
    config = validate(
        {
            "data": {"name": "moons", "num_samples": 400},
            "model": {"name": "mlp", "widths": [16]},
            "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True},
            "train": {"epochs": 40, "batch_size": 32},
            "regularize": {"early_stopping": {"patience": 2, "monitor": "val_loss"}},
        }
    )
    experiment = build_experiment(config)
    trainer, stopper = experiment.trainer, experiment.early_stopping
    assert stopper is not None
    history = trainer.fit()
    assert stopper.stopped_epoch is not None, "the run should stop early for this test to mean anything"
    best = min(row["val_loss"] for row in history)
    loss, _ = trainer.evaluate(experiment.data.x_val, experiment.data.y_val)  # inside the evaluation view
    # Same weights, same data, same code path as the epoch's evaluation: equal up to float32 rounding of the
    # restore (theta* + alpha v - alpha v), far below the gap to the interim point's loss (~4% here).
    assert math.isclose(loss, best, rel_tol=1e-4), (loss, best)
