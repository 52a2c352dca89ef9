"""Run directories: a config in, ``runs/<name>/`` out.

Layout of a run directory::

    config.toml     the resolved config (every default filled in)
    metrics.csv     one row per epoch: epoch, step, lr, train/val loss and error, seconds (of training so far,
                    the epochs' evaluations excluded; rewritten atomically after every epoch, so a killed run shows
                    its curve so far)
    summary.json    the final model: best and final metrics, test metrics, wall time, parameter count, why
                    training stopped (strict JSON; see :mod:`regopt.lab.run_summary`)
    checkpoint.pt   the Trainer's full state, written atomically after every epoch; at the end, the final
                    model's (with the state training continues from under ``training_state`` if that differs)
    curves.png      train vs validation error over epochs
    tensorboard/    TensorBoard event files, with ``[logging] tensorboard = true`` (see
                    :mod:`regopt.lab.tensorboard_log`)
    report.html     one self-contained page of the run: summary, curves, diagnostics' figures and tables, config
                    (see :mod:`regopt.lab.html_report`)
    best.pt         the weights of the best validation epoch, with its epoch and metric, when ``[train]
                    keep_best = true`` or early stopping restores (see :mod:`regopt.lab.best_weights`)
    preprocessing.json  for a csv/npz data file: feature columns, input shape, output width, class names and
                    standardization statistics (see :mod:`regopt.lab.data.preprocessing`)

Under ``torchrun`` (see :mod:`regopt.lab.distributed`) every rank trains and rank 0 alone decides about the
directory and writes it: the other ranks' writes are :func:`~regopt.lab.atomic.silenced`.

``regopt predict`` and :func:`regopt.lab.load_run` use a run directory's model: ``checkpoint.pt``'s final model or
``best.pt``, with the preprocessing of its training data.

Nothing is written until the whole config has been built (data loaded, model and optimizer constructed), an
existing directory is replaced only with ``force=True``, and ``resume=True`` continues from the checkpoint
only if the config is the one the run was started with, or lengthens it (see :mod:`regopt.lab.run_dir`).
"""

from __future__ import annotations

import contextlib
import csv
import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w
import torch.distributed as dist

from regopt.diagnostics import TrainingDiverged
from regopt.lab.after_early_stopping import FinalModel, continue_training, retrain
from regopt.lab.atomic import remove_temp_files, silenced, write_csv, write_text, writes_here
from regopt.lab.best_weights import BEST, BestWeights, keeps_best
from regopt.lab.checkpoint import load_checkpoint, save_checkpoint
from regopt.lab.config import ConfigError, RunConfig, record_data_identity, to_toml_dict
from regopt.lab.data import write_preprocessing
from regopt.lab.diagnosis import report_diagnostics
from regopt.lab.distributed import World, join_launched_world
from regopt.lab.experiment import Experiment, build_experiment
from regopt.lab.report import plot_curves
from regopt.lab.run_dir import CHECKPOINT, CONFIG, CURVES, METRICS, SUMMARY, RunDirError, prepare_run_dir
from regopt.lab.run_resume import TRAINING_STATE, LiveWeights, resume_training, training_state
from regopt.lab.run_summary import describe_final_model, summarize, write_summary
from regopt.lab.tensorboard_log import TENSORBOARD, TensorBoardLog, log_hparams
from regopt.lab.trainer import Trainer
from regopt.monitor import Monitor

METRIC_COLUMNS = ("epoch", "step", "lr", "train_loss", "train_error", "val_loss", "val_error", "seconds")


@dataclass
class RunResult:
    path: Path
    summary: dict[str, Any]
    history: list[dict[str, float]]
    experiment: Experiment
    """The experiment whose model is the run's final model (a new one after ``then = "retrain"``)."""


def write_metrics(path: Path, history: Sequence[dict[str, float]]) -> None:
    write_csv(path, history, METRIC_COLUMNS)


def read_metrics(path: str | Path) -> list[dict[str, float]]:
    """Rows of a ``metrics.csv`` as dicts of floats."""
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


class MetricsWriter(Monitor):
    """Rewrites ``metrics.csv`` (atomically) with the trainer's history after every epoch."""

    def __init__(self, trainer: Trainer, path: Path) -> None:
        self.trainer, self.path = trainer, path

    def after_epoch(self, epoch: int, metrics: Mapping[str, float]) -> tuple[bool, str]:
        write_metrics(self.path, self.trainer.history)
        return False, ""


def _run_monitors(experiment: Experiment, path: Path) -> tuple[LiveWeights | None, int]:
    """Put the run directory's own monitors first, before any that may stop or raise: the best weights' tracker
    (``best.pt``), the metrics writer, the TensorBoard log (``[logging] tensorboard``), and (with early stopping
    that restores) the weights it is about to replace. Returns the latter and their number. The tracker comes
    first: a checkpoint written before it existed lacks only its entry, at the front (see
    :func:`~regopt.lab.run_resume.resume_training`)."""
    trainer, stopper = experiment.trainer, experiment.early_stopping
    live = LiveWeights(trainer.model, stopper) if stopper is not None and stopper.restore_best else None
    best = BestWeights.for_run(experiment.config, trainer, path / BEST) if keeps_best(experiment.config) else None
    board = TensorBoardLog(trainer, path / TENSORBOARD) if experiment.config.logging.tensorboard else None
    ours = [m for m in (best, live, MetricsWriter(trainer, path / METRICS), board) if m is not None]
    trainer.monitors[:0] = ours
    return live, len(ours)


@dataclass
class StartedRun:
    """A run directory prepared and a trainer ready to fit (from scratch or from the checkpoint)."""

    config: RunConfig
    path: Path
    experiment: Experiment
    notes: list[str]
    """What loading and resuming decided, for the summary."""


def run(
    config: RunConfig,
    *,
    out: str | Path = "runs",
    resume: bool = False,
    force: bool = False,
    progress: bool = False,
    extra_monitors: Sequence[Monitor] = (),
) -> RunResult:
    """Train ``config`` into ``out/<name>/`` and return its summary; see the module docstring.

    The summary's ``notes`` (when present) say what ``resume`` did beyond continuing: a run started again
    because it had no checkpoint, keys lengthened, stops lifted.
    """
    world, created = join_launched_world(config.distributed.backend, config.device)  # under torchrun
    try:
        with silenced(world is not None and not world.main):
            started = start(config, out, resume=resume, force=force, progress=progress, extra_monitors=extra_monitors)
            found = train(started)
            result = finish(started, found)
            log_hparams(started.experiment.trainer.monitors, started.config, result.summary)  # closes event files
        if created:
            dist.barrier()  # no rank tears the group down while another still finishes (rank 0 writes last)
        return result
    finally:
        if created:
            dist.destroy_process_group()


def start(
    config: RunConfig,
    out: str | Path,
    *,
    resume: bool = False,
    force: bool = False,
    progress: bool = False,
    extra_monitors: Sequence[Monitor] = (),
) -> StartedRun:
    """Build everything (nothing is written if the config cannot be used), then prepare the run directory:
    load the checkpoint when resuming, clear it with ``force``, write the resolved config and preprocessing."""
    config = record_data_identity(config)  # a data file by absolute path and sha256, so the run dir reruns anywhere
    path = Path(out) / config.name
    if path.resolve().parent != Path(out).resolve():  # validate() refuses such names; a hand-built config might not
        raise RunDirError(f"name: {config.name!r} would write outside {out}; a run name is one path component")
    world = World.current()
    if world is not None:  # rank 0's machine holds the directory: it decides, every rank follows
        plan = world.from_main(lambda: prepare_run_dir(config, path, resume=resume, force=force))
    else:
        plan = prepare_run_dir(config, path, resume=resume, force=force)
    experiment = build_experiment(config, checkpoint_path=path / CHECKPOINT, progress=progress)
    live, ours = _run_monitors(experiment, path)
    experiment.trainer.monitors.extend(extra_monitors)
    notes = list(plan.notes)
    if plan.from_checkpoint:
        notes += resume_training(experiment, path / CHECKPOINT, plan, live, run_monitors=ours)
    if writes_here():
        if not plan.from_checkpoint and path.exists() and force:
            shutil.rmtree(path)
        path.mkdir(parents=True, exist_ok=True)
        remove_temp_files(path)  # what writes killed earlier left behind (.checkpoint.pt.XXXX.tmp, ...)
    write_text(path / CONFIG, tomli_w.dumps(to_toml_dict(config)))
    write_preprocessing(experiment.data, path)  # preprocessing.json: standardization statistics, class names
    return StartedRun(config, path, experiment, [*experiment.data.notes, *notes])


def train(started: StartedRun) -> dict[str, Any]:
    """Fit; whatever happens (divergence, Ctrl-C), write the metrics and the diagnostics' files. Returns the
    diagnostics' findings; on divergence writes the summary beside the last good checkpoint and re-raises."""
    experiment, path = started.experiment, started.path
    trainer = experiment.trainer
    diverged: TrainingDiverged | None = None
    try:
        experiment.fit()
    except TrainingDiverged as err:  # the last good checkpoint stays; say what happened beside it
        diverged = err
    except BaseException:  # Ctrl-C or a bug: keep what was measured, never hiding what happened
        with contextlib.suppress(Exception):
            write_metrics(path / METRICS, trainer.history)
            report_diagnostics(trainer.monitors, path)
        raise
    write_metrics(path / METRICS, trainer.history)
    found = report_diagnostics(trainer.monitors, path)  # the diagnostics' and any other monitor's tables
    if diverged is not None:
        trainer.stop_reason = str(diverged)
        summary = {**summarize(experiment, trainer.history, {}), "diverged": True}
        write_summary(path / SUMMARY, _with(summary, found, started.notes))
        raise diverged
    return found


def finish(started: StartedRun, found: dict[str, Any]) -> RunResult:
    """After training: early stopping's restore and Algorithm 7.2/7.3, the test split, the summary, the curves,
    and a final checkpoint describing the final model."""
    config, path, experiment = started.config, started.path, started.experiment
    trainer, stopper = experiment.trainer, experiment.early_stopping
    history = trainer.history
    final, restored = use_validation_data(config, experiment)
    evaluated = final.experiment if final is not None else experiment
    test = evaluated.trainer.test() if config.train.evaluate_test else {}
    final_epoch = stopper.best_epoch if stopper is not None and stopper.best_weights is not None else None
    summary = summarize(experiment, history, test, final_epoch)
    if stopper is not None:
        summary["early_stopping"] = {
            "best_epoch": stopper.best_epoch,
            "stopped_epoch": stopper.stopped_epoch,
            "restored_best": stopper.restore_best,
        }
    if final is not None:
        summary = describe_final_model(summary, final)
    if final is not None or restored:
        _final_checkpoint(path / CHECKPOINT, final.trainer if final is not None else trainer)
    summary = _with(summary, found, started.notes)
    write_summary(path / SUMMARY, summary)
    if writes_here():
        plot_curves(history, path / CURVES, title=config.name, error_label=summary["error_metric"])
        from regopt.lab.html_report import write_run_report  # it reads run directories through this module

        write_run_report(path)  # report.html: summary, curves, diagnostics and config in one self-contained page
    return RunResult(path=path, summary=summary, history=history, experiment=evaluated)


def _with(summary: dict[str, Any], found: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    return {**summary, **({"diagnostics": found} if found else {}), **({"notes": notes} if notes else {})}


def _final_checkpoint(path: Path, final: Trainer) -> None:
    """Make ``checkpoint.pt`` describe the final model (what ``regopt diagnose`` reads), keeping the state
    training continues from (what the Trainer last wrote) under ``training_state`` for ``--resume``."""
    state = final.state_dict()  # under a world every rank takes part; rank 0 writes
    if not writes_here():
        return
    kept = training_state(load_checkpoint(path))
    kept.pop("format", None)
    save_checkpoint({**state, TRAINING_STATE: kept}, path)


def use_validation_data(config: RunConfig, experiment: Experiment) -> tuple[FinalModel | None, bool]:
    """After early stopping: restore the best weights if training ran to the end, then Algorithm 7.2 or 7.3
    as configured. Returns the final model if it is a new one, and whether the best weights were restored."""
    stopper, options = experiment.early_stopping, config.regularize.early_stopping
    if stopper is None or options is None or stopper.best_epoch is None:
        return None, False
    restored = False
    if stopper.restore_best and stopper.stopped_epoch is None and stopper.best_epoch != experiment.trainer.epoch:
        stopper.restore()  # training used every epoch: still evaluate the best ones, as a stop would have
        restored = True
    if options.then == "retrain":
        return retrain(config, experiment, stopper), restored
    if options.then == "continue":
        return continue_training(experiment, stopper), restored
    return None, restored


def read_run_results(path: str | Path) -> tuple[dict[str, Any], list[dict[str, float]]]:
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


__all__ = [
    "CHECKPOINT",
    "CONFIG",
    "ConfigError",
    "RunDirError",
    "RunResult",
    "finish",
    "read_metrics",
    "read_run_results",
    "run",
    "start",
    "summarize",
    "train",
]
