"""``regopt compare``: the finished runs among a set of paths, and their comparison, one table per error metric.

``regopt compare runs/*`` meets more than runs: the figure of the last comparison, tune studies, diagnose
output, a trial that was pruned or a run that was interrupted. Each such path is skipped with a note saying what
it is; only when no run is left is there an error. Runs whose error metrics differ (classification's error rate,
regression's MSE) are never put in one column: each metric gets its own table and its own panel. Run names too
long for the terminal that share a prefix are shown by their distinguishing tail, the prefix named once.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from regopt.lab.report import FittingTable, rich_table
from regopt.lab.runs import RunDirError, read_run_results

COLUMNS = ("run", "best val", "final val", "final train", "gap", "test", "epochs", "wall s")
"""The comparison's columns; gap = final val - final train."""


@dataclass
class ComparedRun:
    """One finished run: its label in tables and legends, its directory, summary.json and metrics.csv rows."""

    label: str
    path: Path
    summary: dict[str, Any]
    history: list[dict[str, float]]

    @property
    def metric(self) -> str:
        return str(self.summary.get("error_metric", "error rate"))


def what_it_is(path: Path) -> str:
    """Why ``path`` is not a finished run, in a few words (for the note that skips it)."""
    if not path.exists():
        return "no such file or directory"
    if not path.is_dir():
        return "not a directory"
    if (path / "study.db").exists() or (path / "trials.csv").exists() or (path / "trials").is_dir():
        return f"a tune study, not a run (compare its trials: regopt compare {path / 'trials'}{os.sep}*)"
    if (path / "diagnose.json").exists() or path.name == "diagnose":
        return "diagnose output, not a run"
    if (path / "config.toml").exists() and not (path / "summary.json").exists():
        return "a run that did not finish (no summary.json: interrupted, pruned or diverged before its end)"
    return "not a finished run directory (no summary.json)"


def collect_runs(paths: Sequence[str | Path]) -> tuple[list[ComparedRun], list[str]]:
    """The finished runs among ``paths`` (in order) and one note per path skipped.

    Raises:
        RunDirError: when no path is a finished run, in one line naming each path and what it is.
    """
    found: list[tuple[Path, dict[str, Any], list[dict[str, float]]]] = []
    notes: list[str] = []
    for item in paths:
        path = Path(item)
        if not path.is_dir() or not (path / "summary.json").is_file():
            notes.append(f"{path}: {what_it_is(path)}")
            continue
        try:
            summary, history = read_run_results(path)
        except RunDirError as err:
            notes.append(str(err))
            continue
        found.append((path, summary, history))
    if not found:
        if len(notes) == 1:
            raise RunDirError(notes[0])
        raise RunDirError(f"none of the {len(notes)} paths is a finished run directory: " + "; ".join(notes))
    labels = unique_names([path for path, _, _ in found])
    return [ComparedRun(label, p, s, h) for label, (p, s, h) in zip(labels, found, strict=True)], notes


def unique_names(paths: Sequence[Path]) -> list[str]:
    """Each run's directory name, or its last two path parts where names repeat (``a/tiny``, ``b/tiny``)."""
    names = [p.resolve().name for p in paths]
    if len(set(names)) == len(names):
        return names
    return [f"{p.resolve().parent.name}/{p.resolve().name}" for p in paths]


def shared_prefix(names: Sequence[str]) -> str:
    """The longest prefix of all ``names`` ending at a separator (``-``, ``_``, ``/``; not ``.``, which sits
    inside numbers such as ``lr-0.01``) that leaves each name a non-empty tail; "" for a single name."""
    if len(names) < 2:
        return ""
    common = names[0][: next((i for i, chars in enumerate(zip(*names, strict=False)) if len(set(chars)) > 1), None)]
    cut = max((m.end() for m in re.finditer(r"[-_/]", common)), default=0)
    return common[:cut] if all(len(n) > cut for n in names) else ""


def compare_tables(runs: Sequence[tuple[str, Mapping[str, Any]]]) -> list[FittingTable]:
    """Best and final validation error, generalization gap, test error, epochs and wall time, one row per run;
    one table per error metric, so that an error rate and an MSE never share a column. Where whole names do
    not fit the console, a prefix all of a table's names share is named once in its title and dropped from the
    rows (``…lr-0.01``), keeping each name's distinguishing tail; what still does not fit wraps."""
    metrics = list(dict.fromkeys(str(s.get("error_metric", "error rate")) for _, s in runs))
    tables = []
    for metric in metrics:
        group = [(label, s) for label, s in runs if str(s.get("error_metric", "error rate")) == metric]
        prefix = shared_prefix([label for label, _ in group])
        whole = _table(metric, group, "")
        tables.append(FittingTable(*whole.variants, *_table(metric, group, prefix).variants) if prefix else whole)
    return tables


def _table(metric: str, group: Sequence[tuple[str, Mapping[str, Any]]], prefix: str) -> FittingTable:
    rows = [
        (
            f"…{label[len(prefix) :]}" if prefix else label,
            s.get("best_val_error"),
            s.get("final_val_error"),
            s.get("final_train_error"),
            s.get("generalization_gap"),
            s.get("test_error"),
            s.get("epochs"),
            s.get("wall_time_s"),
        )
        for label, s in group
    ]
    title = f"run comparison: {metric}" + (f" (runs {prefix}…)" if prefix else "")
    return rich_table(COLUMNS, rows, title=title, digits={"wall s": 1}, caption="gap = final val - final train")
