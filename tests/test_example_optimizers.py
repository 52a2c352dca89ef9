"""``examples/optimizers.py``: every optimizer, Polyak averaging and the linear decay lower the loss in a plain loop."""

from __future__ import annotations

import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_optimizer_lowers_the_loss(capsys):
    example = runpy.run_path(str(ROOT / "examples" / "optimizers.py"))
    x, y, _, _ = example["load_data"]()
    initial, _ = example["evaluate"](example["make_model"](), x, y)
    final = example["main"](steps=20)
    expected = [*example["OPTIMIZERS"], "sgd + polyak", "sgd + linear decay"]
    assert list(final) == expected
    assert {"sgd", "momentum", "nesterov", "adagrad", "rmsprop", "rmsprop_nesterov", "adam", "adamw"} <= set(final)
    assert "delta_bar_delta" in final
    for name, loss in final.items():
        assert loss < 0.9 * initial, f"{name}: loss {loss:.4f} not below the initial {initial:.4f}"
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 1 + len(expected)  # the start line, then one line per optimizer
