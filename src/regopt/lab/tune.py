"""Choosing hyperparameters such as alpha with Optuna (the seed's "Selecting regularization term alpha").

``tune(raw_config, params, trials=N)`` runs an Optuna study whose trials are ordinary runs of the config with
sampled values, each in its own run directory. The study lives in SQLite under the tune directory (or any
Optuna storage URL), so an interrupted tuning resumes where it stopped; hopeless trials are pruned from their
per-epoch validation error (median rule). A search space is written as ``key=kind:args``::

    regularize.l2.alpha=loguniform:1e-6:1e-1     optimizer.lr=uniform:0.01:0.3
    model.widths=choice:[64],[128,128]           train.batch_size=int:16:128

Directory layout: ``<out>/<name>-tune/study.db``, ``trials/trial-0000/`` (a run directory each),
``trials.csv``, and ``curve.png`` (train and validation error against the parameter when there is one).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from regopt.lab.atomic import write_text
from regopt.lab.config import ConfigError, apply_overrides, parse_value, validate
from regopt.lab.report import plot_parameter_curve
from regopt.lab.runs import run
from regopt.monitor import Monitor

KINDS = ("loguniform", "uniform", "int", "choice")


@dataclass(frozen=True)
class SearchParam:
    """One dimension of the search space: a dotted config key and how to sample it."""

    key: str
    kind: str
    args: tuple[Any, ...]

    @classmethod
    def parse(cls, text: str) -> SearchParam:
        key, sep, spec = text.partition("=")
        kind, _, rest = spec.partition(":")
        if not sep or not key or kind not in KINDS:
            raise ConfigError(f"--param {text!r}: expected key=kind:args with kind one of {list(KINDS)}")
        if kind == "choice":
            args = tuple(parse_value(v) for v in _split_choices(rest))
            if not args:
                raise ConfigError(f"--param {text!r}: choice needs at least one value")
            return cls(key, kind, args)
        parts = rest.split(":")
        try:
            low, high = (int(p) for p in parts) if kind == "int" else (float(p) for p in parts)
        except ValueError:
            raise ConfigError(f"--param {text!r}: expected {kind}:low:high with numbers") from None
        if not low < high or (kind == "loguniform" and low <= 0):
            raise ConfigError(f"--param {text!r}: need low < high{' and low > 0' if kind == 'loguniform' else ''}")
        return cls(key, kind, (low, high))

    def sample(self, trial: optuna.Trial) -> Any:
        if self.kind == "loguniform":
            return trial.suggest_float(self.key, *self.args, log=True)
        if self.kind == "uniform":
            return trial.suggest_float(self.key, *self.args)
        if self.kind == "int":
            return trial.suggest_int(self.key, *self.args)
        index = trial.suggest_categorical(self.key, list(range(len(self.args))))
        return self.args[index]


def _split_choices(text: str) -> list[str]:
    """Split ``a,[1,2],b`` on commas outside brackets."""
    out, depth, current = [], 0, ""
    for char in text:
        depth += char in "[{"
        depth -= char in "]}"
        if char == "," and depth == 0:
            out.append(current)
            current = ""
        else:
            current += char
    return [c for c in [*out, current] if c]


class PruneHopeless(Monitor):
    """Report each epoch's validation error to the trial and stop it when Optuna's pruner says so."""

    def __init__(self, trial: optuna.Trial, metric: str = "val_error") -> None:
        self.trial, self.metric = trial, metric

    def after_epoch(self, epoch: int, metrics: Mapping[str, float]) -> tuple[bool, str]:
        self.trial.report(metrics[self.metric], epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {epoch}: {self.metric} {metrics[self.metric]:.4f}")
        return False, ""


def _value_text(value: Any) -> str:
    return value if isinstance(value, str) and not value.startswith("[") else repr(value).replace("'", '"')


def _objective(raw: dict[str, Any], space: Sequence[SearchParam], trials_dir: Path, metric: str, prune: bool):
    def objective(trial: optuna.Trial) -> float:
        values = {p.key: p.sample(trial) for p in space}
        overrides = [f"{key}={_toml_literal(value)}" for key, value in values.items()]
        overrides.append(f"name=trial-{trial.number:04d}")
        config = validate(apply_overrides(raw, overrides), f"trial {trial.number}")
        monitors = [PruneHopeless(trial)] if prune else []
        result = run(config, out=trials_dir, force=True, extra_monitors=monitors)
        s = result.summary
        for key in ("final_train_error", "final_val_error", "best_val_error", "test_error"):
            if s.get(key) is not None:
                trial.set_user_attr(key, s[key])
        return float(s[metric])

    return objective


def _toml_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_literal(v) for v in value) + "]"
    return repr(value)


def make_sampler(space: Sequence[SearchParam], seed: int) -> optuna.samplers.BaseSampler:
    """The sampler ``tune`` proposes points with."""
    return optuna.samplers.TPESampler(seed=seed)


def make_pruner(epochs: int) -> optuna.pruners.BasePruner:
    """The pruner ``tune`` stops hopeless trials with, for runs of ``epochs`` epochs."""
    return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=max(1, epochs // 4))


@dataclass
class TuneResult:
    path: Path
    study: optuna.Study
    space: list[SearchParam]


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
) -> TuneResult:
    """Run (or resume) the study until it holds ``trials`` finished trials; see the module docstring."""
    if not params:
        raise ConfigError("tune: give at least one --param key=kind:args")
    if metric not in ("best_val_error", "final_val_error"):
        raise ConfigError(f"--metric: {metric!r}; expected best_val_error or final_val_error")
    space = [SearchParam.parse(p) for p in params]
    base = validate(raw, "config")  # a bad base config fails before any study is created
    for p in space:  # and so does a search space whose values the config rejects
        validate(apply_overrides(raw, [f"{p.key}={_toml_literal(p.args[0])}"]), f"--param {p.key}")
    path = Path(out) / f"{base.name}-tune"
    path.mkdir(parents=True, exist_ok=True)
    storage = storage or f"sqlite:///{(path / 'study.db').resolve()}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=base.name,
        storage=storage,
        load_if_exists=True,
        direction="minimize",
        sampler=make_sampler(space, seed),
        pruner=make_pruner(base.train.epochs),
    )
    for stale in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study.tell(stale.number, state=optuna.trial.TrialState.FAIL)  # interrupted earlier: retried below
    done = len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)))
    remaining = max(0, trials - done)
    if remaining:
        study.optimize(_objective(raw, space, path / "trials", metric, prune), n_trials=remaining, catch=())
    write_trials(study, space, path / "trials.csv")
    if len(space) == 1 and space[0].kind != "choice":
        plot_parameter_curve(
            trial_rows(study, space), path / "curve.png", parameter=space[0].key, log=space[0].kind == "loguniform"
        )
    return TuneResult(path=path, study=study, space=space)


def trial_rows(study: optuna.Study, space: Sequence[SearchParam]) -> list[dict[str, Any]]:
    """One dict per finished trial: number, state, parameter values, objective and errors."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.state not in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED):
            continue
        row: dict[str, Any] = {"trial": t.number, "state": t.state.name.lower()}
        for p in space:
            raw = t.params.get(p.key)
            row[p.key] = p.args[raw] if p.kind == "choice" and raw is not None else raw
        row["value"] = t.value
        for key in ("final_train_error", "final_val_error", "best_val_error", "test_error"):
            row[key] = t.user_attrs.get(key)
        rows.append(row)
    return rows


def write_trials(study: optuna.Study, space: Sequence[SearchParam], path: Path) -> None:
    rows = trial_rows(study, space)
    if not rows:
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buffer.getvalue())


def best_text(result: TuneResult) -> str:
    try:
        best = result.study.best_trial
    except ValueError:
        return "no finished trial"
    chosen = {p.key: p.args[best.params[p.key]] if p.kind == "choice" else best.params[p.key] for p in result.space}
    values = ", ".join(f"{k}={_value_text(v)}" for k, v in chosen.items())
    value = best.value if best.value is not None else math.nan
    return f"best trial {best.number}: {values} -> {value:.4f}"
