"""Self-contained HTML pieces for reports: escaped text, tables, embedded figures, one page with inline CSS.

Every page these build is one file that opens offline: figures are PNG bytes embedded as ``data:image/png;base64``
URIs, the style sheet is inline, and there are no scripts, fonts or links to fetch. Text is escaped with
:func:`html.escape`, so a run name or config value cannot inject markup.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto; max-width: 72rem;
       padding: 0 1rem; color: #222; line-height: 1.45; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.3rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
h3 { font-size: 1.1rem; margin-top: 1.5rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; vertical-align: top; }
th { background: #f3f3f3; text-align: left; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1rem 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.85rem; color: #555; }
pre, code { background: #f7f7f7; font-size: 0.85rem; } pre { padding: 0.6rem; overflow-x: auto; }
.claim { font-size: 1.02rem; } .notrun { color: #777; } .note { color: #555; font-size: 0.9rem; }
nav ul { columns: 2; }
"""
"""The pages' only style sheet, inlined in ``<style>``."""


def escape(value: Any) -> str:
    """``value`` as text safe inside HTML (``<``, ``&`` and quotes escaped)."""
    return html.escape(str(value), quote=True)


def fmt(value: Any, digits: int = 4) -> str:
    """A table cell's text: floats to ``digits`` significant digits, None as "-", NaN/inf spelled out."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return str(value) if not math.isfinite(value) else f"{value:.{digits}g}"
    return str(value)


def page(title: str, body: str) -> str:
    """A whole HTML5 document: ``title`` in ``<title>`` and ``<h1>``, then ``body`` (already HTML)."""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        f"<h1>{escape(title)}</h1>\n{body}\n</body>\n</html>\n"
    )


def _is_number(value: Any) -> bool:
    """A number, or text that reads as one (a markdown table's cell): right-aligned."""
    if isinstance(value, str):
        try:
            float(value.replace(",", ""))
        except ValueError:
            return False
        return True
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, caption: str = "", digits: int = 4) -> str:
    """An HTML table; numbers right-aligned and formatted by :func:`fmt`, everything else escaped text."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="num">{escape(fmt(v, digits))}</td>' if _is_number(v) else f"<td>{escape(fmt(v))}</td>"
            for v in row
        )
        body.append(f"<tr>{cells}</tr>")
    cap = f"<caption>{escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>\n"


def key_value_table(items: Mapping[str, Any], *, digits: int = 4) -> str:
    """A two-column table (quantity, value) of ``items``, in their order."""
    return table(("quantity", "value"), [(k, v) for k, v in items.items()], digits=digits)


def png_data_uri(png: bytes | str | Path) -> str:
    """``data:image/png;base64,...`` of PNG bytes or of a PNG file; :class:`ValueError` if it is not a PNG."""
    data = png if isinstance(png, bytes) else Path(png).read_bytes()
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise ValueError(f"{png if not isinstance(png, bytes) else 'bytes'}: not a PNG image")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def figure(png: bytes | str | Path, caption: str, *, alt: str = "") -> str:
    """``<figure>`` with the PNG embedded as a data URI and ``caption`` under it."""
    return (
        f'<figure><img src="{png_data_uri(png)}" alt="{escape(alt or caption)}">'
        f"<figcaption>{escape(caption)}</figcaption></figure>\n"
    )


def details(summary: str, content_html: str, *, open_: bool = False) -> str:
    """A collapsible ``<details>`` block titled ``summary``."""
    return f"<details{' open' if open_ else ''}><summary>{escape(summary)}</summary>{content_html}</details>\n"


def pre(text: str) -> str:
    """Preformatted, escaped ``text`` (a config file, a command)."""
    return f"<pre>{escape(text)}</pre>\n"


def markdown_table_html(text: str) -> str:
    """The markdown pipe tables in ``text`` as HTML tables, ``## heading`` lines as ``<h4>``, any other
    non-blank lines as paragraphs (what :func:`regopt.lab.gallery.base.write_table` writes)."""
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if line.startswith("|") and i + 1 < len(lines) and set(lines[i + 1].strip()) <= set("|-: "):
            headers = _cells(line)
            i += 2
            rows = []
            while i < len(lines) and lines[i].strip().startswith("|"):
                rows.append(_cells(lines[i].strip()))
                i += 1
            out.append(table(headers, rows))
            continue
        if line.startswith("#"):
            out.append(f"<h4>{escape(line.lstrip('#').strip())}</h4>")
        elif line:
            out.append(f"<p>{escape(line)}</p>")
        i += 1
    return "\n".join(out) + "\n"


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]
