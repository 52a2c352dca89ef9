"""Resume is exact on the compiled optimizer path too (issue 15, item 3): a model large enough for a compiled
update (Adam on a 1.1M-parameter MLP with dropout and a per-step schedule, ``compile = true``) trained for 1 epoch
in one process and resumed to 3 in another ends with the bits of one process training 3 straight. Each step is a
real process, as a kill and a later ``regopt run --resume`` are; the resumed process loads its kernel from the
inductor cache the first one filled, the straight run compiles its own. The second test kills the run with SIGKILL
in the middle of an epoch (``checkpoint_every``), so the resume starts from a mid-epoch checkpoint."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
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


def _env() -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("REGOPT_COMPILE", None)
    return env


def regopt_run(config: Path, out: Path, *extra: str) -> None:
    command = [sys.executable, "-m", "regopt.cli", "run", str(config), "--out", str(out), "--quiet", *extra]
    done = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


KILLED_AT_STEP = """
    import os, signal, sys
    from torch.optim.optimizer import register_optimizer_step_post_hook
    from regopt.lab.config import load_config
    from regopt.lab.runs import run

    steps = 0

    def sigkill(optimizer, args, kwargs):  # no cleanup of any kind runs: the process is gone as under `kill -9`
        global steps
        steps += 1
        if steps == int(sys.argv[3]):
            os.kill(os.getpid(), signal.SIGKILL)

    register_optimizer_step_post_hook(sigkill)  # torch's global hook: the run is unchanged
    run(load_config(sys.argv[1]), out=sys.argv[2])
"""


def killed_at_step(config: Path, out: Path, step: int) -> None:
    """Run ``config`` in a process that SIGKILLs itself right after optimizer step ``step``."""
    command = [sys.executable, "-c", textwrap.dedent(KILLED_AT_STEP), str(config), str(out), str(step)]
    done = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]


def test_a_compiled_run_resumed_in_a_new_process_ends_with_the_same_bits(tmp_path: Path) -> None:
    config = tmp_path / "big.toml"
    config.write_text(CONFIG)
    regopt_run(config, tmp_path / "straight")
    regopt_run(config, tmp_path / "resumed", "--set", "train.epochs=1")
    regopt_run(config, tmp_path / "resumed", "--resume")
    assert_same_run(tmp_path / "straight", tmp_path / "resumed", {"epoch": 3, "batch": 0, "step": 9})


def bitwise_equal(a: object, b: object) -> bool:
    """Nested dicts, lists and tensors equal bit for bit (NaN in the same places counts as equal)."""
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return (
            a.dtype == b.dtype
            and a.shape == b.shape
            and torch.equal(a.flatten().view(torch.uint8), b.flatten().view(torch.uint8))
        )
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(bitwise_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(bitwise_equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def assert_same_run(straight_out: Path, resumed_out: Path, position: dict[str, int]) -> None:
    straight = torch.load(straight_out / "big" / "checkpoint.pt", weights_only=True)
    resumed = torch.load(resumed_out / "big" / "checkpoint.pt", weights_only=True)
    assert straight["position"] == resumed["position"] == position
    for name, tensor in straight["model"].items():
        assert torch.equal(tensor, resumed["model"][name]), name
    for key in ("optimizer", "scheduler"):
        assert bitwise_equal(straight[key], resumed[key]), key  # moments, step counts, lr

    def measured(history: list[dict]) -> list[dict]:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in history]  # all but wall time

    assert measured(straight["history"]) == measured(resumed["history"])


def test_a_compiled_run_killed_mid_epoch_resumes_to_the_same_bits(tmp_path: Path) -> None:
    """SIGKILL after step 8 of 5-step epochs, last checkpointed at step 6 (epoch 2, batch 1): ``--resume`` redoes
    steps 7 and 8 with the same batches and dropout masks and ends where the unkilled run ends."""
    config = tmp_path / "big.toml"
    config.write_text(CONFIG.replace("train_size = 192", "train_size = 320") + "checkpoint_every = 3\n")
    regopt_run(config, tmp_path / "straight")
    killed_at_step(config, tmp_path / "resumed", step=8)
    at_kill = torch.load(tmp_path / "resumed" / "big" / "checkpoint.pt", weights_only=True)
    assert at_kill["position"] == {"epoch": 1, "batch": 1, "step": 6}
    regopt_run(config, tmp_path / "resumed", "--resume")
    assert_same_run(tmp_path / "straight", tmp_path / "resumed", {"epoch": 3, "batch": 0, "step": 15})
