"""Resume is exact on the compiled optimizer path too (issue 15, item 3): a model large enough for a compiled
update (Adam on a 1.1M-parameter MLP with dropout and a per-step schedule, ``compile = true``) trained for 1 epoch
in one process and resumed to 3 in another ends with the bits of one process training 3 straight. Each step is a
real process, as a kill and a later ``regopt run --resume`` are; the resumed process loads its kernel from the
inductor cache the first one filled, the straight run compiles its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

CONFIG = """
name = "big"
[data]
name = "mnist1d"
train_size = 192
[model]
name = "mlp"
widths = [1024, 1024]
dropout_hidden = 0.1
[optimizer]
name = "adam"
lr = 1e-3
compile = true
[schedule]
name = "exponential"
gamma = 0.999
interval = "step"
[train]
epochs = 3
batch_size = 64
evaluate_test = false
"""


def regopt_run(config: Path, out: Path, *extra: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("REGOPT_COMPILE", None)
    command = [sys.executable, "-m", "regopt.cli", "run", str(config), "--out", str(out), "--quiet", *extra]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def test_a_compiled_run_resumed_in_a_new_process_ends_with_the_same_bits(tmp_path: Path) -> None:
    config = tmp_path / "big.toml"
    config.write_text(CONFIG)
    regopt_run(config, tmp_path / "straight")
    regopt_run(config, tmp_path / "resumed", "--set", "train.epochs=1")
    regopt_run(config, tmp_path / "resumed", "--resume")
    straight = torch.load(tmp_path / "straight" / "big" / "checkpoint.pt", weights_only=True)
    resumed = torch.load(tmp_path / "resumed" / "big" / "checkpoint.pt", weights_only=True)
    assert straight["position"] == resumed["position"] == {"epoch": 3, "batch": 0, "step": 9}
    for name, tensor in straight["model"].items():
        assert torch.equal(tensor, resumed["model"][name]), name

    def measured(history: list[dict]) -> list[dict]:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in history]  # all but wall time

    assert measured(straight["history"]) == measured(resumed["history"])
