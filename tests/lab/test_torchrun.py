"""``regopt run`` under ``torchrun``: two real processes on gloo give the single-process run.

Each test starts ``python -m torch.distributed.run --standalone --nproc_per_node=2 -m regopt run ...`` (torchrun's
own rendezvous on a free port) with a timeout, and compares what rank 0 wrote with a single-process run of the same
config. The slices of a batch are summed in another order than one process sums the batch, so weights and metrics
agree to float32 rounding (~1e-7 after a few dozen steps), not bitwise; a resume under the same torchrun repeats
the same operations and agrees bitwise.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from regopt.cli import main
from regopt.diagnostics import gradient_noise
from regopt.lab.checkpoint import load_checkpoint
from regopt.lab.config import ConfigError, DiagnosticsConfig, load_config
from regopt.lab.experiment import build_experiment
from regopt.lab.fsdp_config import check_fsdp, unsupported_with_fsdp
from regopt.lab.runs import read_metrics

TIMEOUT_S = 180

# 229 training examples in batches of 32: seven full batches cut 16/16 and one of 5 cut 3/2 (unequal slices,
# weighted); with accumulate = 2, micro-batches of 8/8, 2/1 and 1/1; an L2 penalty counted once per step;
# early stopping that stops
ACCUMULATE_L2_EARLY_STOP = """
name = "{name}"
seed = 5
[data]
name = "moons"
num_samples = 357
[model]
name = "mlp"
widths = [16, 16]
[optimizer]
name = "adam"
lr = 0.05
[train]
epochs = 25
batch_size = 32
accumulate = 2
[regularize]
l2 = {{alpha = 0.001}}
early_stopping = {{patience = 2, monitor = "val_loss", restore_best = false}}
"""

DROPOUT = """
name = "{name}"
seed = 9
[data]
name = "moons"
num_samples = 300
[model]
name = "mlp"
widths = [32]
dropout_hidden = 0.3
[optimizer]
name = "sgd"
lr = 0.1
momentum = 0.9
[train]
epochs = {epochs}
batch_size = 20
"""


def torchrun(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    command += ["-m", "regopt", "run", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT_S)


def write(tmp_path: Path, text: str, **values: object) -> Path:
    path = tmp_path / f"{values['name']}.toml"
    path.write_text(text.format(**values))
    return path


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return dict(load_checkpoint(run_dir / "checkpoint.pt")["model"])


def test_two_processes_train_the_single_process_model(tmp_path: Path) -> None:
    config = write(tmp_path, ACCUMULATE_L2_EARLY_STOP, name="ddp")
    done = torchrun(str(config), "--out", "two", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert main(["run", str(config), "--out", str(tmp_path / "one"), "--quiet"]) == 0
    one, two = tmp_path / "one" / "ddp", tmp_path / "two" / "ddp"
    rows_one, rows_two = read_metrics(one / "metrics.csv"), read_metrics(two / "metrics.csv")
    assert 2 < len(rows_two) < 25  # early stopping stopped both ranks at one epoch, before the limit
    assert len(rows_two) == len(rows_one)
    for a, b in zip(rows_one, rows_two, strict=True):
        for key in ("epoch", "step", "lr", "train_loss", "train_error", "val_loss", "val_error"):
            assert b[key] == pytest.approx(a[key], abs=1e-5), key
    w_one, w_two = weights(one), weights(two)
    assert w_one.keys() == w_two.keys()  # the plain module's names: no "module." from DDP
    for key in w_one:
        torch.testing.assert_close(w_two[key], w_one[key], atol=1e-5, rtol=0)
    assert done.stdout.count("regopt run ") == 1  # rank 0 alone speaks
    assert done.stdout.count("early stopping") <= 1 and "ddp: " in done.stdout
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())


def test_a_resumed_torchrun_run_continues_exactly(tmp_path: Path) -> None:
    whole = write(tmp_path, DROPOUT, name="whole", epochs=4)
    part = write(tmp_path, DROPOUT, name="part", epochs=2)
    for config in (whole, part):
        done = torchrun(str(config), "--out", "runs", "--quiet", cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
    longer = write(tmp_path, DROPOUT, name="part", epochs=4)
    done = torchrun(str(longer), "--out", "runs", "--quiet", "--resume", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    saved = load_checkpoint(tmp_path / "runs" / "part" / "checkpoint.pt")
    assert len(saved["rng_ranks"]) == 2  # each rank's dropout stream, so rank 1 resumes its own
    assert not torch.equal(saved["rng_ranks"][0]["torch"], saved["rng_ranks"][1]["torch"])
    a, b = weights(tmp_path / "runs" / "whole"), weights(tmp_path / "runs" / "part")
    for key in a:
        assert torch.equal(a[key], b[key]), key  # the same operations in the same order on each rank: bitwise
    rows_a, rows_b = read_metrics(tmp_path / "runs/whole/metrics.csv"), read_metrics(tmp_path / "runs/part/metrics.csv")
    assert [r["val_loss"] for r in rows_a] == [r["val_loss"] for r in rows_b]


def test_a_bad_start_is_one_line_from_rank_zero_and_no_hang(tmp_path: Path) -> None:
    config = write(tmp_path, DROPOUT, name="taken", epochs=1)
    (tmp_path / "runs" / "taken").mkdir(parents=True)
    (tmp_path / "runs" / "taken" / "keep.txt").write_text("mine")
    done = torchrun(str(config), "--out", "runs", cwd=tmp_path)
    assert done.returncode != 0
    assert done.stderr.count("regopt: error:") == 1 and "already exists" in done.stderr
    assert (tmp_path / "runs" / "taken" / "keep.txt").read_text() == "mine"


def test_batches_too_small_for_the_ranks_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    config = write(tmp_path, DROPOUT.replace("batch_size = 20", "batch_size = 1"), name="tiny", epochs=1)
    done = torchrun(str(config), "--out", "runs", cwd=tmp_path)
    assert done.returncode != 0
    line = next(line for line in done.stderr.splitlines() if line.startswith("regopt: error:"))
    assert "train.batch_size" in line and "2 ranks" in line and "at least 2" in line
    assert not (tmp_path / "runs" / "tiny").exists()


# a model that barely moves (lr 1e-6), so every step samples the gradient noise of the same weights; 640
# training examples in 13 batches of 48 (24 per rank) and a last one of 16, which the estimate leaves out
NOISE_SCALE = """
name = "gns"
seed = 2
[data]
name = "moons"
num_samples = 1000
noise = 0.3
[model]
name = "mlp"
widths = [16]
[optimizer]
name = "sgd"
lr = 1e-6
[train]
epochs = 6
batch_size = 48
[diagnostics]
gradient_noise_scale = {{}}
"""


def test_the_gradient_noise_scale_of_ddp_agrees_with_per_example_gradients(tmp_path: Path) -> None:
    config = write(tmp_path, NOISE_SCALE, name="gns")
    done = torchrun(str(config), "--out", "runs", "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = read_metrics(tmp_path / "runs" / "gns" / "gradient_noise_scale.csv")
    assert [r["steps"] for r in rows] == [13] * 6  # full batches only
    experiment = build_experiment(load_config(config).model_copy(update={"diagnostics": DiagnosticsConfig()}))
    model, data = experiment.model, experiment.data
    exact = gradient_noise(model, experiment.trainer.loss_fn, data.x_train, data.y_train)
    pooled = sum(r["trace_cov"] for r in rows) / sum(r["grad_norm_sq"] for r in rows)
    # 78 steps of two noisy norms each: the pooled ratio scatters by ~20% around the exact B_simple (6.3)
    assert exact["noise_scale"] / 1.5 < pooled < exact["noise_scale"] * 1.5
    summary = json.loads((tmp_path / "runs" / "gns" / "summary.json").read_text())
    assert summary["diagnostics"]["gradient_noise_scale"]["b_simple"] == rows[-1]["noise_scale"]


def test_the_gradient_noise_scale_in_one_process_is_refused_with_the_alternative(tmp_path: Path) -> None:
    config = write(tmp_path, NOISE_SCALE, name="gns1")
    with pytest.raises(ConfigError, match=r"gradient_noise_scale: .*torchrun.*gradient_noise"):
        build_experiment(load_config(config))


# FSDP2 shards parameters, gradients and optimizer state; the run is interrupted after 3 epochs and resumed
# (whole tensors on disk, each rank's slice back in memory) to compare with one uninterrupted process
FSDP = """
name = "{name}"
seed = 5
[data]
name = "moons"
num_samples = 357
[model]
name = "mlp"
widths = [16, 16]
[optimizer]
name = "rmsprop"
lr = 0.01
momentum = 0.9
nesterov = true
[train]
epochs = {epochs}
batch_size = 32
accumulate = 2
clip_grad_norm = 1.0
[regularize]
l2 = {{alpha = 0.001}}
l1 = {{alpha = 0.0001}}
early_stopping = {{patience = 20, monitor = "val_loss", restore_best = false}}
[diagnostics]
gradient_norms = {{}}
plateau = {{}}
[distributed]
strategy = "fsdp"
"""


def test_fsdp_sharded_training_resumed_equals_one_process(tmp_path: Path) -> None:
    whole = write(tmp_path, FSDP, name="fsdp", epochs=6)
    assert main(["run", str(whole), "--out", str(tmp_path / "one"), "--quiet"]) == 0  # one process: no sharding
    done = torchrun(str(whole), "--out", "two", "--quiet", "--set", "train.epochs=3", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    done = torchrun(str(whole), "--out", "two", "--resume", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    one, two = tmp_path / "one" / "fsdp", tmp_path / "two" / "fsdp"
    rows_one, rows_two = read_metrics(one / "metrics.csv"), read_metrics(two / "metrics.csv")
    assert len(rows_one) == len(rows_two) == 6
    for a, b in zip(rows_one, rows_two, strict=True):
        for key in ("train_loss", "train_error", "val_loss", "val_error"):
            assert b[key] == pytest.approx(a[key], abs=1e-5), key
    w_one, w_two = weights(one), weights(two)  # whole tensors, read with weights_only=True
    assert w_one.keys() == w_two.keys()
    for key in w_one:
        torch.testing.assert_close(w_two[key], w_one[key], atol=1e-5, rtol=0)
    assert "clipped to norm 1" in done.stdout  # the gradient monitor sees FSDP's clipping (DTensor gradients)
    optimizer = load_checkpoint(two / "checkpoint.pt")["optimizer"]["state"]
    assert all(type(t) is torch.Tensor for entry in optimizer.values() for t in entry.values() if torch.is_tensor(t))


def test_what_fsdp_does_not_support_is_refused_by_key(tmp_path: Path) -> None:
    text = FSDP.replace("[diagnostics]", "max_norm = {{c = 2.0}}\n[diagnostics]")
    config = load_config(write(tmp_path, text, name="bad", epochs=1))
    assert [key for key, _ in unsupported_with_fsdp(config)] == ["regularize.max_norm"]
    with pytest.raises(ConfigError, match=r"^regularize\.max_norm: not supported with .*fsdp.*renorm_.*ddp"):
        check_fsdp(config)
