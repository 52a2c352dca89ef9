"""``examples/regularize_*.py``: each chapter 7 technique in a plain PyTorch loop, run on a small budget."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def example(name: str) -> dict:
    return runpy.run_path(str(ROOT / "examples" / f"regularize_{name}.py"))


def test_penalties_l1_zeros_max_norm_bound_and_all_learn(capsys):
    results = example("penalties")["main"](steps=300)
    assert len(results) == 5 and len(capsys.readouterr().out.splitlines()) == 5
    for name, r in results.items():
        assert r["test_accuracy"] > 0.8, name
    assert results["L1 proximal (alpha=3e-3)"]["zeros"] > 0.1
    assert all(results[name]["zeros"] == 0.0 for name in results if not name.startswith("L1"))
    assert results["max-norm (c=1)"]["max_unit_norm"] <= 1.0 + 1e-5 < results["none"]["max_unit_norm"]
    assert results["L2 (alpha=1e-2)"]["max_unit_norm"] < results["none"]["max_unit_norm"]


def test_noise_and_dropout_variants_learn_and_inference_rules_agree():
    results = example("noise_dropout")["main"](steps=150)
    variants = [key for key in results if not key.startswith("inference")]
    assert len(variants) == 6
    for name in variants:
        assert results[name] > 0.75, name
    assert results["inference agreement"] > 0.9
    assert abs(results["inference weight_scaling_error"] - results["inference mc_error"]) < 0.05


def test_augment_keeps_labels_and_bounds_the_shift():
    results = example("augment")["main"](steps=200)
    assert results["digits plain"] > 0.8 and results["digits augmented"] > 0.7
    assert results["signal labels kept"] == 1.0
    assert 1 <= results["signal max shift"] <= 3  # shift=3: the bump moves, never further than 3
    assert 0.8 <= results["signal max height"] <= 1.3  # scale (0.8, 1.2) plus a little noise


def test_early_stopping_stops_and_restores_the_best_epoch(capsys):
    results = example("early_stopping")["main"](max_epochs=100, patience=5)
    assert results["stopped_epoch"] == results["best_epoch"] + 5
    assert results["restored_val_loss"] == pytest.approx(results["best_val_loss"])
    assert results["last_val_loss"] > results["best_val_loss"]
    assert results["test_error"] < 0.2
    assert "restored the weights of epoch" in capsys.readouterr().out


def test_multitask_learns_every_task():
    accuracy = example("multitask")["main"](steps=200)
    assert list(accuracy) == ["digit", "parity", "greater_than_4"]
    assert accuracy["digit"] > 0.7 and accuracy["parity"] > 0.8 and accuracy["greater_than_4"] > 0.8


def test_tying_sharing_sparsity_and_ridge_example():
    import runpy
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "examples" / "regularize_tying_sparsity.py"
    numbers = runpy.run_path(str(script))["main"](steps=150)
    assert numbers["tying: ||w_A - w_B|| tied (alpha 0.1)"] < 0.5 * numbers["tying: ||w_A - w_B|| untied"]
    assert numbers["sharing: parameters with one shared 32x32 layer"] == 10 * 32 + 32 + 32 * 32 + 32 + 32 + 1
    assert (
        numbers["sparsity: zero activations with ActivationL1(0.01)"]
        > numbers["sparsity: zero activations without penalty"]
    )
    assert numbers["ridge: cond(X'X)"] > 1e10 > numbers["ridge: cond(X'X + 0.1 I)"]
    assert numbers["ridge(alpha=1e-8) distance to the pseudo-inverse solution"] < 1e-4
