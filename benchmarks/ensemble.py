"""Speed of vectorized bagging: K models trained at once (stacked weights) vs one model vs K in a loop.

Workload: MLPs [100, 100] and [32] (ReLU) on MNIST-1D (3200 training examples, 40 features, 10 classes),
regopt's SGD with momentum (lr 0.05, momentum 0.9; ``--optimizer adam``: regopt's Adam, lr 1e-3;
``--optimizer torch-sgd``: ``torch.optim.SGD(foreach=True)``, to see the optimizer's share), the same batch size
and number of epochs for every variant, so every variant takes the same number of optimizer steps (n / batch
per epoch):

* ``one model``: a hand-written loop over one model (a ``randperm`` per epoch, ``x[idx]``, forward,
  cross-entropy, ``zero_grad(set_to_none=False)``, backward, step);
* ``bagging (stacked)``: :class:`regopt.ensemble.Bagging` with K members, ``fit`` (each member on its own
  bootstrap resample, one gather of the K minibatches per step), on its fast route for MLPs: one ``baddbmm``
  per layer over the stacked weights;
* ``bagging (vmap)``: the same on the general route, ``vmap(functional_call(...))``;
* ``K models in a loop``: the hand-written loop run K times, each model on its own bootstrap resample;
* ``one model, batch K*b``: one model with K times the batch, i.e. the same arithmetic per step as the ensemble
  in one ``mm`` per layer: about the floor for any vectorization on this machine, shown for reference.

Every configuration is timed at each ``--threads`` setting (``torch.set_num_threads``; default 1 and 2, torch's
default here), all variants at the same setting. Runs are interleaved (the order rotates every repeat to cancel
drift), each with fresh models and optimizers, and the table shows medians and the ratio of medians to ``one
model`` at the same setting; the summary also compares with one model at its fastest setting. Goal: bagging of
K=8 within 2.5x one model (the loop costs about 8x).

Usage::

    .venv/bin/python benchmarks/ensemble.py              # full run, ~4 minutes on 2 quiet cores
    .venv/bin/python benchmarks/ensemble.py --quick      # smoke run, a few seconds
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import date
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from regopt.ensemble import Bagging, bootstrap_indices
from regopt.lab.config import MlpConfig, Mnist1dData
from regopt.lab.data import load_dataset
from regopt.lab.models import build_model
from regopt.optim import SGD, Adam

OPTIMIZERS: dict[str, tuple[str, Callable[[list[nn.Parameter]], torch.optim.Optimizer]]] = {
    "sgd": ("regopt SGD lr=0.05 momentum=0.9", lambda p: SGD(p, lr=0.05, momentum=0.9)),
    "adam": ("regopt Adam lr=1e-3", lambda p: Adam(p, lr=1e-3)),
    "torch-sgd": (
        "torch.optim.SGD lr=0.05 momentum=0.9 foreach=True",
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, foreach=True),
    ),
}
Factory = Callable[[list[nn.Parameter]], torch.optim.Optimizer]


def loop(
    model: nn.Module, x: Tensor, y: Tensor, rows: Tensor, *, epochs: int, batch: int, seed: int, factory: Factory
) -> None:
    """Train one model on the examples ``rows`` (a bootstrap resample or all of them), as an ordinary loop."""
    optimizer = factory(list(model.parameters()))
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = rows[torch.randperm(len(rows), generator=generator)]
        for start in range(0, len(order), batch):
            idx = order[start : start + batch]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad(set_to_none=False)  # as Bagging.fit does (and a little faster with regopt's)
            loss.backward()
            optimizer.step()


def variants(
    make: Callable[[], nn.Module], x: Tensor, y: Tensor, *, k: int, epochs: int, batch: int, factory: Factory
) -> dict[str, Callable[[], object]]:
    n = len(x)
    every = torch.arange(n)
    resamples = bootstrap_indices(n, k, torch.Generator().manual_seed(0))

    def one() -> None:
        loop(make(), x, y, every, epochs=epochs, batch=batch, seed=0, factory=factory)

    def bagging() -> None:
        Bagging(make, k, vectorize="stacked").fit(x, y, epochs=epochs, batch_size=batch, optimizer_factory=factory)

    def bagging_vmap() -> None:
        Bagging(make, k, vectorize="vmap").fit(x, y, epochs=epochs, batch_size=batch, optimizer_factory=factory)

    def sequential() -> None:
        for i in range(k):
            loop(make(), x, y, resamples[i], epochs=epochs, batch=batch, seed=i, factory=factory)

    def wide_batch() -> None:  # same steps, k * batch examples each: the ensemble's arithmetic in one model
        loop(make(), x, y, resamples.flatten(), epochs=epochs, batch=k * batch, seed=0, factory=factory)

    return {
        "one model": one,
        f"bagging (stacked), K={k}": bagging,
        f"bagging (vmap), K={k}": bagging_vmap,
        f"{k} models in a loop": sequential,
        f"one model, batch {k}*b": wide_batch,
    }


def machine_header() -> str:
    return (
        f"torch {torch.__version__}, default torch.get_num_threads() = {torch.get_num_threads()}, "
        f"os.cpu_count() = {os.cpu_count()}, Python {platform.python_version()}, {platform.platform()}"
    )


def time_runs(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Seconds of each run: a warm-up run of each, then ``repeats`` interleaved rounds in rotated order."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for run in runs.values():  # warm-up: first-call costs (vmap, allocator) outside the timings
        run()
    names = list(runs)
    for repeat in range(repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            gc.collect()
            start = time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - start)
    return times


def profile_fits(args: argparse.Namespace, data: Any, factory: Callable[..., torch.optim.Optimizer]) -> int:
    """Where a stacked bagging fit spends its time: torch.profiler's ops by self CPU time (first batch size and
    thread setting), after one warm-up fit."""
    from torch.profiler import ProfilerActivity, profile

    torch.set_num_threads(args.threads[0])
    for spec in args.widths:
        config = MlpConfig(name="mlp", widths=[int(w) for w in spec.split(",")])

        def make(config: MlpConfig = config) -> nn.Module:
            return build_model(config, data.input_shape, data.output_dim)

        def fit() -> None:
            bag = Bagging(make, args.k, vectorize="stacked")
            batch = args.batch_sizes[0]
            bag.fit(data.x_train, data.y_train, epochs=args.epochs, batch_size=batch, optimizer_factory=factory)

        fit()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            fit()
        print(f"\n{config.widths}, batch {args.batch_sizes[0]}, {args.threads[0]} thread(s), {args.epochs} epochs:\n")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--widths", nargs="+", default=["100,100", "32"], help="hidden widths of each MLP to time (default: 100,100 32)"
    )
    parser.add_argument("--k", type=int, default=8, help="ensemble members (default 8)")
    parser.add_argument("--epochs", type=int, default=10, help="epochs per run (default 10)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[100, 32], help="default: 100 32")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved timed runs of each variant")
    parser.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="sgd", help="default: sgd")
    parser.add_argument(
        "--threads", type=int, nargs="+", default=[1, 2], help="torch.set_num_threads settings to time (default 1 2)"
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 repeats of 1 epoch, batch 100, 1 thread")
    parser.add_argument(
        "--profile", action="store_true", help="print torch.profiler's op table of one stacked fit per width instead"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.epochs, args.batch_sizes, args.threads = 2, 1, [100], [1]
    optimizer_name, factory = OPTIMIZERS[args.optimizer]

    data = load_dataset(Mnist1dData(name="mnist1d"))
    x, y = data.x_train, data.y_train
    if args.profile:
        return profile_fits(args, data, factory)

    print(f"Bagging speed, {date.today().isoformat()}:\n")
    print(f"- machine: {machine_header()}")
    print(f"- data: {data.summary()}; {optimizer_name}; {args.epochs} epochs; K={args.k}")
    print(f"- {args.repeats} interleaved repeats (order rotated every repeat), warm-up run of each variant first\n")
    print("| model | batch b | steps per model | threads | variant | median s (min) | / one model (medians) |")
    print("|---|---:|---:|---:|---|---:|---:|")
    medians: dict[tuple[str, int], dict[int, dict[str, float]]] = {}
    for spec in args.widths:
        config = MlpConfig(name="mlp", widths=[int(w) for w in spec.split(",")])

        def make(config: MlpConfig = config) -> nn.Module:
            return build_model(config, data.input_shape, data.output_dim)

        model = f"mlp {config.widths} ({sum(p.numel() for p in make().parameters())} params)"
        for batch in args.batch_sizes:
            runs = variants(make, x, y, k=args.k, epochs=args.epochs, batch=batch, factory=factory)
            steps = args.epochs * -(-len(x) // batch)
            for threads in args.threads:
                torch.set_num_threads(threads)
                times = time_runs(runs, args.repeats)
                base = statistics.median(times["one model"])
                row = medians.setdefault((model, batch), {})[threads] = {}
                for name, seconds in times.items():
                    row[name] = median = statistics.median(seconds)
                    print(
                        f"| {model} | {batch} | {steps} | {threads} | {name} | {median:.3f} ({min(seconds):.3f}) "
                        f"| {median / base:.2f} |"
                    )
    print()
    stacked = f"bagging (stacked), K={args.k}"
    for (model, batch), by_threads in medians.items():
        fastest = min(by_threads, key=lambda t: by_threads[t]["one model"])
        for threads, row in by_threads.items():
            ratio = row[stacked] / row["one model"]
            best = row[stacked] / by_threads[fastest]["one model"]
            print(
                f"{model}, batch {batch}, {threads} thread(s): bagging K={args.k} costs {ratio:.2f}x one model "
                f"({'meets' if ratio <= 2.5 else 'misses'} the 2.5x goal); {best:.2f}x one model at its fastest "
                f"setting ({fastest} thread(s))"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
