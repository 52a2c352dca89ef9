"""Training speed with glibc's default malloc against :func:`regopt.lab.memory.retain_freed_memory`.

The allocator setting is process-wide and cannot be undone, so each sample is a fresh child process: the parent
starts ``--repeats`` pairs of children, one per setting, the order flipped every pair, and each child runs every
workload once to warm up, then times it. Workloads, all float32 on MNIST-1D:

* 300 SGD steps (momentum 0.9, batch 128) of an MLP 40-512-512-10, without and with
  :class:`regopt.diagnostics.IllConditioningMonitor` every 10 steps (reusing the training step's gradient): the
  two runs of ``benchmarks/diagnostics.py``'s monitor section, alternated three times inside the child;
* the lab's :class:`Trainer`, 10 epochs of the MNIST-1D CNN and of the MLP [100, 100] (SGD with momentum,
  batch 100, as ``benchmarks/trainer_overhead.py``).

Printed: median seconds per setting, the ratio retained / default (below 1: faster), and the monitor's overhead
over the plain run under each setting.

Usage::

    .venv/bin/python benchmarks/allocator.py             # full run, ~2 minutes on 2 cores
    .venv/bin/python benchmarks/allocator.py --quick     # smoke run, ~30 seconds
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
MODES = ("default", "retained")
MLP_WIDTHS = [40, 512, 512, 10]


def child(mode: str, steps: int, epochs: int) -> dict[str, float]:
    """Seconds per workload in this process, after a warm-up run of each."""
    if mode == "retained":
        from regopt.lab.memory import retain_freed_memory

        assert retain_freed_memory(), "not glibc: nothing to compare"
    torch.set_num_threads(1)
    sys.path.insert(0, str(HERE))
    import diagnostics  # the monitor section's training run
    import trainer_overhead as overhead

    from regopt.lab.config import Mnist1dData
    from regopt.lab.data import load_dataset

    arrays = diagnostics.mnist1d()
    data = load_dataset(Mnist1dData(name="mnist1d"))

    def sgd(monitor: tuple[None, int] | None) -> float:
        return diagnostics.train_run(arrays, MLP_WIDTHS, steps, monitor)[0]

    def trainer(name: str) -> float:
        cfg = overhead.WORKLOADS[name]
        return overhead.timed(cfg, data, 0, lambda m, o: overhead.with_trainer(m, o, data, epochs=epochs, seed=0))

    sgd(None), sgd((None, 10))  # warm up
    plain, watched = [], []
    for _ in range(3):
        plain.append(sgd(None))
        watched.append(sgd((None, 10)))
    times = {"SGD, MLP 40-512-512-10": statistics.median(plain), "+ monitor every 10": statistics.median(watched)}
    for name in overhead.WORKLOADS:
        trainer(name)
        times[f"Trainer, {name}"] = trainer(name)
    return times


def sample(mode: str, steps: int, epochs: int) -> dict[str, float]:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", mode, "--steps", str(steps)]
    out = subprocess.run([*command, "--epochs", str(epochs)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 pairs of short runs")
    parser.add_argument("--repeats", type=int, default=5, help="child processes per setting")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=300, help=argparse.SUPPRESS)
    parser.add_argument("--epochs", type=int, default=10, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.steps, args.epochs)))
        return
    repeats, steps, epochs = (2, 60, 2) if args.quick else (args.repeats, args.steps, args.epochs)
    print(f"## Allocator: glibc defaults vs retain_freed_memory, {date.today().isoformat()}\n")
    print(
        f"- machine: torch {torch.__version__}, 1 torch thread per child, os.cpu_count() = {os.cpu_count()}, "
        f"{platform.platform()}, {' '.join(platform.libc_ver())}"
    )
    print(f"- {repeats} child processes per setting, interleaved (order flipped every pair)\n")
    started = time.perf_counter()
    runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    for r in range(repeats):
        for mode in MODES if r % 2 == 0 else MODES[::-1]:
            runs[mode].append(sample(mode, steps, epochs))
    names = list(runs["default"][0])
    median = {mode: {n: statistics.median(run[n] for run in runs[mode]) for n in names} for mode in MODES}
    print("| workload | default s | retained s | retained / default |")
    print("|---|---:|---:|---:|")
    for n in names:
        a, b = median["default"][n], median["retained"][n]
        print(f"| {n} | {a:.3f} | {b:.3f} | **{b / a:.2f}** |")
    print()
    for mode in MODES:
        overheads = [run["+ monitor every 10"] / run["SGD, MLP 40-512-512-10"] - 1 for run in runs[mode]]
        spread = ", ".join(f"{100 * o:+.1f}%" for o in sorted(overheads))
        print(f"- monitor overhead, {mode}: median {100 * statistics.median(overheads):+.1f}% (runs: {spread})")
    print(f"\n(total {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
