"""Closure optimizers under ``torchrun`` (issue 20): SAM's two passes and L-BFGS's line search run through
DistributedDataParallel on two real processes (gloo) and give the single-process run to float32 rounding (the
closure's loss is the whole batch's on every rank, so the line searches decide alike). Newton's refusal under a
world is a unit test (tests/lab/test_differentiating_optimizers.py); that a refusal comes in one line from rank 0
without a hang, tests/lab/test_torchrun.py shows."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from regopt.cli import main
from regopt.lab.runs import read_metrics
from tests.lab.test_torchrun import torchrun, weights, write

CLOSURE = """
name = "{name}"
seed = 3
[data]
name = "moons"
num_samples = 300
[model]
name = "mlp"
widths = [16]
[optimizer]
{optimizer}
[train]
epochs = 3
batch_size = {batch_size}
[regularize]
l2 = {{alpha = 0.001}}
"""

OPTIMIZERS = {
    "sam": ('name = "sam"\nbase = "sgd"\nlr = 0.1\nmomentum = 0.9\nrho = 0.1', 32),
    "lbfgs": ('name = "lbfgs"\nmax_iter = 5', 512),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_two_processes_take_the_single_process_closure_steps(tmp_path: Path, name: str) -> None:
    optimizer, batch_size = OPTIMIZERS[name]
    config = write(tmp_path, CLOSURE, name=name, optimizer=optimizer, batch_size=batch_size)
    done = torchrun(str(config), "--out", "two", "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert main(["run", str(config), "--out", str(tmp_path / "one"), "--quiet"]) == 0
    one, two = tmp_path / "one" / name, tmp_path / "two" / name
    rows_one, rows_two = read_metrics(one / "metrics.csv"), read_metrics(two / "metrics.csv")
    assert len(rows_one) == len(rows_two) == 3
    for a, b in zip(rows_one, rows_two, strict=True):
        for key in ("train_loss", "val_loss", "val_error"):
            assert b[key] == pytest.approx(a[key], abs=1e-5), key
    assert rows_one[-1]["train_loss"] < 0.8 * rows_one[0]["train_loss"]  # the runs did train
    w_one, w_two = weights(one), weights(two)
    for key in w_one:
        torch.testing.assert_close(w_two[key], w_one[key], atol=1e-5, rtol=0)
