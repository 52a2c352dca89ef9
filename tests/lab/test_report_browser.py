"""The HTML reports in a real browser (issue 18, part 1): headless Chromium opens each page offline, with no
console error, every image decoded at a non-zero size, no request leaving the machine, and the summary's text on
the page. The screenshots stay beside the pages in the test's tmp_path for a person to look at."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from regopt.cli import main
from regopt.lab.config import validate
from regopt.lab.html_report import write_report
from regopt.lab.runs import run
from tests.browser import check_page
from tests.conftest import small_raw


def two_runs(out: Path) -> list[Path]:
    paths = []
    for name, lr in (("slow", 0.02), ("fast", 0.2)):
        raw = small_raw(name=name, optimizer={"name": "sgd", "lr": lr, "momentum": 0.9})
        raw["name"] = name
        raw["diagnostics"] = {"gradient_norms": {"every": 5}}
        paths.append(run(validate(raw), out=out).path)
    return paths


def assert_clean(check: Any, images: int) -> None:
    assert check.problems() == [], check.problems()
    assert check.image_count >= images
    assert check.screenshot is not None and check.screenshot.stat().st_size > 10_000
    print(f"screenshot: {check.screenshot}")


def test_run_and_comparison_reports_load_offline_with_their_figures_and_summary(tmp_path: Path, browser: Any) -> None:
    slow, fast = two_runs(tmp_path / "runs")
    check = check_page(browser, slow / "report.html", slow / "report.png")
    assert_clean(check, images=1)  # the curves
    summary = json.loads((slow / "summary.json").read_text())
    assert "slow" in check.text and "gradient_norms" in check.text  # the diagnostics' table
    assert f"{summary['best_val_error']:.4g}" in check.text or str(summary["best_val_error"]) in check.text
    out, _ = write_report([slow, fast], tmp_path / "both.html")
    check = check_page(browser, out, tmp_path / "both.png")
    assert_clean(check, images=1)
    assert "slow" in check.text and "fast" in check.text


def test_the_demo_index_loads_offline_with_the_entry_that_ran_and_the_rest_listed(tmp_path: Path, browser: Any) -> None:
    assert main(["demo", "--only", "overfit", "--out", str(tmp_path), "--quiet"]) == 0
    index = tmp_path / "index.html"
    check = check_page(browser, index, tmp_path / "index.png")
    assert_clean(check, images=1)
    assert "regopt demo --only overfit" in check.text
    assert "not run" in check.text and "warmup_and_plateau" in check.text
