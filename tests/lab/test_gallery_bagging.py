"""Gallery entry ``bagging``: files written, and the ensemble reads 9, 6, 8 better than its members."""

from __future__ import annotations

import pytest
import torch

from regopt.lab.gallery.bagging import DIGITS, PER_CLASS, accuracy_vs_k, bagging, digits_968, pick_columns
from regopt.lab.gallery.registry import GALLERY
from tests.lab.gallery_checks import PNG, table_rows


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return out, bagging(out, False)


def test_registered_after_the_existing_entries():
    names = list(GALLERY)
    assert GALLERY["bagging"] is bagging
    assert names[:2] == ["overfit", "optimizers"] and names.index("bagging") > names.index("underconstrained")


def test_data_is_the_seeds_three_digits():
    x, y, x_test, y_test = digits_968()
    assert x.shape == (3 * PER_CLASS, 64) and torch.bincount(y).tolist() == [PER_CLASS] * 3
    assert len(x_test) == 535 - 3 * PER_CLASS and set(y_test.tolist()) == {0, 1, 2}
    assert DIGITS == (9, 6, 8)
    assert not (x[:, None] == x_test[None]).all(-1).any()  # no training image among the held-out ones


def test_files_and_numbers(result):
    out, r = result
    assert r.entry == "bagging"
    assert [f.name for f in r.files] == ["members_vs_ensemble.png", "accuracy_vs_k.png", "table.md"]
    for file in r.files:
        assert file.parent == out / "bagging" and file.is_file()
        if file.suffix == ".png":
            assert file.read_bytes()[:8] == PNG and file.stat().st_size > 20_000
    n = r.numbers
    mean_prob, vote = (float(v) for v in n["ensemble accuracy (mean prob / vote)"].split(" / "))
    assert n["mean member accuracy"] + 0.02 < min(mean_prob, vote)
    assert n["best member accuracy"] <= mean_prob
    rescued, held_out = (int(v) for v in n["held-out digits some member misreads, ensemble reads right"].split(" of "))
    assert rescued >= 20 and held_out == 490
    assert 0 < n["out-of-bag error"] < 0.15


def test_table_rises_with_k(result):
    out, _ = result
    text = (out / "bagging" / "table.md").read_text()
    assert text.startswith("## bagging on 9, 6, 8") and "| ---" in text
    rows = [[float(c) for c in row] for row in table_rows(out / "bagging" / "table.md")]
    assert [int(r[0]) for r in rows] == list(range(1, 11))
    assert rows[0][1] == rows[0][2] == rows[0][3]  # one member: the ensemble is that member
    assert rows[-1][1] > rows[0][1] + 0.02  # ten members beat one
    assert all(abs(r[3] - rows[0][3]) < 0.01 for r in rows)  # the average member stays where it is


def test_pick_columns_covers_digits_then_members():
    wrong = torch.tensor([[1, 0, 0, 1], [0, 1, 0, 1], [0, 0, 1, 0]], dtype=torch.bool)
    y = torch.tensor([0, 0, 1, 0])
    rescued = torch.ones(4, dtype=torch.bool)
    assert pick_columns(wrong, rescued, y, 2) == [3, 2]  # 3: new digit 0 and two members; 2: new digit 1
    assert pick_columns(wrong, rescued, y, 10) == [3, 2, 0, 1]
    assert pick_columns(wrong, torch.tensor([True, False, False, False]), y, 3) == [0]


def test_accuracy_vs_k_with_all_subsets():
    proba = torch.tensor([[[0.9, 0.1], [0.4, 0.6]], [[0.6, 0.4], [0.7, 0.3]], [[0.3, 0.7], [0.1, 0.9]]])
    rows = accuracy_vs_k(proba, torch.tensor([0, 1]))  # member accuracies 1, 0.5, 0.5
    assert rows[0] == pytest.approx((1, 2 / 3, 2 / 3, 2 / 3))
    assert rows[2][0] == 3 and rows[2][3] == pytest.approx(2 / 3)
