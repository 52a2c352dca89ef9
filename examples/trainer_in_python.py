"""The lab from Python: build a run from a config, add a penalty and a monitor of your own, train, evaluate.

    python examples/trainer_in_python.py

Every phase of the Trainer is a plain list, so a technique is one ``append``: here an L2 penalty
alpha/2 * ||w||^2 on the weight matrices (the chapter's Omega) and a monitor that stops when validation error
falls below a target.
"""

from __future__ import annotations

import torch

from regopt.lab.config import validate
from regopt.lab.experiment import build_experiment
from regopt.monitor import Monitor


class StopAtTarget(Monitor):
    """Stop once validation error is at or below ``target``."""

    def __init__(self, target: float) -> None:
        self.target = target

    def after_epoch(self, epoch: int, metrics) -> tuple[bool, str]:
        reached = metrics["val_error"] <= self.target
        return reached, f"validation error {metrics['val_error']:.3f} <= {self.target} at epoch {epoch}"


def main(epochs: int = 30) -> dict[str, float]:
    config = validate(
        {
            "data": {"name": "moons", "num_samples": 1000, "noise": 0.2},
            "model": {"name": "mlp", "widths": [64, 64]},
            "optimizer": {"name": "adam", "lr": 0.01},
            "train": {"epochs": epochs, "batch_size": 32},
        }
    )
    experiment = build_experiment(config)
    trainer = experiment.trainer
    alpha = 1e-4
    weights = [p for p in experiment.model.parameters() if p.dim() > 1]
    trainer.penalties.append(lambda model: alpha / 2 * sum(torch.sum(w * w) for w in weights))
    trainer.monitors.append(StopAtTarget(0.04))
    history = trainer.fit()
    test = trainer.test()
    print(f"{trainer.stop_reason}; {len(history)} epochs; test error {test['test_error']:.3f}")
    return test


if __name__ == "__main__":
    main()
