"""What ``regopt run`` prints when a run ends: one result line, then the run's notes and diagnostics alarms.

The summary is read defensively (``.get``), so run directories written by earlier versions print too.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

_ALARM_LISTS = ("gradient_spikes", "ill_conditioning_alarms", "plateaus")
"""Lists of messages in ``summary["diagnostics"]`` written before its ``alarms`` list existed."""


def fixed(value: object) -> str:
    """A metric as the run line prints it: 4 decimals, or "-" when the run did not measure it."""
    return f"{value:.4f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "-"


def result_line(path: Path, s: Mapping[str, Any]) -> str:
    """One line: why training stopped, the best and final errors (or what the final model is), test, time.

    After ``then = "retrain"`` or ``"continue"`` (Algorithms 7.2, 7.3) the final model trained on the validation
    data, so the line names it and quotes the early-stopping phase's validation figures, not a final one.
    """
    metric = s.get("error_metric", "error")
    test = f", test {fixed(s['test_error'])}" if s.get("test_error") is not None else ""
    seconds = f", {s.get('wall_time_s', 0.0):.1f} s"
    if "final_model" in s:
        phase = s.get("early_stopping") or {}
        return (
            f"{path}: {s.get('stop_reason')}; final model: {s['final_model']}; early-stopping phase best val "
            f"{metric} {fixed(phase.get('best_val_error'))} (epoch {phase.get('best_epoch')}){test}{seconds}"
        )
    return (
        f"{path}: {s.get('stop_reason')}; best val {metric} {fixed(s.get('best_val_error'))} "
        f"(epoch {s.get('best_epoch')}), final train {fixed(s.get('final_train_error'))} / val "
        f"{fixed(s.get('final_val_error'))}{test}{seconds}"
    )


def lines_of(value: object) -> list[str]:
    """A summary's notes: a list of lines, or one line, or nothing."""
    if not value:
        return []
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]


def alarm_line(alarm: object) -> str:
    """``step N: message`` for an alarm dict (the step is not repeated when the message names it)."""
    if not isinstance(alarm, dict):
        return str(alarm)
    message, step = str(alarm.get("message", alarm)), alarm.get("step")
    return message if step is None or f"step {step}" in message else f"step {step}: {message}"


def alarms_of(found: Mapping[str, Any]) -> list[str]:
    """The alarms of a run's diagnostics, one line each: its ``alarms`` list (dicts with ``step`` and
    ``message``), else the messages of each monitor's list."""
    if isinstance(found.get("alarms"), list):
        return [alarm_line(alarm) for alarm in found["alarms"]]
    return [str(m) for key in _ALARM_LISTS for m in found.get(key) or []]


def run_summary_lines(path: Path, summary: Mapping[str, Any]) -> list[str]:
    """Every line ``regopt run`` prints at the end of a run."""
    out = [result_line(path, summary)]
    out += [f"note: {line}" for line in [*lines_of(summary.get("data_notes")), *lines_of(summary.get("notes"))]]
    alarms = alarms_of(summary.get("diagnostics") or {})
    if alarms:
        out.append(f"diagnostics: {len(alarms)} alarm{'s' if len(alarms) > 1 else ''}")
        out += [f"  {line}" for line in alarms]
    hidden = (summary.get("diagnostics") or {}).get("alarms_not_shown") or {}
    count = sum(hidden.values()) if isinstance(hidden, dict) else 0
    if count:
        out.append(f"  ({count} more not shown while training; summary.json lists every one)")
    return out
