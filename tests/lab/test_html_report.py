"""``report.html``: a run's page and several runs' comparison, self-contained, with the summary, curves,
diagnostics and config; ``regopt report`` and ``regopt run`` write them."""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
import pytest

from regopt.cli import main
from regopt.lab.config import validate
from regopt.lab.html import fmt, markdown_table_html, table
from regopt.lab.html_report import compare_report_html, run_report_html, summary_rows
from regopt.lab.runs import run
from tests.conftest import small_raw
from tests.lab.html_checks import Page, check_self_contained


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two finished tiny runs; the first with a gradient-norm diagnostic (its table) and a figure beside it."""
    out = tmp_path_factory.mktemp("runs")
    raw = small_raw(diagnostics={"gradient_norms": {"every": 1}})
    first = run(validate(raw), out=out).path
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    fig.savefig(first / "landscape.png")
    plt.close(fig)
    second = run(validate({**small_raw(), "name": "slower", "optimizer": {"name": "sgd", "lr": 0.02}}), out=out).path
    return first, second


def test_regopt_run_writes_a_self_contained_report(two_runs):
    path = two_runs[1]
    page = check_self_contained((path / "report.html").read_text())
    summary = json.loads((path / "summary.json").read_text())
    for key in ("best_val_error", "final_val_error", "generalization_gap", "test_error", "parameters"):
        assert fmt(summary[key]) in page.cells, key
    assert "lr = 0.02" in page.text  # the resolved config
    assert page.count("img") == 1  # the curves
    assert f"best val error rate {summary['best_val_error']:.3g} at epoch {summary['best_epoch']}" in page.text


def test_run_report_shows_the_diagnostics_figures_and_tables(two_runs):
    page = check_self_contained(run_report_html(two_runs[0]))
    assert page.count("img") == 2  # curves and the diagnostic's figure
    assert "landscape.png" in page.text
    tables = [p.name for p in two_runs[0].glob("*.csv") if p.name != "metrics.csv"]
    assert tables, "the gradient-norm monitor wrote no table"
    assert all(name in page.text for name in tables)
    assert "diagnostics" in page.text


def test_compare_report_has_the_comparison_table_and_each_run(two_runs, tmp_path):
    text, notes = compare_report_html([*two_runs, tmp_path / "missing"])
    page = check_self_contained(text)
    assert notes and "missing" in notes[0]
    assert page.count("img") == 1 + 3  # overlaid curves; each run's curves; the first run's diagnostic figure
    headers = ["run", "best val", "final val", "final train", "gap", "test", "epochs", "wall s"]
    assert all(h in page.cells for h in headers)
    for path in two_runs:
        summary = json.loads((path / "summary.json").read_text())
        assert path.name in page.cells
        assert fmt(summary["best_val_error"]) in page.cells
    assert "lr = 0.02" in page.text and "lr = 0.1" in page.text
    best = min(two_runs, key=lambda p: json.loads((p / "summary.json").read_text())["best_val_error"])
    assert f"lowest best val error rate: {best.name} (" in page.text  # the overlaid curves' finding


def test_regopt_report_cli_writes_the_file_and_refuses_a_non_run_in_one_line(two_runs, tmp_path, capsys):
    out = tmp_path / "cmp.html"
    assert main(["report", *map(str, two_runs), "--out", str(out)]) == 0
    check_self_contained(out.read_text())
    capsys.readouterr()
    assert main(["report", str(tmp_path / "nope"), "--out", str(tmp_path / "bad.html")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("regopt: error: ") and "nope" in err
    assert not (tmp_path / "bad.html").exists()


def test_text_is_escaped_and_markdown_tables_become_tables():
    page = Page(table(["a<b"], [["<script>x</script>"]]))
    assert page.cells == ["a<b", "<script>x</script>"] and page.count("script") == 0
    md = "## title\n\n| run | error |\n| --- | ---: |\n| a | 0.0500 |\n| b | 0.1 |\n"
    page = Page(markdown_table_html(md))
    assert page.cells == ["run", "error", "a", "0.0500", "b", "0.1"]
    assert page.count("h4") == 1


def test_summary_rows_keep_missing_values_test_metrics_and_notes():
    rows = dict(summary_rows({"best_val_error": None, "test_error": 0.1, "parameters": 5, "notes": ["n1"]}))
    assert rows["best validation error"] is None and rows["test error"] == 0.1 and rows["note"] == "n1"
