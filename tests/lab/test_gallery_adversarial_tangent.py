"""Gallery entries ``adversarial`` and ``tangent_prop`` and their examples on a reduced budget."""

from __future__ import annotations

import pytest

from regopt.lab.gallery.adversarial import adversarial
from regopt.lab.gallery.registry import GALLERY
from regopt.lab.gallery.tangent_prop import tangent_prop
from tests.lab.gallery_checks import check_files, table_rows


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return tmp_path_factory.mktemp("demo")


def test_registered_with_docstrings():
    names = list(GALLERY)
    assert GALLERY["adversarial"] is adversarial and GALLERY["tangent_prop"] is tangent_prop
    assert names.index("adversarial") < names.index("tangent_prop")
    assert names[:2] == ["overfit", "optimizers"]
    for name in ("adversarial", "tangent_prop"):
        assert (GALLERY[name].__doc__ or "").strip()


def test_adversarial(out, capsys):
    result = adversarial(out, False, epochs=10)
    check_files(result, out, "adversarial", ["robust_accuracy.png", "examples.png", "table.md"])
    rows = {row[0]: [float(cell) for cell in row[1:]] for row in table_rows(out / "adversarial" / "table.md")}
    assert list(rows) == ["clean", "FGSM-trained", "PGD-trained"]
    for name, (clean, f05, f10, f20, p05, p10, p20, _) in rows.items():
        assert clean > 0.9, name
        assert clean + 0.01 >= f05 >= f10 - 0.01 >= f20 - 0.02, name  # stronger attacks, lower accuracy
        assert clean + 0.01 >= p05 >= p10 - 0.01 >= p20 - 0.02, name
        assert p10 <= f10 + 0.03, name  # PGD is at least about as strong as FGSM
    for name in ("FGSM-trained", "PGD-trained"):
        assert rows[name][5] > rows["clean"][5] + 0.1  # PGD at eps 0.1: adversarial training helps
    n = result.numbers
    assert n["PGD-trained: PGD accuracy at eps=0.1"] > n["clean model: PGD accuracy at eps=0.1"] + 0.1
    assert "accuracy under attack" in capsys.readouterr().out


def test_tangent_prop(out, capsys):
    result = tangent_prop(out, False, epochs=10, alphas=(0.0, 0.3), sizes=(50,), cae_epochs=10)
    names = ["tangent_vectors.png", "tangent_prop.md", "nearest_neighbour.md", "learned_tangents.png"]
    check_files(result, out, "tangent_prop", [*names, "learned_tangents.md"])
    rows = table_rows(out / "tangent_prop" / "tangent_prop.md")
    assert [row[0] for row in rows] == ["0.000", "0.300"]
    (_, acc0, pen0, *changes0, _), (_, acc1, pen1, *changes1, _) = ([float(c) for c in row] for row in rows)
    assert acc0 > 0.8 and acc1 > 0.7
    assert pen1 < 0.1 * pen0  # the penalized sensitivity collapses
    assert all(after < before for before, after in zip(changes0, changes1, strict=True))
    ((size, euclidean, one_sided, two_sided),) = table_rows(out / "tangent_prop" / "nearest_neighbour.md")
    assert size == "50" and float(two_sided) > float(euclidean) and float(one_sided) > float(euclidean)
    rows = table_rows(out / "tangent_prop" / "learned_tangents.md")  # two tables: shares, then tangent prop
    shares, (header, _, *compare) = rows[:3], rows[3:]
    assert [row[0] for row in shares] == ["1", "3", "6"] and header[0] == "tangents"
    assert [row[0] for row in compare] == ["none", "hand-made (shift x, shift y, rotation)", "learned (CAE, k=3)"]
    assert [row[1] for row in compare[:2]] == ["0.000", "0.300"]  # the main table's rows, repeated
    assert float(compare[2][2]) > 0.7  # tangent prop with learned tangents trains
    for k, *cells in shares:
        learned, chance = [float(c) for c in cells[:3]], [float(c) for c in cells[3:]]
        # a random k-plane holds at most sqrt(k / 64) of a tangent on average (Jensen: E||Pv|| <= sqrt(E||Pv||^2));
        # the learned one more: at 10 CAE epochs 0.16-0.19 against 0.10 at k=1, 0.31-0.36 against 0.20 at k=3
        assert all(0.5 * (int(k) / 64) ** 0.5 < c < (int(k) / 64) ** 0.5 + 0.01 for c in chance)
        assert all(a > c + 0.02 for a, c in zip(learned, chance, strict=True))
    printed = capsys.readouterr().out
    assert "1-NN: Euclidean vs tangent distance" in printed and "contractive autoencoder" in printed


def test_example_adversarial(capsys):
    import runpy
    from pathlib import Path

    example = runpy.run_path(str(Path(__file__).resolve().parents[2] / "examples" / "adversarial.py"))
    results = example["main"](epochs=10)
    assert list(results) == ["clean", "adversarial", "labelled 50", "labelled 50 + VAT"]
    assert results["adversarial"]["PGD"] > results["clean"]["PGD"] + 0.1
    assert results["labelled 50 + VAT"]["PGD"] > results["labelled 50"]["PGD"]
    assert all(r["PGD"] <= r["clean"] for r in results.values())
    assert len(capsys.readouterr().out.splitlines()) == 4


def test_example_tangent_prop(capsys):
    import runpy
    from pathlib import Path

    example = runpy.run_path(str(Path(__file__).resolve().parents[2] / "examples" / "tangent_prop.py"))
    results = example["main"](epochs=5, alphas=(0.0, 0.3))
    assert results["alpha=0.3 rotation change"] < results["alpha=0.0 rotation change"]
    assert results["1-NN tangent"] > results["1-NN Euclidean"]
    # learned tangent planes hold part of the rotation tangent (0.28 measured), a random 3-plane about 0.20
    assert results["learned share"] > results["random share"] + 0.03
    assert len(capsys.readouterr().out.splitlines()) == 4
