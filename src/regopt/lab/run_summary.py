"""``summary.json``: what a run's final model is and how it did, as strict JSON.

Every figure at the top level describes one model, the one the run ends with (the one in ``checkpoint.pt`` and
measured by ``test_*``):

- plain runs: the last epoch's weights, or early stopping's best ones when they were restored (``final_epoch``);
- after early stopping's Algorithm 7.2 or 7.3 (``then = "retrain"``/``"continue"``): the new model, trained on
  the validation examples too, so it has no validation error. ``best_val_error``, ``final_val_*`` and
  ``generalization_gap`` are then null, ``not_measured`` says why, ``final_model`` says what the model is,
  ``final_train_*`` are measured on the data it was trained on (train+validation), and the early-stopping
  phase's own figures (best and final validation error, stop reason) are kept under ``early_stopping``.

A number that is NaN or infinite (a diverged run) is written as null and its key listed under ``nonfinite``:
``NaN``/``Infinity`` are not JSON, and strict readers (``jq``, JavaScript, ``json.loads(parse_constant=...)``)
reject them.
"""

from __future__ import annotations

import json
import math
import platform
import re
from collections.abc import Sequence
from typing import Any

import torch

from regopt.lab.after_early_stopping import FinalModel
from regopt.lab.atomic import write_text
from regopt.lab.experiment import Experiment
from regopt.lab.precision import MixedPrecision

_FIGURES = (
    "epochs",
    "steps",
    "best_epoch",
    "best_val_error",
    "final_epoch",
    "final_train_error",
    "final_val_error",
    "final_train_loss",
    "final_val_loss",
    "generalization_gap",
    "stop_reason",
)
_VALIDATION = ("best_epoch", "best_val_error", "final_val_error", "final_val_loss", "generalization_gap")


def summarize(
    experiment: Experiment,
    history: Sequence[dict[str, float]],
    test: dict[str, float],
    final_epoch: int | None = None,
) -> dict[str, Any]:
    """Best and final metrics, generalization gap, wall time and parameter count.

    "Final" describes the weights the run ends with: those of ``final_epoch`` when early stopping restored
    an earlier epoch's weights, else the last epoch's.
    """
    trainer, config = experiment.trainer, experiment.config
    best = min(history, key=lambda row: row["val_error"]) if history else {}
    final = next((r for r in history if r["epoch"] == final_epoch), history[-1]) if history else {}
    return {
        "name": config.name,
        "task": experiment.data.task,
        "error_metric": "error rate" if experiment.data.task == "classification" else "mse",
        "epochs": trainer.epoch,
        "steps": trainer.step,
        "best_epoch": best.get("epoch"),
        "best_val_error": best.get("val_error"),
        "final_epoch": final.get("epoch"),
        "final_train_error": final.get("train_error"),
        "final_val_error": final.get("val_error"),
        "final_train_loss": final.get("train_loss"),
        "final_val_loss": final.get("val_loss"),
        "generalization_gap": (final["val_error"] - final["train_error"]) if final else None,
        **test,
        "wall_time_s": round(trainer.elapsed, 3),
        "parameters": experiment.parameter_count,
        "stop_reason": trainer.stop_reason,
        **_precision(trainer.precision),
        "device": str(experiment.device),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def _precision(precision: MixedPrecision) -> dict[str, Any]:
    """The forward pass's precision, and under float16 how many steps the loss scaler skipped (overflows)."""
    if precision.scaler is None:
        return {"precision": precision.precision}
    scale = precision.scaler.get_scale()
    return {"precision": precision.precision, "fp16_skipped_steps": precision.skipped_steps, "fp16_loss_scale": scale}


def describe_final_model(summary: dict[str, Any], final: FinalModel) -> dict[str, Any]:
    """``summary`` (of the early-stopping phase) rewritten to describe ``final``, the model after Algorithm 7.2
    or 7.3; the phase's figures move under ``early_stopping``. Returns a new dict."""
    phase = {key: summary.get(key) for key in _FIGURES}
    out = dict(summary)
    out["final_model"] = final.description
    early = dict(out.get("early_stopping", {}))
    out["early_stopping"] = {**early, **phase, "then": final.info}
    if not final.trained_on_validation:
        return out
    trainer = final.trainer
    train_loss, train_error = trainer.evaluate(trainer.data.x_train, trainer.data.y_train)
    continued = trainer is not final.experiment.trainer  # 7.3 counts epochs on from the phase's; 7.2 anew
    out.update(
        epochs=trainer.epoch + ((phase["epochs"] or 0) if continued else 0),
        steps=trainer.step,
        final_epoch=None,
        final_train_error=train_error,
        final_train_loss=train_loss,
        **dict.fromkeys(_VALIDATION),
    )
    why = "the final model was trained on the validation examples (the early-stopping phase's figure: early_stopping)"
    out["not_measured"] = {
        **dict.fromkeys(_VALIDATION, why),
        "final_epoch": "the final model is none of the epochs in metrics.csv (those are the early-stopping phase's)",
    }
    kept = str(phase["stop_reason"])
    if not continued:  # Algorithm 7.2 discards the restored weights: do not claim them
        kept = _without_restore(kept)
    out["stop_reason"] = f"{kept}; then {final.action}"
    return out


def _without_restore(reason: str) -> str:
    """A stop reason without its "; restored the weights of epoch N" (weights Algorithm 7.2 discards)."""
    return re.sub(r"; restored the weights of epoch \d+", "", reason)


def _finite(value: Any, key: str, nonfinite: list[str]) -> Any:
    if isinstance(value, dict):
        return {k: _finite(v, f"{key}.{k}" if key else str(k), nonfinite) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v, f"{key}.{i}", nonfinite) for i, v in enumerate(value)]
    if isinstance(value, float) and not math.isfinite(value):
        nonfinite.append(key)
        return None
    return value


def summary_json(summary: dict[str, Any]) -> str:
    """``summary`` as strict JSON text: NaN and infinities become null, their dotted keys listed in ``nonfinite``."""
    nonfinite: list[str] = []
    clean = _finite(summary, "", nonfinite)
    if nonfinite:
        clean["nonfinite"] = nonfinite
    return json.dumps(clean, indent=2, allow_nan=False) + "\n"


def write_summary(path: Any, summary: dict[str, Any]) -> None:
    """Write :func:`summary_json` of ``summary`` to ``path`` atomically."""
    write_text(path, summary_json(summary))


__all__ = ["describe_final_model", "summarize", "summary_json", "write_summary"]
