"""``runs/demo/index.html``: the gallery on one self-contained page, one section per entry, grouped by chapter.

Each entry's section gives the seed's claim it shows (:data:`regopt.lab.gallery.chapters.CLAIMS`), what was
measured (its headline numbers and its markdown tables, as HTML tables), its figures (PNG, embedded as data URIs)
and the command that reruns it. Entries not run this time (``regopt demo --only``) are listed as "not run", with
their claim and command. The page is built from the :class:`~regopt.lab.gallery.base.GalleryResult` of each entry
run, so it needs nothing but the files those name.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from regopt.lab import html
from regopt.lab.atomic import write_text
from regopt.lab.gallery.base import GalleryResult
from regopt.lab.gallery.chapters import CHAPTERS, CLAIMS, rerun_command

INDEX = "index.html"
"""The gallery page's file name, in the demo's output folder."""


def _anchor(name: str) -> str:
    return f"entry-{name}"


def _files_html(result: GalleryResult, out: Path) -> str:
    """The entry's tables (``.md``) as HTML tables, then its figures (``.png``) embedded; other files listed."""
    parts, others = [], []
    for path in result.files:
        if path.suffix == ".md" and path.is_file():
            parts.append(html.markdown_table_html(path.read_text()))
    for path in result.files:
        if path.suffix == ".png" and path.is_file():
            parts.append(html.figure(path, _relative(path, out)))
        elif path.suffix != ".md":
            others.append(_relative(path, out))
    if others:
        items = "".join(f"<li><code>{html.escape(name)}</code></li>" for name in others)
        parts.append(f'<p class="note">other files:</p><ul class="note">{items}</ul>')
    return "\n".join(parts)


def _relative(path: Path, out: Path) -> str:
    try:
        return str(path.resolve().relative_to(out.resolve()))
    except ValueError:
        return str(path)


def entry_section(name: str, result: GalleryResult | None, out: Path) -> str:
    """One entry's ``<section>``: title, claim, and (if run) its numbers, tables and figures; then its command."""
    status = "" if result is not None else ' <span class="notrun">(not run)</span>'
    parts = [
        f'<section id="{_anchor(name)}"><h3>{html.escape(name)}{status}</h3>',
        f'<p class="claim"><strong>Claim:</strong> {html.escape(CLAIMS[name])}</p>',
    ]
    if result is None:
        parts.append('<p class="notrun">not run in this demo; rerun it with the command below.</p>')
    else:
        parts.append("<h4>what was measured</h4>")
        if result.numbers:
            parts.append(html.key_value_table(result.numbers))
        parts.append(_files_html(result, out))
    parts.append(f"<p>rerun: <code>{html.escape(rerun_command(name))}</code></p></section>")
    return "\n".join(parts)


def index_html(results: Mapping[str, GalleryResult], out: str | Path) -> str:
    """The gallery page: a table of contents, then each chapter's entries; ``results`` holds those that ran."""
    out = Path(out)
    ran = sum(1 for names in CHAPTERS.values() for name in names if name in results)
    total = sum(len(names) for names in CHAPTERS.values())
    parts = [f'<p class="note">{ran} of {total} entries run; output folder {html.escape(out)}.</p>', "<nav><ul>"]
    for names in CHAPTERS.values():
        for name in names:
            mark = "" if name in results else " (not run)"
            parts.append(f'<li><a href="#{_anchor(name)}">{html.escape(name)}</a>{mark}</li>')
    parts.append("</ul></nav>")
    for chapter, names in CHAPTERS.items():
        parts.append(f"<h2>chapter {html.escape(chapter)}</h2>")
        parts += [entry_section(name, results.get(name), out) for name in names]
    return html.page("regopt demo: the chapter's figures", "\n".join(parts))


def write_index(results: Mapping[str, GalleryResult], out: str | Path) -> Path:
    """Write :func:`index_html` to ``out/index.html`` atomically; returns its path."""
    path = Path(out) / INDEX
    write_text(path, index_html(results, out))
    return path
