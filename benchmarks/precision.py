"""Mixed precision and model compile on the MNIST-1D CNN recipe: optimizer step time and final test accuracy.

Every run is ``examples/mnist1d_cnn.toml`` (the paper's ConvBase, Adam lr 1e-2, batch 100, 25 epochs) built with
``load_config(recipe, overrides)`` and ``build_experiment``, as ``regopt run`` builds it, with ``[train] precision``
and ``[train] compile`` set by overrides. Variants:

* ``32``, ``bf16``, ``fp16``: ``[train] precision``, eager. bf16 and fp16 autocast the forward pass and the loss;
  fp16 also scales the loss (``torch.amp.GradScaler``). fp16 is meant for CUDA; on a CPU it is measured for
  completeness.
* ``+ compile``: ``[train] compile = true`` (the Trainer runs its forward passes through ``torch.compile(model)``).
  The column "ops captured" counts the operations dynamo put into graphs for the variant's first step: how much
  of the model the compile reaches.

Measured:

1. **Step time**: seconds per optimizer step of ``Trainer.train_step`` on the recipe's first epoch of batches
   (32 steps per block, no evaluation), after a warm-up (the first step, which compiles, is reported apart).
   One trainer per variant, blocks interleaved across variants (the order reversed every repeat); the median
   block, and ratios to ``32`` of the medians and the median of the per-repeat ratios. The ratios use the CPU
   time of this process (``time.process_time``), which other processes sharing the cores inflate far less than
   wall time (on one torch thread the two agree on a quiet machine); the wall-time median is shown beside it.
2. **Accuracy**: the full recipe (``Experiment.fit``, evaluation every epoch as in ``regopt run``) for each seed,
   then ``Trainer.test()``: test accuracy per seed, mean, spread, and the mean paired difference to ``32``; the
   wall time of the whole run (compiles included: ``torch._dynamo.reset()`` before each compiled run).

torch runs on 1 thread by default: on a shared 2-core machine 2 threads oversubscribe the cores (a step measured
5-10x slower at load 7).

Usage::

    .venv/bin/python benchmarks/precision.py            # full run, about 7 minutes on a busy 2-core machine
    .venv/bin/python benchmarks/precision.py --quick    # smoke run, about 20 seconds
    .venv/bin/python benchmarks/precision.py --seeds 0  # step times only, about a minute
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import torch
import torch._dynamo
from torch._dynamo.utils import counters

from regopt.lab.config import RunConfig, load_config
from regopt.lab.data import Dataset, load_dataset
from regopt.lab.experiment import Experiment, build_experiment
from regopt.lab.trainer import Trainer

RECIPE = Path(__file__).resolve().parents[1] / "examples" / "mnist1d_cnn.toml"
COMPILE_MODES = {"": "off", " + compile": "lab"}


@dataclass(frozen=True)
class Variant:
    precision: str  # "32", "bf16", "fp16"
    compile: str  # "off", "lab" ([train] compile = true)

    @property
    def label(self) -> str:
        suffix = next(name for name, mode in COMPILE_MODES.items() if mode == self.compile)
        return f"{self.precision}{suffix}"


VARIANTS = [
    Variant("32", "off"),
    Variant("bf16", "off"),
    Variant("fp16", "off"),
    Variant("32", "lab"),
    Variant("bf16", "lab"),
]
BASE = VARIANTS[0]


@dataclass
class Result:
    block_s: list[float] = field(default_factory=list)  # wall seconds per step, one per timed block
    block_cpu_s: list[float] = field(default_factory=list)  # CPU seconds of this process per step, likewise
    first_step_s: float = 0.0
    ops_captured: int = 0
    accuracy: list[float] = field(default_factory=list)  # one per seed
    wall_s: list[float] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)  # fp16 steps skipped for overflow


def config(variant: Variant, seed: int, epochs: int | None) -> RunConfig:
    """The recipe with the variant's precision and compile, as ``regopt run --set ...`` would build it."""
    overrides = [
        f'train.precision="{variant.precision}"',
        f"train.compile={'true' if variant.compile == 'lab' else 'false'}",
        f"seed={seed}",
    ]
    if epochs is not None:
        overrides.append(f"train.epochs={epochs}")
    return load_config(RECIPE, overrides)


def build(variant: Variant, data: Dataset, seed: int, epochs: int | None) -> Experiment:
    return build_experiment(config(variant, seed, epochs), data=data)


def epoch_batches(trainer: Trainer) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The batches of the trainer's first epoch, as ``Trainer.fit`` draws them."""
    data = trainer.data
    return [(data.x_train[i], data.y_train[i]) for i in trainer.batch_order.indices(0, 0, data.x_train.device)]


def time_block(trainer: Trainer, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (of this process) per optimizer step over one pass of ``batches``."""
    gc.collect()
    started, cpu_started = time.perf_counter(), time.process_time()
    for x, y in batches:
        trainer.train_step(x, y)
    return (time.perf_counter() - started) / len(batches), (time.process_time() - cpu_started) / len(batches)


def measure_steps(results: dict[Variant, Result], data: Dataset, repeats: int, seed: int) -> None:
    """Interleaved step-time blocks, one persistent trainer per variant."""
    trainers: dict[Variant, tuple[Trainer, list[tuple[torch.Tensor, torch.Tensor]]]] = {}
    for variant in results:
        trainer = build(variant, data, seed, None).trainer
        batches = epoch_batches(trainer)
        captured = counters["stats"]["calls_captured"]
        started = time.perf_counter()
        trainer.train_step(*batches[0])
        results[variant].first_step_s = time.perf_counter() - started
        results[variant].ops_captured = counters["stats"]["calls_captured"] - captured
        time_block(trainer, batches)  # warm-up
        trainers[variant] = (trainer, batches)
    for repeat in range(repeats):
        order = list(trainers) if repeat % 2 == 0 else list(reversed(trainers))
        for variant in order:
            wall, cpu = time_block(*trainers[variant])
            results[variant].block_s.append(wall)
            results[variant].block_cpu_s.append(cpu)


def measure_accuracy(results: dict[Variant, Result], data: Dataset, seeds: list[int], epochs: int | None) -> None:
    """The full recipe per seed and variant (variants interleaved within a seed)."""
    for i, seed in enumerate(seeds):
        order = list(results) if i % 2 == 0 else list(reversed(results))
        for variant in order:
            if variant.compile != "off":
                torch._dynamo.reset()  # each compiled run pays its compile (inductor's disk cache stays warm)
            gc.collect()
            started = time.perf_counter()
            experiment = build(variant, data, seed, epochs)
            experiment.fit()
            test = experiment.trainer.test()
            results[variant].wall_s.append(time.perf_counter() - started)
            results[variant].accuracy.append(100.0 * (1.0 - test["test_error"]))
            results[variant].skipped.append(experiment.trainer.precision.skipped_steps)
        print(f"  seed {seed}: done", flush=True)


def cpu_line() -> str:
    """The CPU's model name and whether it has the instructions reduced precision can use (Linux only)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    flags = set(fields.get("flags", "").split())
    has = ", ".join(f"{flag} {'yes' if flag in flags else 'no'}" for flag in ("avx512_bf16", "amx_bf16", "avx512_fp16"))
    return f"{fields.get('model name', platform.machine())} ({has})"


def machine_header() -> str:
    return (
        f"torch {torch.__version__}, torch.get_num_threads() = {torch.get_num_threads()}, "
        f"os.cpu_count() = {os.cpu_count()}, Python {platform.python_version()}, {platform.platform()}, "
        f"CPU {cpu_line()}"
    )


def print_table(results: dict[Variant, Result]) -> None:
    base = results[BASE]
    header = [
        "variant",
        "step CPU ms median (min)",
        "CPU / 32 (medians)",
        "CPU / 32 (median per repeat)",
        "step wall ms median",
        "first step s",
        "ops captured",
        "test acc % per seed",
        "mean (min-max)",
        "paired diff to 32 (points)",
        "run wall s median",
    ]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
    for variant, r in results.items():
        median = statistics.median(r.block_cpu_s)
        per_repeat = statistics.median(t / b for t, b in zip(r.block_cpu_s, base.block_cpu_s, strict=True))
        acc = r.accuracy
        diff = statistics.mean(a - b for a, b in zip(acc, base.accuracy, strict=True)) if acc else float("nan")
        skipped = f" ({sum(r.skipped)} skipped steps)" if any(r.skipped) else ""
        cells = [
            variant.label,
            f"{1e3 * median:.2f} ({1e3 * min(r.block_cpu_s):.2f})",
            f"{median / statistics.median(base.block_cpu_s):.3f}",
            f"{per_repeat:.3f}",
            f"{1e3 * statistics.median(r.block_s):.2f}",
            f"{r.first_step_s:.2f}",
            str(r.ops_captured),
            ", ".join(f"{a:.1f}" for a in acc) + skipped,
            f"{statistics.mean(acc):.2f} ({min(acc):.1f}-{max(acc):.1f})" if acc else "-",
            f"{diff:+.2f}" if acc else "-",
            f"{statistics.median(r.wall_s):.1f}" if r.wall_s else "-",
        ]
        print("| " + " | ".join(cells) + " |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7, help="interleaved step-time blocks of each variant")
    parser.add_argument("--seeds", type=int, default=3, help="full runs of each variant (seeds 0, 1, ...; 0: none)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs of the accuracy runs (default: recipe's)")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 2 repeats, 1 seed of 2 epochs, no compiled variants"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.seeds, args.epochs = 2, 1, 2
    torch.set_num_threads(args.threads)
    data = load_dataset(config(BASE, 0, None).data)
    epochs = args.epochs if args.epochs is not None else config(BASE, 0, None).train.epochs
    seeds = list(range(args.seeds))
    print(f"Mixed precision and compile on {RECIPE.name}, {date.today().isoformat()}:")
    print()
    print(f"- machine: {machine_header()}; load average at start {os.getloadavg()[0]:.2f}")
    print(f"- data: {data.summary()}; recipe: Adam lr 1e-2, batch 100, {epochs} epochs for the accuracy runs")
    print(f"- step time: {args.repeats} interleaved blocks of 32 train_step calls per variant; accuracy: seeds {seeds}")
    print(flush=True)

    variants = [v for v in VARIANTS if not (args.quick and v.compile != "off")]  # a cold compile takes ~30 s
    results = {variant: Result() for variant in variants}
    measure_steps(results, data, args.repeats, seed=0)
    measure_accuracy(results, data, seeds, epochs)
    print()
    print_table(results)
    print()
    print(f"load average at end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
