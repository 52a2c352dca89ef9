"""``runs/demo/index.html``: every gallery entry by chapter with its claim; those run with their measurements
and embedded figures, the others listed as not run; and every entry has a claim and a chapter."""

from __future__ import annotations

import re
from pathlib import Path

from regopt.cli import main
from regopt.lab.gallery.registry import CHAPTERS, CLAIMS, ENTRIES
from tests.lab.html_checks import Page, check_self_contained

README = Path(__file__).resolve().parents[2] / "README.md"


def sections(page_text: str) -> dict[str, str]:
    """Each entry's section of the page (its raw HTML), by entry name."""
    found = re.findall(r'<section id="entry-(\w+)">(.*?)</section>', page_text, flags=re.S)
    return dict(found)


def test_every_entry_has_a_claim_and_one_chapter():
    grouped = [name for names in CHAPTERS.values() for name in names]
    assert sorted(grouped) == sorted(ENTRIES)  # each entry in exactly one chapter
    assert set(CLAIMS) == set(ENTRIES)
    for name, claim in CLAIMS.items():
        sentences = [s for s in re.split(r"(?<=[.!?])\s+", claim.strip()) if s]
        assert claim.strip().endswith(".") and 1 <= len(sentences) <= 2, name


def test_the_readme_gallery_table_is_the_registry_grouping():
    rows = dict(re.findall(r"^\| (\d, \w+) \| (`.*`) \|$", README.read_text(), flags=re.M))
    assert {chapter: tuple(re.findall(r"`(\w+)`", names)) for chapter, names in rows.items()} == CHAPTERS


def test_demo_only_writes_an_index_of_every_entry(tmp_path, capsys):
    assert main(["demo", "--only", "cliff", "--out", str(tmp_path), "--quiet"]) == 0
    text = (tmp_path / "index.html").read_text()
    page = check_self_contained(text)
    found = sections(text)
    assert list(found) == [name for names in CHAPTERS.values() for name in names]  # grouped by chapter, in order
    assert [h for h in re.findall(r"<h2>(.*?)</h2>", text)] == [f"chapter {c}" for c in CHAPTERS]
    cliff = Page(found["cliff"])
    assert "not run" not in cliff.text
    assert CLAIMS["cliff"] in cliff.text and "regopt demo --only cliff" in cliff.text
    assert cliff.count("img") == 1 and page.count("img") == 1  # the entry's figure, embedded
    assert "clip_grad_norm_ (max_norm 1)" in cliff.cells  # its markdown table, as an HTML table
    for name in ENTRIES:
        if name != "cliff":
            other = Page(found[name])
            assert "(not run)" in other.text, name
            assert CLAIMS[name] in other.text and f"regopt demo --only {name}" in other.text
            assert other.count("img") == 0
