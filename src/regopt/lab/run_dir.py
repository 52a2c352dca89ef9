"""What may be done with a run directory: create it, replace it (``--force``), or resume it (``--resume``).

:func:`prepare_run_dir` decides before anything is built or written. Resuming needs the config the run was
started with, except for the keys that only lengthen a run (:data:`EXTENDABLE`: ``train.epochs``, and
``regularize.early_stopping.patience``), which may grow: the resumed run then continues exactly as if the
longer run had been asked for from the start. That holds when the learning-rate schedule does not depend on
the run's length: ``constant``, ``step`` and ``exponential`` do not, nor ``linear`` with an explicit ``tau``;
``cosine``, ``linear`` without ``tau`` and ``torch.OneCycleLR`` without ``total_steps`` spread their schedule over
the whole run (every learning rate so far would have been different), so a run with one of those cannot be
lengthened.

A directory holding a ``config.toml`` but no checkpoint and no summary is a run interrupted before its first
checkpoint: ``--resume`` starts it again from the beginning (same config check), with a note. A directory
holding only the temporary files of killed atomic writes (a run killed while writing its ``config.toml``) counts
as empty: ``run`` uses it and ``--resume`` starts the run from the beginning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regopt.lab.atomic import is_temp_file
from regopt.lab.config import RunConfig, TorchSchedule, read_toml, to_toml_dict, validate
from regopt.lab.schedule_table import LENGTH_KEYS

CONFIG, METRICS, SUMMARY, CHECKPOINT, CURVES = (
    "config.toml",
    "metrics.csv",
    "summary.json",
    "checkpoint.pt",
    "curves.png",
)

EXTENDABLE = ("train.epochs", "train.max_steps", "regularize.early_stopping.patience")
"""Dotted config keys that only lengthen a run; a resume may raise them (``train.max_steps`` if the schema has it)."""

_LENGTH_KEYS = ("train.epochs", "train.max_steps")


class RunDirError(ValueError):
    """A run directory that cannot be created, replaced or resumed as asked."""


@dataclass
class RunPlan:
    """How :func:`regopt.lab.runs.run` uses the directory: from its checkpoint or from the beginning."""

    from_checkpoint: bool = False
    extended: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    """Lengthening keys raised on resume: dotted key -> (old, new)."""
    notes: list[str] = field(default_factory=list)


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(data, dict) or not data:
        return {prefix.rstrip("."): data}
    flat: dict[str, Any] = {}
    for key, value in data.items():
        flat.update(_flatten(value, f"{prefix}{key}."))
    return flat


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Dotted keys whose values differ, sorted (a section present in one config only counts as its keys)."""
    a, b = _flatten(old), _flatten(new)
    return sorted(key for key in set(a) | set(b) if a.get(key, _MISSING) != b.get(key, _MISSING))


_MISSING = object()


def horizon_dependence(config: RunConfig) -> str | None:
    """Why this config's learning rates depend on the run's length (a reason to refuse lengthening), or None."""
    schedule = config.schedule
    if schedule.name == "cosine":
        return "the cosine schedule spans the whole run (T_max = the run's length)"
    if schedule.name == "linear" and getattr(schedule, "tau", None) is None:
        return "the linear schedule spans the whole run (tau defaults to the run's length; set schedule.tau)"
    if isinstance(schedule, TorchSchedule) and schedule.scheduler_class in LENGTH_KEYS:
        keys = LENGTH_KEYS[schedule.scheduler_class]
        if not any(key in schedule.kwargs() for key in keys):
            return f"{schedule.name} spans the whole run (given none of {', '.join(keys)}; set schedule.{keys[0]})"
    return None


def resume_changes(saved: RunConfig, config: RunConfig, path: Path) -> dict[str, tuple[Any, Any]]:
    """The lengthening keys raised from ``saved`` to ``config``; :class:`RunDirError` for any other change."""
    old, new = _flatten(to_toml_dict(saved)), _flatten(to_toml_dict(config))
    extended: dict[str, tuple[Any, Any]] = {}
    for key in _differences(to_toml_dict(saved), to_toml_dict(config)):
        before, after = old.get(key), new.get(key)
        where = f"{path}: cannot resume: config differs from the run's {CONFIG} at {key}"
        if key == "data.sha256":
            if before is None:  # a run directory from before hashes were recorded: nothing to compare with
                continue
            raise RunDirError(f"{where}: the data file has changed since the run started ({before} -> {after})")
        if key not in EXTENDABLE or not isinstance(before, int) or not isinstance(after, int):
            raise RunDirError(where)
        if after < before:
            raise RunDirError(f"{where} (a run can be lengthened, not shortened: {before} -> {after})")
        extended[key] = (before, after)
    reason = horizon_dependence(config)
    if reason and any(key in _LENGTH_KEYS for key in extended):
        raise RunDirError(f"{path}: cannot lengthen this run: {reason}; start a new run (or --force)")
    return extended


def interrupted_start(path: Path) -> bool:
    """A run directory whose run was stopped before its first checkpoint (config, no checkpoint, no summary)."""
    return (path / CONFIG).is_file() and not (path / CHECKPOINT).exists() and not (path / SUMMARY).exists()


def holds_nothing(path: Path) -> bool:
    """An existing directory with nothing in it but the temporary files of killed atomic writes: a run killed
    while writing its first file (``config.toml``), to be treated as empty."""
    return path.is_dir() and all(is_temp_file(entry) for entry in path.iterdir())


def prepare_run_dir(config: RunConfig, path: Path, *, resume: bool, force: bool) -> RunPlan:
    """Check that ``path`` may be used as asked, before anything is built or written; say how."""
    if resume:
        if force:
            raise RunDirError("--resume and --force contradict each other: resume keeps the run, force replaces it")
        if holds_nothing(path):  # killed before its config landed: nothing to check, nothing to keep
            return RunPlan(notes=[f"{path}: the run had written nothing yet; started it from the beginning"])
        started = interrupted_start(path)
        if not (path / CHECKPOINT).is_file() and not started:
            raise RunDirError(f"{path}: nothing to resume (no {CHECKPOINT})")
        saved = validate(read_toml(path / CONFIG), str(path / CONFIG))
        if started:  # nothing trained yet: any lengthening is just the new run's length
            old = to_toml_dict(saved)
            for key in _differences(old, to_toml_dict(config)):
                if key not in EXTENDABLE and not (key == "data.sha256" and "sha256" not in old.get("data", {})):
                    raise RunDirError(f"{path}: cannot resume: config differs from the run's {CONFIG} at {key}")
            note = f"{path}: the run was interrupted before its first checkpoint; started it again from the beginning"
            return RunPlan(notes=[note])
        extended = resume_changes(saved, config, path)
        notes = [f"extended: {key} {a} -> {b}" for key, (a, b) in extended.items()]
        return RunPlan(from_checkpoint=True, extended=extended, notes=notes)
    if path.exists() and not holds_nothing(path):
        if not force:
            if interrupted_start(path):
                raise RunDirError(
                    f"{path}: was interrupted before its first checkpoint; "
                    "pass --resume to start it again or --force to replace it"
                )
            raise RunDirError(f"{path}: already exists; pass --force to replace it or --resume to continue it")
        if not (path / CONFIG).is_file():
            raise RunDirError(f"{path}: exists and is not a run directory (no {CONFIG}); refusing to replace it")
    return RunPlan()


__all__ = ["EXTENDABLE", "RunDirError", "RunPlan", "horizon_dependence", "prepare_run_dir", "resume_changes"]
