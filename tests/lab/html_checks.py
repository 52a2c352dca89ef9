"""Checks that an HTML page is self-contained: parsed with :mod:`html.parser`, no fetches, real embedded PNGs."""

from __future__ import annotations

import base64
import struct
from html.parser import HTMLParser


class Page(HTMLParser):
    """What a page holds: its tags with attributes, its visible text, its tables' header and cell text."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.chunks: list[str] = []
        self.cells: list[str] = []
        self._cell: list[str] | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.cells.append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        self.chunks.append(data)
        if self._cell is not None:
            self._cell.append(data)

    @property
    def text(self) -> str:
        return "".join(self.chunks)

    def count(self, tag: str) -> int:
        return sum(1 for t, _ in self.tags if t == tag)


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk; AssertionError if ``data`` is not a PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def check_self_contained(text: str) -> Page:
    """Parse ``text`` and assert it fetches nothing: no script with src, no link element, no http(s) URL in any
    src or href, every img a data:image/png;base64 URI of a PNG of nonzero size. Returns the parsed page."""
    page = Page(text)
    assert text.startswith("<!DOCTYPE html>")
    for tag, attrs in page.tags:
        assert tag != "link", f"<link {attrs}>"
        assert not (tag == "script" and attrs.get("src")), f"<script src={attrs.get('src')}>"
        for key in ("src", "href"):
            value = (attrs.get(key) or "").strip().lower()
            assert not value.startswith(("http:", "https:", "//", "file:")), f"<{tag} {key}={value}>"
        if tag == "img":
            src = attrs.get("src") or ""
            prefix = "data:image/png;base64,"
            assert src.startswith(prefix), src[:40]
            width, height = png_size(base64.b64decode(src[len(prefix) :], validate=True))
            assert width > 0 and height > 0
            assert attrs.get("alt")
    assert "http://" not in text and "https://" not in text
    return page
