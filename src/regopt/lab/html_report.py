"""``report.html``: one self-contained page of a run, or of several runs side by side.

A run's page holds its summary (best and final validation error, generalization gap, test metrics, wall time,
parameter count, why training stopped), its curves, the figures and tables its diagnostics wrote into the run
directory (``*.png`` and ``*.csv`` beside the run's own files) and their findings, and the resolved
``config.toml``. Several runs' page starts with the comparison table of :mod:`regopt.lab.compare` (one per error
metric) and their curves overlaid, then each run's page as a section. Figures are embedded as PNG data URIs
(:mod:`regopt.lab.html`): the file opens offline, with no scripts, fonts or links.
"""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from regopt.lab import html
from regopt.lab.atomic import write_text
from regopt.lab.compare import COLUMNS, ComparedRun, collect_runs
from regopt.lab.data import PREPROCESSING
from regopt.lab.report import curves_finding, plot_compare, plot_curves
from regopt.lab.run_dir import CHECKPOINT, CONFIG, CURVES, METRICS, SUMMARY
from regopt.lab.runs import read_run_results

REPORT = "report.html"
"""The run directory's report, written by ``regopt run`` (and by ``regopt report RUN_DIR --out``)."""

OWN_FILES = frozenset({CONFIG, METRICS, SUMMARY, CHECKPOINT, CURVES, PREPROCESSING, REPORT})
"""The run directory's own files; any other ``*.png`` or ``*.csv`` is a diagnostic's figure or table."""

MAX_TABLE_ROWS = 40
"""A diagnostic's table longer than this is shown thinned to about this many rows (first and last kept)."""

SUMMARY_KEYS = (
    ("best_val_error", "best validation error"),
    ("best_epoch", "best epoch"),
    ("final_val_error", "final validation error"),
    ("final_train_error", "final training error"),
    ("generalization_gap", "generalization gap (final val - train)"),
    ("final_val_loss", "final validation loss"),
    ("final_train_loss", "final training loss"),
    ("epochs", "epochs"),
    ("steps", "optimizer steps"),
    ("wall_time_s", "wall time (s)"),
    ("parameters", "parameters"),
    ("stop_reason", "stop reason"),
    ("final_model", "final model"),
    ("precision", "precision"),
    ("device", "device"),
)
"""Summary keys shown in the run's table, in order, with their labels; ``test_*`` keys follow ``parameters``."""


def summary_rows(summary: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """(label, value) rows of a ``summary.json``: the keys of :data:`SUMMARY_KEYS` present, test metrics, notes."""
    metric = summary.get("error_metric", "error rate")
    rows: list[tuple[str, Any]] = [("error metric", metric)]
    for key, label in SUMMARY_KEYS:
        if key in summary:
            rows.append((label, summary[key]))
        if key == "parameters":
            rows += [(key.replace("_", " "), value) for key, value in summary.items() if key.startswith("test_")]
    if summary.get("diverged"):
        rows.append(("diverged", True))
    rows += [("note", note) for note in summary.get("notes", [])]
    return rows


def _curves_png(history: Sequence[Mapping[str, float]], name: str, metric: str) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / CURVES
        plot_curves(history, path, title=name, error_label=metric)  # type: ignore[arg-type]
        return path.read_bytes()


def _compare_png(runs: Sequence[ComparedRun], title: str) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "compare.png"
        plot_compare([(r.label, r.history) for r in runs], path, metrics=[r.metric for r in runs], title=title)
        return path.read_bytes()


def csv_table(path: Path) -> str:
    """A diagnostic's CSV as an HTML table, thinned to about :data:`MAX_TABLE_ROWS` rows (with a note)."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return f'<p class="note">{html.escape(path.name)} is empty</p>'
    headers, body = rows[0], rows[1:]
    note = ""
    if len(body) > MAX_TABLE_ROWS:
        stride = -(-len(body) // MAX_TABLE_ROWS)
        kept = sorted({*range(0, len(body), stride), len(body) - 1})
        note = f"every {stride}th of {len(body)} rows (and the last); the whole table is {path.name}"
        body = [body[i] for i in kept]
    return html.table(headers, body, caption=note or path.name)


def _findings(diagnostics: Mapping[str, Any]) -> str:
    """The diagnostics' findings from ``summary.json``: alarms as a table, the other values as quantity/value."""
    parts = []
    alarms = diagnostics.get("alarms") or []
    if alarms:
        rows = [(a.get("step"), a.get("monitor"), a.get("message")) for a in alarms]
        parts.append(html.table(("step", "monitor", "alarm"), rows, caption="alarms"))
    others = {k: v for k, v in diagnostics.items() if k != "alarms"}
    flat = {k: v if isinstance(v, (int, float, str, type(None))) else repr(v) for k, v in _flatten(others).items()}
    if flat:
        parts.append(html.key_value_table(flat))
    return "".join(parts)


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def run_section(path: str | Path, *, heading: str = "h2") -> str:
    """The body of one run's report (its summary, curves, diagnostics and config), headings at ``heading``."""
    path = Path(path)
    summary, history = read_run_results(path)
    name, metric = str(summary.get("name", path.name)), str(summary.get("error_metric", "error rate"))
    sub = "h3" if heading == "h2" else "h4"
    parts = [f"<{heading}>summary</{heading}>", html.table(("quantity", "value"), summary_rows(summary))]
    parts.append(f"<{heading}>curves</{heading}>")
    if history:
        caption = curves_finding(history, name, metric) + f". Train vs validation {metric} against epoch."
        png = (path / CURVES).read_bytes() if (path / CURVES).is_file() else _curves_png(history, name, metric)
        parts.append(html.figure(png, caption))
    else:
        parts.append('<p class="note">no epoch finished: no curves</p>')
    figures = sorted(p for p in path.glob("*.png") if p.name not in OWN_FILES)
    tables = sorted(p for p in path.glob("*.csv") if p.name not in OWN_FILES)
    found = summary.get("diagnostics") or {}
    if figures or tables or found:
        parts.append(f"<{heading}>diagnostics</{heading}>")
        parts += [html.figure(p, p.name) for p in figures]
        for table_path in tables:
            parts += [f"<{sub}>{html.escape(table_path.name)}</{sub}>", csv_table(table_path)]
        if found:
            parts += [f"<{sub}>findings (summary.json)</{sub}>", _findings(found)]
    config = (path / CONFIG).read_text() if (path / CONFIG).is_file() else "(no config.toml)"
    parts.append(f"<{heading}>config</{heading}>")
    parts.append(html.details(f"resolved {CONFIG}", html.pre(config), open_=heading == "h2"))
    return "\n".join(parts)


def run_report_html(path: str | Path) -> str:
    """The whole page of one finished run directory; :class:`RunDirError` if it is not one."""
    summary, _ = read_run_results(path)
    title = f"regopt run {summary.get('name', Path(path).name)}"
    return html.page(title, f'<p class="note">run directory: {html.escape(path)}</p>\n' + run_section(path))


def comparison_rows(runs: Sequence[ComparedRun]) -> list[tuple[Any, ...]]:
    """One row of :data:`regopt.lab.compare.COLUMNS` per run."""
    keys = ("best_val_error", "final_val_error", "final_train_error", "generalization_gap", "test_error")
    return [
        (r.label, *(r.summary.get(k) for k in keys), r.summary.get("epochs"), r.summary.get("wall_time_s"))
        for r in runs
    ]


def _lowest(runs: Sequence[ComparedRun], metric: str) -> str:
    """Which run of ``metric`` reached the lowest best validation error (never compared across metrics)."""
    group = [r for r in runs if r.metric == metric]
    best = min(group, key=lambda r: _or_inf(r.summary.get("best_val_error")))
    return f"lowest best val {metric}: {best.label} ({html.fmt(best.summary.get('best_val_error'), 3)})"


def _or_inf(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) else float("inf")


def compare_report_html(paths: Sequence[str | Path]) -> tuple[str, list[str]]:
    """The page of several runs: comparison table(s), overlaid curves, then each run. Returns it and the notes
    of paths skipped (not finished runs); :class:`RunDirError` when none is a finished run."""
    runs, notes = collect_runs(paths)
    parts = ["<h2>comparison</h2>"]
    for metric in dict.fromkeys(r.metric for r in runs):
        group = [r for r in runs if r.metric == metric]
        caption = f"{metric}: gap = final val - final train; wall time in seconds"
        parts.append(html.table(COLUMNS, comparison_rows(group), caption=caption))
    title = "; ".join(_lowest(runs, metric) for metric in dict.fromkeys(r.metric for r in runs))
    caption = f"{title}. Validation (solid) and train (dashed) error against epoch, one color per run."
    parts.append(html.figure(_compare_png(runs, title), caption))
    if notes:
        parts.append("<ul>" + "".join(f'<li class="note">skipped {html.escape(n)}</li>' for n in notes) + "</ul>")
    parts.append(
        "<nav><ul>"
        + "".join(f'<li><a href="#run-{i}">{html.escape(r.label)}</a></li>' for i, r in enumerate(runs))
        + "</ul></nav>"
    )
    for i, r in enumerate(runs):
        parts.append(f'<section id="run-{i}"><h2>{html.escape(r.label)}</h2>')
        parts.append(run_section(r.path, heading="h3") + "</section>")
    return html.page(f"regopt report: {len(runs)} runs", "\n".join(parts)), notes


def write_report(paths: Sequence[str | Path], out: str | Path) -> tuple[Path, list[str]]:
    """Write the report of ``paths`` (one run: its page; several: the comparison) to ``out`` atomically.
    Returns ``out`` and the notes of paths skipped."""
    notes: list[str] = []
    if len(paths) == 1:
        text = run_report_html(paths[0])
    else:
        text, notes = compare_report_html(paths)
    write_text(out, text)
    return Path(out), notes


def write_run_report(path: str | Path) -> Path:
    """Write ``report.html`` into the finished run directory ``path`` (atomically) and return its path."""
    return write_report([path], Path(path) / REPORT)[0]


__all__ = ["compare_report_html", "run_report_html", "write_report", "write_run_report"]
