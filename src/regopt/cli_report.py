"""``regopt report RUN_DIR [RUN_DIR ...] --out report.html``: one self-contained HTML page of runs.

One run directory: its page (summary, curves, diagnostics' figures and tables, resolved config). Several: their
comparison table and overlaid curves, then each run (:mod:`regopt.lab.html_report`). Paths that are not finished
runs are skipped with a note; when none is left, one line ``regopt: error: ...`` and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rich.console import Console


def add_report_parser(sub: Any) -> None:
    """Register the ``report`` subcommand on ``regopt``'s subparsers."""
    p = sub.add_parser("report", help="one self-contained HTML page of a run, or a comparison of several")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories")
    p.add_argument("--out", default="report.html", help="the HTML file to write (default: report.html)")
    p.set_defaults(handler=report_command)


def report_command(args: argparse.Namespace, console: Console) -> int:
    from regopt.lab.html_report import write_report

    out, skipped = write_report(args.runs, args.out)  # RunDirError (exit 2) when no path is a finished run
    for note in skipped:
        print(f"regopt: note: skipped {note}", file=sys.stderr)
    console.print(f"wrote {out}", markup=False, highlight=False)
    return 0
