"""Choosing hyperparameters such as alpha with Optuna (the chapter's "Selecting regularization term alpha").

``tune(raw_config, params, trials=N)`` runs an Optuna study whose trials are ordinary runs of the config with
sampled values, each in its own run directory. The study lives in SQLite under the tune directory (or any
Optuna storage URL), so an interrupted tuning resumes where it stopped. A search space is written as
``key=kind:args`` (:mod:`regopt.lab.tune_space`)::

    regularize.l2.alpha=loguniform:1e-6:1e-1     optimizer.lr=uniform:0.01:0.3
    model.widths=choice:[64],[128,128]           train.batch_size=int:16:128

- Resuming continues the sampler's sequence and never repeats a point (:mod:`regopt.lab.tune_sampler`): a study
  run 3 + 3 trials proposes the same points as one run 6 straight.
- The study stores its search space; a call with a different one is refused before any trial runs, naming what
  differs. ``study="NAME"`` starts a new study beside it (``<out>/NAME-tune``), ``force=True`` replaces it.
- Hopeless trials are pruned from their per-epoch validation error, after half the epochs and never while they
  follow the best trial's curve (:mod:`regopt.lab.tune_pruner`).
- ``workers=K`` runs K processes on one study in a database (``--storage postgresql://...``), and the same call on
  another machine joins it; the total stays ``trials`` (:mod:`regopt.lab.tune_workers`).
- A trial that raises is kept as state ``fail`` with its error in one line. A diverged trial or a point the config
  rejects does not stop the study; an unexpected error (or Ctrl-C) stops it after recording the trial.

Directory layout: ``<out>/<study>-tune/study.db``, ``trials/trial-0000/`` (a run directory each),
``trials.csv``, and ``curve.png`` (train and validation error against the parameter when there is one).
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from regopt.lab.atomic import write_csv
from regopt.lab.config import ConfigError, apply_overrides, validate
from regopt.lab.report import plot_parameter_curve
from regopt.lab.runs import run
from regopt.lab.tune_pruner import NearBestMedianPruner, PruneHopeless
from regopt.lab.tune_sampler import INTERRUPTED, FreshPointSampler, tried_points
from regopt.lab.tune_space import (
    SPACE_ATTR,
    SearchParam,
    grid_size,
    legacy_differences,
    space_differences,
    space_spec,
    toml_literal,
)
from regopt.lab.tune_workers import fail_stale, heartbeat, is_sqlite, open_storage, shares, started_count

__all__ = ["SearchParam", "TuneResult", "best_text", "make_pruner", "make_sampler", "trial_rows", "tune"]

ERRORS = ("final_train_error", "final_val_error", "best_val_error", "test_error")


def make_sampler(space: Sequence[SearchParam], seed: int) -> optuna.samplers.BaseSampler:
    """The sampler ``tune`` proposes points with."""
    return FreshPointSampler(space, seed)


def make_pruner(epochs: int) -> optuna.pruners.BasePruner:
    """The pruner ``tune`` stops hopeless trials with, for runs of ``epochs`` epochs."""
    return NearBestMedianPruner(epochs)


def _value_text(value: Any) -> str:
    return value if isinstance(value, str) and not value.startswith("[") else repr(value).replace("'", '"')


def _objective(raw: dict[str, Any], space: Sequence[SearchParam], trials_dir: Path, metric: str, prune: bool):
    def objective(trial: optuna.Trial) -> float:
        values = {p.key: p.sample(trial) for p in space}
        overrides = [f"{key}={toml_literal(value)}" for key, value in values.items()]
        overrides.append(f"name=trial-{trial.number:04d}")
        config = validate(apply_overrides(raw, overrides), f"trial {trial.number}")
        monitors = [PruneHopeless(trial)] if prune else []
        result = run(config, out=trials_dir, force=True, extra_monitors=monitors)
        s = result.summary
        for key in ERRORS:
            if s.get(key) is not None:
                trial.set_user_attr(key, s[key])
        value = s.get(metric)
        if value is None:  # then = "retrain"/"continue": the final model trained on the validation data,
            value = (s.get("early_stopping") or {}).get(metric)  # so the early-stopping phase is what tune judges
        if value is None:
            raise ConfigError(f"trial {trial.number}: the run measured no {metric} to tune on")
        return float(value)

    return objective


@dataclass
class TuneResult:
    path: Path
    study: optuna.Study
    space: list[SearchParam]
    notes: list[str] = field(default_factory=list)
    """One line each: trials that failed in this call, a discrete space that ran out of points."""


def _one_line(err: BaseException) -> str:
    if isinstance(err, KeyboardInterrupt):
        return INTERRUPTED
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def _check_inputs(raw: dict[str, Any], space: Sequence[SearchParam], study: str | None) -> tuple[str, int]:
    """Fail on any bad input before a study is touched; return the study's name and the runs' epochs."""
    keys = [p.key for p in space]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise ConfigError(f"--param {repeated[0]}: given more than once")
    base = validate(raw, "config")
    for p in space:  # every value a trial may use: both ends of a range, every choice
        for value in p.args:
            validate(apply_overrides(raw, [f"{p.key}={toml_literal(value)}"]), f"--param {p.key}")
    if study is not None and not re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9._-]*", study):
        raise ConfigError(f"--study {study!r}: expected a name of letters, digits, '_', '-' or '.' (not first)")
    return study or base.name, base.train.epochs


def _check_space(study: optuna.Study, space: Sequence[SearchParam], path: Path) -> None:
    """Refuse a space other than the one the study was made with; store it in a new study."""
    stored = study.user_attrs.get(SPACE_ATTR)
    if stored is None:
        differences = legacy_differences(study.get_trials(deepcopy=False), space)
    else:
        differences = space_differences(stored, space)
    if differences:
        raise ConfigError(
            f"{path}: the search space differs from the one study {study.study_name!r} was made with "
            f"({'; '.join(differences)}); pass --study NAME to start a new study beside it, or --force to replace it"
        )
    if stored is None:
        study.set_user_attr(SPACE_ATTR, space_spec(space))


def _replace(name: str, storage: str | optuna.storages.BaseStorage, path: Path) -> None:
    """``force``: delete the study and what its trials wrote."""
    with contextlib.suppress(KeyError):  # no such study yet
        optuna.delete_study(study_name=name, storage=storage)
    shutil.rmtree(path / "trials", ignore_errors=True)
    for file in ("trials.csv", "curve.png"):
        (path / file).unlink(missing_ok=True)


def tune(
    raw: dict[str, Any],
    params: Sequence[str],
    *,
    trials: int,
    out: str | Path = "runs",
    storage: str | None = None,
    metric: str = "best_val_error",
    prune: bool = True,
    seed: int = 0,
    study: str | None = None,
    force: bool = False,
    workers: int = 1,
) -> TuneResult:
    """Run (or resume) the study until it holds ``trials`` finished trials; see the module docstring.

    ``study`` names the study (default: the config's name) and its directory ``<out>/<study>-tune``; ``force``
    replaces an existing study of that name. ``workers`` > 1 runs that many processes on the study, which needs a
    database storage such as ``postgresql://`` (:mod:`regopt.lab.tune_workers`); the same call elsewhere joins it.
    Raises :class:`ConfigError` for bad input, before anything is written.
    """
    if not params:
        raise ConfigError("tune: give at least one --param key=kind:args")
    if metric not in ("best_val_error", "final_val_error"):
        raise ConfigError(f"--metric: {metric!r}; expected best_val_error or final_val_error")
    space = [SearchParam.parse(p) for p in params]
    name, epochs = _check_inputs(raw, space, study)
    path = Path(out) / f"{name}-tune"
    url = storage or f"sqlite:///{(path / 'study.db').resolve()}"
    opened = open_storage(url, workers)
    path.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if force:
        _replace(name, opened, path)
    handle = _load(name, opened, space, seed, epochs)
    _check_space(handle, space, path)
    if is_sqlite(url):  # one process: whatever is running was stopped with it
        for stale in handle.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            handle.tell(stale.number, state=TrialState.FAIL)  # listed as interrupted
    else:  # other workers may be running: only trials whose heartbeat stopped
        fail_stale(handle)
    notes: list[str] = []
    done = len(handle.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))
    remaining = max(0, trials - done)
    size = grid_size(space)
    untried = size - len(tried_points(handle, [p.key for p in space]))
    if untried < remaining:  # a discrete space running out of points: never repeat one
        left = f"only {untried:.0f} untried remain" if untried else "all were tried"
        notes.append(f"the search space holds {size:.0f} points and {left}: {trials} trials cannot all differ")
        remaining = int(untried)
    job = _Job(raw, params, url, name, path, trials, metric, prune, seed, epochs)
    try:
        if workers == 1:
            notes += _run_trials(handle, job, remaining)
        else:
            ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no torch or database state shared
            with ctx.Pool(workers) as pool:
                for worker_notes in pool.starmap(_worker, [(job, share) for share in shares(remaining, workers)]):
                    notes += worker_notes
    finally:
        write_trials(handle, space, path / "trials.csv")
    if len(space) == 1 and space[0].kind != "choice":
        plot_parameter_curve(
            trial_rows(handle, space), path / "curve.png", parameter=space[0].key, log=space[0].kind == "loguniform"
        )
    return TuneResult(path=path, study=handle, space=space, notes=notes)


@dataclass(frozen=True)
class _Job:
    """What a worker process needs to run trials of the study (picklable)."""

    raw: dict[str, Any]
    params: Sequence[str]
    url: str
    name: str
    path: Path
    trials: int
    metric: str
    prune: bool
    seed: int
    epochs: int


def _load(
    name: str, storage: str | optuna.storages.BaseStorage, space: Sequence[SearchParam], seed: int, epochs: int
) -> optuna.Study:
    return optuna.create_study(
        study_name=name,
        storage=storage,
        load_if_exists=True,  # a second command on the same storage joins the study
        direction="minimize",
        sampler=make_sampler(space, seed),
        pruner=make_pruner(epochs),
    )


def _worker(job: _Job, share: int) -> list[str]:
    """One worker process of ``tune(workers=K)``: run up to ``share`` trials of the study; return its notes."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = [SearchParam.parse(p) for p in job.params]
    handle = _load(job.name, open_storage(job.url, 1), space, job.seed, job.epochs)
    return _run_trials(handle, job, share)


def _run_trials(handle: optuna.Study, job: _Job, share: int) -> list[str]:
    """Run up to ``share`` trials, stopping once the study holds ``job.trials`` started ones; return the notes."""
    space = [SearchParam.parse(p) for p in job.params]
    objective = _objective(job.raw, space, job.path / "trials", job.metric, job.prune)
    notes: list[str] = []
    for _ in range(share):
        fail_stale(handle)
        if started_count(handle) >= job.trials:  # other workers took the remaining trials
            break
        trial = handle.ask()
        try:
            with heartbeat(handle, trial):
                value = objective(trial)
        except optuna.TrialPruned:
            handle.tell(trial, state=TrialState.PRUNED)
        except (FloatingPointError, ValueError) as err:  # diverged, or the config rejects this point: go on
            trial.set_user_attr("error", _one_line(err))
            handle.tell(trial, state=TrialState.FAIL)
            notes.append(f"trial {trial.number} failed: {_one_line(err)}")
        except BaseException as err:  # Ctrl-C or an unexpected error: keep the trial's row, then stop
            trial.set_user_attr("error", _one_line(err))
            handle.tell(trial, state=TrialState.FAIL)
            raise
        else:
            handle.tell(trial, value)
    return notes


def trial_rows(study: optuna.Study, space: Sequence[SearchParam]) -> list[dict[str, Any]]:
    """One dict per trial that ran to an end: number, state (complete, pruned or fail), parameter values, objective,
    errors, and for a failed trial its error in one line."""
    rows = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)):
        row: dict[str, Any] = {"trial": t.number, "state": t.state.name.lower()}
        for p in space:
            row[p.key] = p.value(t.params.get(p.key))
        row["value"] = t.value
        for key in ERRORS:
            row[key] = t.user_attrs.get(key)
        row["error"] = t.user_attrs.get("error", INTERRUPTED) if t.state == TrialState.FAIL else None
        rows.append(row)
    return rows


def write_trials(study: optuna.Study, space: Sequence[SearchParam], path: Path) -> None:
    write_csv(path, trial_rows(study, space))


def best_text(result: TuneResult) -> str:
    try:
        best = result.study.best_trial
    except ValueError:
        return "no finished trial"
    chosen = {p.key: p.value(best.params.get(p.key)) for p in result.space}
    values = ", ".join(f"{k}={_value_text(v)}" for k, v in chosen.items())
    value = best.value if best.value is not None else math.nan
    return f"best trial {best.number}: {values} -> {value:.4f}"
