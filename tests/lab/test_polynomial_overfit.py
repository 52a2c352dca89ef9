"""examples/polynomial_overfit.toml shows overfitting: validation error bottoms out early and then rises while
the training error keeps falling."""

from __future__ import annotations

from pathlib import Path

from regopt.lab.config import load_config
from regopt.lab.runs import run

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "polynomial_overfit.toml"


def test_polynomial_example_overfits(tmp_path: Path) -> None:
    config = load_config(EXAMPLE, ["train.epochs=200"])  # the example runs 400; the turn comes near 90
    history = run(config, out=tmp_path).history
    best = min(history, key=lambda row: row["val_error"])
    last = history[-1]
    assert best["epoch"] <= 150 and last["epoch"] == 200
    assert last["val_error"] > 2 * best["val_error"]  # validation error rose after its best epoch...
    assert last["train_error"] < 0.9 * best["train_error"]  # ...while the training error kept falling
