"""Gallery entries ``ill_conditioning``, ``saddle`` and ``cliff``: files written, numbers as the seed says."""

from __future__ import annotations

import pytest

from regopt.lab.gallery.cliff import cliff
from regopt.lab.gallery.ill_conditioning import ill_conditioning
from regopt.lab.gallery.registry import GALLERY
from regopt.lab.gallery.saddle import saddle
from tests.lab.gallery_checks import check_files, table_rows


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return tmp_path_factory.mktemp("demo")


def test_registered_after_the_existing_entries():
    names = list(GALLERY)
    assert names[:2] == ["overfit", "optimizers"]
    assert names.index("ill_conditioning") < names.index("saddle") < names.index("cliff")
    assert GALLERY["ill_conditioning"] is ill_conditioning
    assert GALLERY["saddle"] is saddle and GALLERY["cliff"] is cliff


def test_ill_conditioning(out, capsys):
    result = ill_conditioning(out, False)
    names = ["trajectories.png", "criterion.png", "remedies.png", "table.md", "remedies.md"]
    check_files(result, out, "ill_conditioning", names)
    n = result.numbers
    assert n["stable lr boundary 2/H"] == 1 / 30
    assert (n["lr 0.033"], n["lr 0.034"], n["lr 0.035"]) == ("converges", "diverges", "diverges")
    assert n["|x| after 100 steps from 50 at lr 0.033 / 0.034 / 0.035"] == "6.631 / 2525 / 6.89e+05"
    assert float(n["Adam (lr 1) largest final |x|"]) < 1e-3
    raw, normalized = (float(v) for v in n["condition number raw / standardized"].split(" / "))
    assert raw > 1e3 * normalized
    slow, fast = (int(v) for v in n["GD iterations raw / standardized"].split(" / "))
    assert slow > 1000 * fast

    rows = table_rows(out / "ill_conditioning" / "table.md")
    assert len(rows) == 9  # 3 inputs x 3 learning rates
    for x0, lr, multiplier, x1, final, verdict, criterion, _ in rows:
        assert verdict == ("converges" if lr == "0.033" else "diverges")
        assert (float(criterion) < 0) is (lr == "0.033")
        assert float(multiplier) == pytest.approx(1 - 60 * float(lr))
        assert float(x1) == pytest.approx(float(x0) * (1 - 60 * float(lr)), abs=0.01)
        assert float(final) == pytest.approx(float(x0) * abs(1 - 60 * float(lr)) ** 100, rel=1e-3)
    assert rows[0][:4] == ["3", "0.033", "-0.98", "-2.94"]  # the hand-worked first step
    text = (out / "ill_conditioning" / "table.md").read_text()
    assert "1/30 = 0.033333" in text and "0.033 converges; 0.034 diverges; 0.035 diverges" in text
    assert "gradient descent on f(x) = 30 x^2" in capsys.readouterr().out  # the table printed too


def test_saddle(out):
    result = saddle(out, False)
    check_files(result, out, "saddle", ["saddle.png", "table.md"])
    n = result.numbers
    steps = [n["escape step (gradient descent)"], n["escape step (momentum)"], n["escape step (Adam)"]]
    assert steps == [38, 19, 11]
    assert n["methods that never escape from y = 0 exactly"] == "gradient descent, momentum, Adam"
    rows = table_rows(out / "saddle" / "table.md")
    assert [row[2] for row in rows] == ["38", "19", "11", "never", "never", "never"]
    assert all(float(row[4]) < -1.0 for row in rows[:3])  # f = x^2 - y^2 < -1 once |y| > 1 with |x| small


def test_cliff(out):
    result = cliff(out, False)
    check_files(result, out, "cliff", ["cliff.png", "table.md"])
    n = result.numbers
    jump, jump_clipped = (float(v) for v in n["largest loss increase, unclipped / clipped"].split(" / "))
    assert jump > 100 and jump_clipped == 0.0
    far, far_clipped = (float(v) for v in n["farthest x, unclipped / clipped"].split(" / "))
    assert far > 50 and far_clipped < 5
    loss, loss_clipped = (float(v) for v in n["loss after 40 steps, unclipped / clipped"].split(" / "))
    assert loss_clipped < 0.05 < 1 < loss
    jumps, jumps_clipped = (int(v) for v in n["starts with a jump (of 31), unclipped / clipped"].split(" / "))
    assert jumps >= 5 and jumps_clipped == 0
    rows = table_rows(out / "cliff" / "table.md")
    assert [row[0] for row in rows] == ["no clipping", "clip_grad_norm_ (max_norm 1)"]
    assert float(rows[0][3]) == pytest.approx(jump, abs=0.1)
