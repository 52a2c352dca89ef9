"""The headless-Chromium harness (tests/browser.py) on pages written here: clean, broken image, console error,
remote resources, a lazy image below the fold. Screenshots are kept beside each page in the test's tmp_path."""

from __future__ import annotations

import base64
import io
import struct
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

import tests.browser as browser_module
from tests.browser import BLOCKED_URLS, PageCheck, check_page

TABLE_TEXT = ["best val error", "0.0312", "weight_decay run 7"]


def _png_data_uri() -> str:
    """A small matplotlib figure as a data: URI, the way a report inlines its figures."""
    fig = Figure(figsize=(3, 2), dpi=50)
    fig.add_subplot().plot([0, 1, 2], [2, 1, 0.5])
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _page(tmp_path: Path, name: str, body: str) -> Path:
    html = f"""<!doctype html><html><head><meta charset="utf-8"><title>{name}</title>
<style>body {{ font-family: sans-serif; }} table, td, th {{ border: 1px solid #888; }}</style></head>
<body>{body}</body></html>"""
    path = tmp_path / f"{name}.html"
    path.write_text(html, encoding="utf-8")
    return path


def _check(browser: Any, tmp_path: Path, name: str, body: str) -> PageCheck:
    page = _page(tmp_path, name, body)
    shot = tmp_path / f"{name}.png"
    check = check_page(browser, page, shot)
    print(f"screenshot: {shot}")
    return check


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_clean_self_contained_page(browser: Any, tmp_path: Path) -> None:
    header, *cells = TABLE_TEXT
    table = f"<table><tr><th>{header}</th></tr>" + "".join(f"<tr><td>{c}</td></tr>" for c in cells) + "</table>"
    check = _check(browser, tmp_path, "clean", f'<h1>Report</h1><img src="{_png_data_uri()}" alt="curves">{table}')
    assert check.problems() == []
    assert check.image_count == 1
    for text in TABLE_TEXT:
        assert text in check.text
    assert check.screenshot == tmp_path / "clean.png"
    width, height = _png_size(check.screenshot)
    assert 1200 <= width <= 1280 and height > 0  # the window's width (--window-size) less any scroll bar


def test_broken_data_uri_image_is_reported(browser: Any, tmp_path: Path) -> None:
    good, bad = _png_data_uri(), "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAA"  # a PNG cut off in its header
    check = _check(browser, tmp_path, "broken", f'<img src="{good}"><img src="{bad}">')
    assert check.image_count == 2
    assert check.broken_images == [bad]
    assert check.console_errors == [] and check.network_requests == []


def test_console_error_and_uncaught_exception_are_reported(browser: Any, tmp_path: Path) -> None:
    script = '<p>text</p><script>console.error("boom"); throw new Error("kaput");</script>'
    check = _check(browser, tmp_path, "console", script)
    assert len(check.console_errors) == 2
    assert "boom" in check.console_errors[0] and "kaput" in check.console_errors[1]
    assert check.text.strip() == "text"


def test_remote_resources_are_blocked_and_recorded(browser: Any, tmp_path: Path) -> None:
    body = (
        '<link rel="stylesheet" href="https://cdn.example.com/style.css">'
        '<img src="http://example.com/x.png"><script>fetch("https://api.example.com/ping").catch(() => null)</script>'
    )
    check = _check(browser, tmp_path, "remote", body)
    assert sorted(check.network_requests) == [
        "http://example.com/x.png",
        "https://api.example.com/ping",
        "https://cdn.example.com/style.css",
    ]
    assert check.broken_images == ["http://example.com/x.png"]  # blocked, so it never decodes
    assert {"http://*", "https://*"} <= set(BLOCKED_URLS)


def test_lazy_image_below_the_fold_counts_as_loaded(browser: Any, tmp_path: Path) -> None:
    # A lazy image 5000 px down is not fetched until scrolled to; the harness must not call it broken.
    body = f'<div style="height: 5000px">tall</div><img loading="lazy" src="{_png_data_uri()}">'
    check = _check(browser, tmp_path, "lazy", body)
    assert check.image_count == 1 and check.broken_images == []
    assert check.problems() == []
    assert check.screenshot is not None
    assert _png_size(check.screenshot)[1] >= 5000  # the whole page, not only the window


def test_pages_do_not_leak_into_each_other(browser: Any, tmp_path: Path) -> None:
    # The console error of one page must not appear in the next page's check.
    _check(browser, tmp_path, "noisy", '<script>console.error("first page")</script>')
    check = _check(browser, tmp_path, "quiet", "<p>quiet</p>")
    assert check.problems() == []


def test_missing_browser_skips_naming_the_package(monkeypatch: Any, tmp_path: Path) -> None:
    monkeypatch.setattr(browser_module, "CHROMIUM", str(tmp_path / "no-chromium"))
    reason = browser_module._missing()
    assert reason is not None and "chromium" in reason and "apt-get install chromium chromium-driver" in reason
    monkeypatch.setattr(browser_module, "CHROMIUM", str(tmp_path))  # a directory is no browser either
    assert browser_module._missing() is not None
