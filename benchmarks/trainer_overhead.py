"""Overhead of regopt's Trainer against a hand-written PyTorch loop doing the same work.

Both loops train the same model (same seed, so the same initial weights) on the same in-memory MNIST-1D
tensors with the same optimizer for the same number of steps:

* each epoch, a ``torch.randperm`` over the training split drawn from a ``torch.Generator`` seeded like the
  Trainer's, and batches indexed from the tensors;
* each step, ``zero_grad(set_to_none=True)``, forward, ``F.cross_entropy``, backward, ``optimizer.step()``;
* each epoch end, train and validation loss and error in ``eval()`` mode under ``torch.no_grad()`` in batches
  of 4096, as ``Trainer.evaluate`` does.

Before timing, one run of each is checked to end with bit-identical weights and identical metrics, so the
comparison is apples to apples. Runs are interleaved (the order flips every repeat to cancel drift), each with a
fresh model and optimizer. The Trainer runs without a checkpoint path; "Trainer + checkpoint" writes one
checkpoint per epoch (atomic write to a temporary directory), which is I/O and quoted separately.

Usage::

    .venv/bin/python benchmarks/trainer_overhead.py            # full run, ~1 minute on 2 cores
    .venv/bin/python benchmarks/trainer_overhead.py --quick    # smoke run, a few seconds
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from regopt.lab.config import Cnn1dConfig, MlpConfig, Mnist1dData, ModelConfig
from regopt.lab.data import Dataset, load_dataset
from regopt.lab.models import build_model
from regopt.lab.trainer import Trainer

LR, MOMENTUM, BATCH_SIZE, EVAL_BATCH = 0.05, 0.9, 100, 4096
WORKLOADS: dict[str, ModelConfig] = {
    "mlp [100, 100]": MlpConfig(name="mlp", widths=[100, 100]),
    "cnn1d (25 channels)": Cnn1dConfig(name="cnn1d"),
}
History = list[dict[str, float]]


def build(cfg: ModelConfig, data: Dataset, seed: int) -> tuple[nn.Module, torch.optim.Optimizer]:
    """A fresh model (initialized from ``seed``) and SGD with momentum over its parameters."""
    torch.manual_seed(seed)
    model = build_model(cfg, data.input_shape, data.output_dim)
    return model, torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)


# ------------------------------------------------------------------------------------- hand-written loop
@torch.no_grad()
def evaluate(model: nn.Module, x: Tensor, y: Tensor) -> tuple[float, float]:
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64)
    wrong = torch.zeros((), dtype=torch.float64)
    for start in range(0, len(x), EVAL_BATCH):
        xb, yb = x[start : start + EVAL_BATCH], y[start : start + EVAL_BATCH]
        output = model(xb)
        loss_sum += F.cross_entropy(output, yb) * len(xb)
        wrong += (output.argmax(dim=1) != yb).sum()
    model.train()
    return loss_sum.item() / len(x), wrong.item() / len(x)


def hand_written(
    model: nn.Module, optimizer: torch.optim.Optimizer, data: Dataset, *, epochs: int, seed: int
) -> History:
    x_train, y_train = data.x_train, data.y_train
    generator = torch.Generator().manual_seed(seed)
    history: History = []
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x_train), generator=generator)
        for start in range(0, len(x_train), BATCH_SIZE):
            index = order[start : start + BATCH_SIZE]
            x, y = x_train[index], y_train[index]
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
        train_loss, train_error = evaluate(model, x_train, y_train)
        val_loss, val_error = evaluate(model, data.x_val, data.y_val)
        history.append(
            {"train_loss": train_loss, "train_error": train_error, "val_loss": val_loss, "val_error": val_error}
        )
    return history


# ------------------------------------------------------------------------------------------------ Trainer
def with_trainer(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: Dataset,
    *,
    epochs: int,
    seed: int,
    checkpoint_path: Path | None = None,
) -> History:
    trainer = Trainer(
        model,
        optimizer,
        data,
        epochs=epochs,
        batch_size=BATCH_SIZE,
        seed=seed,
        checkpoint_path=checkpoint_path,
        progress=False,
    )
    return trainer.fit()


# ------------------------------------------------------------------------------------------------ harness
Runner = Callable[[nn.Module, torch.optim.Optimizer], History]


def timed(cfg: ModelConfig, data: Dataset, seed: int, runner: Runner) -> float:
    """Seconds for one run of ``runner`` on a fresh model and optimizer (construction not timed)."""
    model, optimizer = build(cfg, data, seed)
    gc.collect()
    started = time.perf_counter()
    runner(model, optimizer)
    return time.perf_counter() - started


def check_identical(cfg: ModelConfig, data: Dataset, epochs: int, seed: int) -> None:
    """Both loops end with bit-identical weights and identical per-epoch metrics."""
    model_a, opt_a = build(cfg, data, seed)
    history_a = hand_written(model_a, opt_a, data, epochs=epochs, seed=seed)
    model_b, opt_b = build(cfg, data, seed)
    history_b = with_trainer(model_b, opt_b, data, epochs=epochs, seed=seed)
    for (name, a), b in zip(model_a.named_parameters(), model_b.parameters(), strict=True):
        assert torch.equal(a, b), f"{name}: weights differ between the hand-written loop and the Trainer"
    keys = ("train_loss", "train_error", "val_loss", "val_error")
    assert [{k: row[k] for k in keys} for row in history_b] == history_a, "metrics differ"


def machine_header() -> str:
    return (
        f"torch {torch.__version__}, torch.get_num_threads() = {torch.get_num_threads()}, "
        f"os.cpu_count() = {os.cpu_count()}, Python {platform.python_version()}, {platform.platform()}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7, help="interleaved timed runs of each loop")
    parser.add_argument("--epochs", type=int, default=30, help="epochs per run (32 steps each)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="smoke run: 3 repeats of 2 epochs")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--no-checkpoint", action="store_true", help="skip the 'Trainer + checkpoint' runs")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.epochs = 3, 2
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    seed, epochs = args.seed, args.epochs

    data = load_dataset(Mnist1dData(name="mnist1d"))
    steps = epochs * -(-len(data.x_train) // BATCH_SIZE)
    print(f"Trainer vs hand-written loop, {date.today().isoformat()}:")
    print()
    print(f"- machine: {machine_header()}")
    print(
        f"- data: {data.summary()}; SGD lr={LR} momentum={MOMENTUM}, batch {BATCH_SIZE}, "
        f"{epochs} epochs = {steps} steps per run, train + val evaluation after every epoch"
    )
    print(f"- {args.repeats} interleaved repeats (order flipped every repeat), fresh model and optimizer each run")
    print()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "checkpoint.pt"
        for label, cfg in WORKLOADS.items():
            check_identical(cfg, data, epochs, seed)  # also the warm-up of both loops
            runners: dict[str, Runner] = {
                "hand": lambda m, o: hand_written(m, o, data, epochs=epochs, seed=seed),
                "trainer": lambda m, o: with_trainer(m, o, data, epochs=epochs, seed=seed),
            }
            if not args.no_checkpoint:
                runners["checkpoint"] = lambda m, o: with_trainer(
                    m, o, data, epochs=epochs, seed=seed, checkpoint_path=ckpt
                )
            if "checkpoint" in runners:  # warm-up: first write to the file
                timed(cfg, data, seed, runners["checkpoint"])
            times: dict[str, list[float]] = {name: [] for name in runners}
            for repeat in range(args.repeats):
                order = list(runners) if repeat % 2 == 0 else list(reversed(runners))
                for name in order:
                    times[name].append(timed(cfg, data, seed, runners[name]))
            rows.append((label, times))
            print(f"  {label}: done", file=sys.stderr)

    def ratios(times: dict[str, list[float]], name: str) -> tuple[float, float]:
        of_medians = statistics.median(times[name]) / statistics.median(times["hand"])
        per_repeat = statistics.median(t / h for t, h in zip(times[name], times["hand"], strict=True))
        return of_medians, per_repeat

    header = [
        "workload",
        "hand-written median s (min)",
        "Trainer median s (min)",
        "Trainer / hand (medians)",
        "Trainer / hand (median per repeat)",
    ]
    if not args.no_checkpoint:
        header += ["Trainer + checkpoint each epoch median s", "+ checkpoint / hand (medians)"]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
    worst = 0.0
    for label, times in rows:
        of_medians, per_repeat = ratios(times, "trainer")
        worst = max(worst, of_medians, per_repeat)
        cells = [
            label,
            f"{statistics.median(times['hand']):.3f} ({min(times['hand']):.3f})",
            f"{statistics.median(times['trainer']):.3f} ({min(times['trainer']):.3f})",
            f"{of_medians:.3f}",
            f"{per_repeat:.3f}",
        ]
        if not args.no_checkpoint:
            cells += [f"{statistics.median(times['checkpoint']):.3f}", f"{ratios(times, 'checkpoint')[0]:.3f}"]
        print("| " + " | ".join(cells) + " |")
    print()
    verdict = "within" if worst <= 1.05 else "NOT within"
    print(f"Trainer is {verdict} 5% of the hand-written loop (worst ratio {worst:.3f}).")
    print("Weights and per-epoch metrics of both loops checked bit-identical before timing.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
