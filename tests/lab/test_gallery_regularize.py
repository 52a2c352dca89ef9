"""Chapter 7's gallery entries on reduced budgets: their files, and the behaviour each figure is meant to show."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from regopt.cli import main
from regopt.lab.config import load_config
from regopt.lab.gallery.alpha_curve import alpha_curve
from regopt.lab.gallery.augmentation import augmentation
from regopt.lab.gallery.base import one_thread, variant
from regopt.lab.gallery.dropout import dropout
from regopt.lab.gallery.early_stopping import early_stopping
from regopt.lab.gallery.l1_vs_l2 import PENALTIES, l1_vs_l2
from regopt.lab.gallery.multitask import multitask
from regopt.lab.gallery.registry import GALLERY
from regopt.lab.gallery.underconstrained import underconstrained
from tests.lab.gallery_checks import check_files

ENTRIES = ["l1_vs_l2", "alpha_curve", "dropout", "augmentation", "early_stopping", "multitask", "underconstrained"]


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return tmp_path_factory.mktemp("demo")


def summary(path) -> dict:
    return json.loads((path / "summary.json").read_text())


def test_registered_after_the_existing_entries():
    names = list(GALLERY)
    positions = [names.index(name) for name in ENTRIES]
    assert positions == sorted(positions) and positions[0] > names.index("optimizers")
    for name in ENTRIES:
        assert (GALLERY[name].__doc__ or "").strip(), f"{name}: `regopt list` shows the docstring"


def test_l1_makes_exact_zeros_and_l2_does_not(out):
    result = l1_vs_l2(out, False, epochs=10)
    check_files(result, out, "l1_vs_l2")
    for name in PENALTIES:
        assert load_config(out / "l1_vs_l2" / name / "config.toml").name == name  # a run directory each
    n = result.numbers
    assert n["exact zeros, L2"] == 0.0 and n["exact zeros, no penalty"] == 0.0
    assert n["exact zeros, proximal L1"] > 0.05


def test_alpha_curve_under_fits_at_large_alpha(out):
    result = alpha_curve(out, False, epochs=8, alphas=(1e-1, 1e-4, 1e-2))
    check_files(result, out, "alpha_curve")
    small, large = summary(out / "alpha_curve" / "alpha-0.0001"), summary(out / "alpha_curve" / "alpha-0.1")
    assert large["final_train_error"] > small["final_train_error"] + 0.2
    assert load_config(out / "alpha_curve" / "alpha-0.01" / "config.toml").regularize.l2.alpha == 0.01
    assert result.numbers["best alpha (final val error)"] in (1e-4, 1e-2, 1e-1)


def test_dropout_runs_with_and_without_and_compares_inference(out):
    result = dropout(out, False, epochs=4)
    check_files(result, out, "dropout")
    assert load_config(out / "dropout" / "dropout" / "config.toml").model.dropout_hidden == 0.5
    assert load_config(out / "dropout" / "no_dropout" / "config.toml").model.dropout_hidden == 0.0
    n = result.numbers
    assert 0.5 < n["agreement of the two rules"] <= 1.0
    assert abs(n["val error, weight scaling"] - n["val error, MC dropout (50 samples)"]) < 0.1
    assert "weight scaling vs Monte Carlo dropout" in (out / "dropout" / "table.md").read_text()


def test_augmentation_only_changes_the_augmentation(out):
    result = augmentation(out, False, epochs=4)
    check_files(result, out, "augmentation")
    plain = load_config(out / "augmentation" / "plain" / "config.toml")
    augmented = load_config(out / "augmentation" / "augmented" / "config.toml")
    assert plain.regularize.augment_signal is None and augmented.regularize.augment_signal.shift == 5
    assert plain.model == augmented.model and plain.data == augmented.data and plain.seed == augmented.seed


def test_early_stopping_stops_after_patience_and_restores_an_earlier_epoch(out):
    result = early_stopping(out, False, epochs=45)
    check_files(result, out, "early_stopping")
    info = summary(out / "early_stopping" / "early_stopping")["early_stopping"]
    stopped, restored = info["stopped_epoch"], info["best_epoch"]
    assert stopped is not None and stopped < 45, "the shipped config stops well before 45 epochs"
    assert stopped - restored == 10  # the patience of early_stopping.toml
    assert result.numbers["stopped at epoch"] == stopped and result.numbers["restored epoch"] == restored
    # the reference run is the same run continued: identical metrics up to the stop
    rows = {}
    for name in ("early_stopping", "no_early_stopping"):
        with open(out / "early_stopping" / name / "metrics.csv", newline="") as f:
            rows[name] = [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]
    assert len(rows["early_stopping"]) == stopped and len(rows["no_early_stopping"]) == 45
    assert rows["no_early_stopping"][:stopped] == rows["early_stopping"]


def test_multitask_shares_the_trunk_initialization_and_reports_both(out):
    from regopt.lab.experiment import build_experiment
    from regopt.lab.gallery.base import base_config, variant

    base = base_config("multitask", epochs=1)
    multi = build_experiment(variant(base, "multitask", "m", {"seed": 3})).model
    single = build_experiment(variant(base, "multitask", "s", {"seed": 3, "multitask": None})).model
    shared = [*multi.trunk.parameters(), *multi.heads["digit"].parameters()]  # the single-task net's layers
    for a, b in zip(single.parameters(), shared, strict=True):
        assert torch.equal(a, b)
    result = multitask(out, False, epochs=15, seeds=(0,))
    check_files(result, out, "multitask")
    n = result.numbers
    assert 0.0 <= n["digit val error, multi-task"] < 0.6 and 0.0 <= n["digit val error, single-task"] < 0.6
    assert n["multi-task minus single-task"] == pytest.approx(
        n["digit val error, multi-task"] - n["digit val error, single-task"]
    )


def test_underconstrained_ridge_approaches_the_pseudo_inverse(out):
    result = underconstrained(out, False)
    check_files(result, out, "underconstrained")
    lines = (out / "underconstrained" / "table.md").read_text().splitlines()
    cells = [line.strip("| ").split(" | ") for line in lines if line.startswith("| ") and line[2].isdigit()]
    alphas, distances = [float(c[0]) for c in cells], [float(c[1]) for c in cells]
    assert alphas == sorted(alphas) and len(alphas) >= 10
    assert distances == sorted(distances), "distance to X^+ y shrinks as alpha shrinks"
    assert distances[0] < 1e-9 < distances[-1]


def test_one_thread_restores_the_thread_count():
    before = torch.get_num_threads()
    with one_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_variant_sets_and_removes_keys():
    base = {"data": {"name": "moons"}, "regularize": {"l2": {"alpha": 0.1}}, "train": {"epochs": 2}}
    config = variant(base, "test", "v", {"regularize.l2": None, "model.name": "mlp", "model.widths": [8]})
    assert config.name == "v" and config.regularize.l2 is None and config.model.widths == [8]
    assert base["regularize"] == {"l2": {"alpha": 0.1}}  # the base is not changed


def test_demo_command_runs_one_entry(tmp_path, capsys):
    assert main(["demo", "--only", "underconstrained", "--out", str(tmp_path), "--quiet"]) == 0
    assert (tmp_path / "underconstrained" / "ridge_path.png").is_file()
    assert "distance at alpha" in capsys.readouterr().out
