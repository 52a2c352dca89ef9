"""Run directories: a config in, ``runs/<name>/`` out.

Layout of a run directory::

    config.toml     the resolved config (every default filled in)
    metrics.csv     one row per epoch: epoch, step, lr, train/val loss and error, seconds
    summary.json    best and final metrics, test metrics, wall time, parameter count, why training stopped
    checkpoint.pt   the Trainer's full state, written atomically after every epoch
    curves.png      train vs validation error over epochs

Nothing is written until the whole config has been built (data loaded, model and optimizer constructed), an
existing directory is replaced only with ``force=True``, and ``resume=True`` continues from the checkpoint
only if the config is the one the run was started with.
"""

from __future__ import annotations

import csv
import io
import json
import platform
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w
import torch

from regopt.diagnostics import TrainingDiverged
from regopt.lab.after_early_stopping import continue_training, retrain
from regopt.lab.atomic import write_text
from regopt.lab.checkpoint import load_checkpoint
from regopt.lab.config import ConfigError, RunConfig, read_toml, to_toml_dict, validate
from regopt.lab.diagnosis import report_diagnostics
from regopt.lab.experiment import Experiment, build_experiment
from regopt.lab.report import plot_curves
from regopt.monitor import Monitor

CONFIG, METRICS, SUMMARY, CHECKPOINT, CURVES = (
    "config.toml",
    "metrics.csv",
    "summary.json",
    "checkpoint.pt",
    "curves.png",
)
METRIC_COLUMNS = ("epoch", "step", "lr", "train_loss", "train_error", "val_loss", "val_error", "seconds")


class RunDirError(ValueError):
    """A run directory that cannot be created, replaced or resumed as asked."""


@dataclass
class RunResult:
    path: Path
    summary: dict[str, Any]
    history: list[dict[str, float]]
    experiment: Experiment


def _first_difference(a: Any, b: Any, prefix: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            found = _first_difference(a.get(key), b.get(key), f"{prefix}{key}.")
            if found:
                return found
        return None
    return prefix.rstrip(".") if a != b else None


def prepare_run_dir(config: RunConfig, path: Path, *, resume: bool, force: bool) -> None:
    """Check that ``path`` may be used as asked, before anything is built or written."""
    if resume:
        if force:
            raise RunDirError("--resume and --force contradict each other: resume keeps the run, force replaces it")
        if not (path / CHECKPOINT).is_file():
            raise RunDirError(f"{path}: nothing to resume (no {CHECKPOINT})")
        saved = validate(read_toml(path / CONFIG), str(path / CONFIG))
        diff = _first_difference(to_toml_dict(saved), to_toml_dict(config))
        if diff:
            raise RunDirError(f"{path}: cannot resume: config differs from the run's {CONFIG} at {diff}")
    elif path.exists() and any(path.iterdir()):
        if not force:
            raise RunDirError(f"{path}: already exists; pass --force to replace it or --resume to continue it")
        if not (path / CONFIG).is_file():
            raise RunDirError(f"{path}: exists and is not a run directory (no {CONFIG}); refusing to replace it")


def write_metrics(path: Path, history: Sequence[dict[str, float]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=METRIC_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    write_text(path, buffer.getvalue())


def read_metrics(path: str | Path) -> list[dict[str, float]]:
    """Rows of a ``metrics.csv`` as dicts of floats."""
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


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
        "parameters": experiment.parameters,
        "stop_reason": trainer.stop_reason,
        "device": str(experiment.device),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def run(
    config: RunConfig,
    *,
    out: str | Path = "runs",
    resume: bool = False,
    force: bool = False,
    progress: bool = False,
    extra_monitors: Sequence[Monitor] = (),
) -> RunResult:
    """Train ``config`` into ``out/<name>/`` and return its summary; see the module docstring."""
    path = Path(out) / config.name
    prepare_run_dir(config, path, resume=resume, force=force)
    experiment = build_experiment(config, checkpoint_path=path / CHECKPOINT, progress=progress)
    experiment.trainer.monitors.extend(extra_monitors)
    if resume:
        try:
            experiment.trainer.load_state_dict(load_checkpoint(path / CHECKPOINT, map_location=experiment.device))
        except (KeyError, ValueError, RuntimeError) as err:
            raise RunDirError(f"{path / CHECKPOINT}: does not fit this config ({err})") from None
    elif path.exists() and force:
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    write_text(path / CONFIG, tomli_w.dumps(to_toml_dict(config)))
    found: dict[str, Any] = {}
    try:
        history = experiment.trainer.fit()
    except TrainingDiverged as err:  # the last good checkpoint stays; say what happened beside it
        experiment.trainer.stop_reason = str(err)
        diverged = {**summarize(experiment, experiment.trainer.history, {}), "diverged": True}
        write_text(path / SUMMARY, json.dumps(diverged, indent=2) + "\n")
        raise
    finally:  # also on Ctrl-C or divergence: keep what was measured
        write_metrics(path / METRICS, experiment.trainer.history)
        if experiment.diagnostics is not None:
            found = report_diagnostics(experiment.diagnostics, path)
    evaluated, after = use_validation_data(config, experiment)
    test = evaluated.trainer.test() if config.train.evaluate_test else {}
    restored = experiment.early_stopping is not None and config.regularize.early_stopping.restore_best  # type: ignore[union-attr]
    final_epoch = experiment.early_stopping.best_epoch if restored and not after else None  # type: ignore[union-attr]
    summary = summarize(experiment, history, test, final_epoch)
    if found:
        summary["diagnostics"] = found
    if experiment.early_stopping is not None:
        summary["early_stopping"] = {
            "best_epoch": experiment.early_stopping.best_epoch,
            "stopped_epoch": experiment.early_stopping.stopped_epoch,
            "restored_best": config.regularize.early_stopping.restore_best,  # type: ignore[union-attr]
            **({"then": after} if after else {}),
        }
    write_text(path / SUMMARY, json.dumps(summary, indent=2) + "\n")
    plot_curves(history, path / CURVES, title=config.name, error_label=summary["error_metric"])
    return RunResult(path=path, summary=summary, history=history, experiment=experiment)


def use_validation_data(config: RunConfig, experiment: Experiment) -> tuple[Experiment, dict[str, Any]]:
    """After early stopping: restore the best weights if training ran to the end, then Algorithm 7.2 or 7.3
    as configured. Returns the experiment whose model the test evaluates, and what was done."""
    stopper, options = experiment.early_stopping, config.regularize.early_stopping
    if stopper is None or options is None or stopper.best_epoch is None:
        return experiment, {}
    if options.restore_best and stopper.stopped_epoch is None and stopper.best_epoch != experiment.trainer.epoch:
        stopper.restore()  # training used every epoch: still evaluate the best ones, as a stop would have
    if options.then == "retrain":
        return retrain(config, experiment, stopper)
    if options.then == "continue":
        return experiment, continue_training(experiment, stopper)
    return experiment, {}


def load_run(path: str | Path) -> tuple[dict[str, Any], list[dict[str, float]]]:
    """The summary and metrics of a finished run directory; :class:`RunDirError` if it is not one."""
    path = Path(path)
    for name in (SUMMARY, METRICS):
        if not (path / name).is_file():
            raise RunDirError(f"{path}: not a finished run directory (no {name})")
    try:
        summary = json.loads((path / SUMMARY).read_text())
        history = read_metrics(path / METRICS)
    except (json.JSONDecodeError, ValueError, KeyError) as err:
        raise RunDirError(f"{path}: unreadable run files ({err})") from None
    return summary, history


__all__ = ["ConfigError", "RunDirError", "RunResult", "load_run", "read_metrics", "run", "summarize"]
