"""Gallery entries of sec. 8.4 / 8.7: initialization, batch_norm, pretraining, curriculum (small budgets)."""

from __future__ import annotations

import json

import pytest

from regopt.lab.config import load_config
from regopt.lab.gallery.base import gallery_config
from regopt.lab.gallery.batch_norm import batch_norm
from regopt.lab.gallery.curriculum import curriculum
from regopt.lab.gallery.initialization import initialization
from regopt.lab.gallery.pretraining import pretraining
from regopt.lab.gallery.registry import GALLERY
from tests.lab.gallery_checks import check_files, first_table_rows

ENTRIES = {
    "initialization": initialization,
    "batch_norm": batch_norm,
    "pretraining": pretraining,
    "curriculum": curriculum,
}


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return tmp_path_factory.mktemp("demo")


def test_registered_in_order_with_docstrings():
    names = list(GALLERY)
    assert [name for name in names if name in ENTRIES] == list(ENTRIES)
    assert names.index("initialization") > names.index("optimizers")
    for name, entry in ENTRIES.items():
        assert GALLERY[name] is entry
        assert (entry.__doc__ or "").strip(), f"{name}: `regopt list` shows the docstring"


def test_initialization(out):
    result = initialization(out, False)
    check_files(result, out, "initialization")
    rows = first_table_rows(out / "initialization" / "table.md")
    ratios = {(row[0], row[1]): float(row[3]) for row in rows}
    assert len(rows) == 2 * 9  # two networks, eight policies and the too-small init
    assert 0.3 < ratios["ReLU", "he_normal"] < 3  # He keeps the scale of a deep ReLU network
    assert ratios["ReLU", "xavier_uniform"] < 0.01  # Glorot's gain of 1 halves the variance per ReLU layer
    assert ratios["ReLU", "N(0, 0.01^2)"] < 1e-6 and ratios["tanh", "N(0, 0.01^2)"] < 1e-6
    assert 0.1 < ratios["tanh", "xavier_uniform"] < 3


def test_batch_norm(out):
    result = batch_norm(out, False, epochs=2)
    check_files(result, out, "batch_norm")
    base = gallery_config("batch_norm")
    assert base.model.batch_norm and len(base.model.widths) >= 10
    for name, flag in (("plain", False), ("batch_norm", True)):
        saved = load_config(out / "batch_norm" / name / "config.toml")  # ordinary run directories
        assert saved.model.batch_norm is flag
        assert saved.optimizer == base.optimizer and saved.model.widths == base.model.widths
        assert json.loads((out / "batch_norm" / name / "summary.json").read_text())["epochs"] == 2
    rows = first_table_rows(out / "batch_norm" / "table.md")
    assert [row[0] for row in rows] == ["no batch norm", "no batch norm, He init", "batch norm"]
    final = {row[0]: float(row[3]) for row in rows}
    assert final["batch norm"] < final["no batch norm"] - 0.1  # default init: the plain deep net barely moves


def test_pretraining(out):
    result = pretraining(out, False, epochs_per_stage=1, seeds=(0,))
    check_files(result, out, "pretraining")
    rows = first_table_rows(out / "pretraining" / "table.md")
    assert [row[0] for row in rows] == ["from scratch", "greedy, layers kept training", "greedy, earlier layers frozen"]
    assert len({row[5] for row in rows}) == 1  # the same number of optimizer steps for all
    for row in rows:
        assert float(row[2]) < 0.85, f"{row[0]} did not learn"
    assert set(result.numbers) == {f"mean test error, {row[0]}" for row in rows}


def test_curriculum(out):
    result = curriculum(out, False, epochs=4, seeds=(0,))
    check_files(result, out, "curriculum")
    assert [f.name for f in result.files] == ["curves.png", "continuation.png", "table.md"]
    rows = first_table_rows(out / "curriculum" / "table.md")
    steps = {row[0]: int(row[4]) for row in rows}
    assert steps["random order"] == steps["curriculum, same steps"] == 4 * 32
    assert steps["curriculum (easy first)"] < steps["random order"]
    text = (out / "curriculum" / "table.md").read_text()
    assert "## continuation" in text
    final_w, global_w = (
        result.numbers["continuation: final w (global minimum)"].replace("(", "").replace(")", "").split()
    )
    assert float(final_w) == pytest.approx(float(global_w), abs=0.1)
    assert result.numbers["plain gradient descent: final w"] == pytest.approx(2.112, abs=0.02)
