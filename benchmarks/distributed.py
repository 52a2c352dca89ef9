"""What data parallelism over gloo costs on the CPU: ``regopt run`` under torchrun, and a distributed HVP.

1. **``regopt run`` throughput.** The same MNIST-1D config (MLP [1024, 1024], SGD with momentum) runs as
   ``regopt run CONFIG --out DIR --quiet`` in three ways: one process with one thread (``OMP_NUM_THREADS=1``, the
   anchor), one process with two threads, and ``python -m torch.distributed.run --standalone --nproc_per_node=2
   -m regopt run ...`` (two processes of one thread each; every rank trains on half of each global batch and DDP
   all-reduces the gradient every step). Training examples/s come from the run directory: the last
   ``metrics.csv`` row's ``seconds`` counts training only (not the evaluation after each epoch, nor start-up);
   "wall" is the whole command, start-up, data generation, evaluation and the report included. Two batch sizes:
   256 (128 per rank: compute dominates) and 16 (8 per rank: one all-reduce of the 1.1M-parameter gradient per
   tiny step). Runs are interleaved, the order reversed every repeat; ratios are to the anchor, of the medians
   and the median of the per-repeat ratios.
2. **Distributed Hessian-vector product vs distributed gradient.** In two spawned gloo processes (one thread
   each), :class:`regopt.diagnostics.HessianOperator` with ``distributed=True`` on each rank's half of a batch of
   1024: one gradient (forward, backward, and the same weighted all-reduce of the flat gradient the operator does),
   one HVP from scratch (``refresh()`` then ``matvec``: forward, backward with ``create_graph=True``, second
   backward, all-reduce) and one more HVP on the kept graph (second backward and all-reduce only), and the
   all-reduce alone; the same in one process on the whole batch for reference. Each repeat times the three in
   turn, the ranks released together by a barrier; a repeat's time is the slower rank's. Before timing, the
   distributed product is checked against the one-process product on the whole batch.

Usage::

    .venv/bin/python benchmarks/distributed.py            # full run, ~5 minutes on 2 cores
    .venv/bin/python benchmarks/distributed.py --quick    # smoke run, about a minute
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import Tensor, nn

from regopt.diagnostics import HessianOperator

TRAIN_EXAMPLES = 3200  # MNIST-1D's default split: 4000 training examples, 20% of them carved for validation
CONFIG = """
name = "{name}"
seed = 0
[data]
name = "mnist1d"
[model]
name = "mlp"
widths = [1024, 1024]
[optimizer]
name = "sgd"
lr = {lr}
momentum = 0.9
[train]
epochs = {epochs}
batch_size = {batch}
"""
# workload: (batch size, epochs, lr); epochs sized so each run trains for a few seconds
WORKLOADS = {"batch 256": (256, 5, 0.05), "batch 16": (16, 1, 0.01)}
VARIANTS = {  # name: (processes, threads per process)
    "1 process x 1 thread": (1, 1),
    "1 process x 2 threads": (1, 2),
    "2 processes x 1 thread (torchrun)": (2, 1),
}
ANCHOR = "1 process x 1 thread"
RUN_TIMEOUT_S = 300


# ------------------------------------------------------------------------------- part 1: regopt run throughput
def regopt_run(config: Path, out: Path, processes: int, threads: int) -> tuple[float, float, int]:
    """Run ``regopt run`` once; (training seconds from metrics.csv, wall seconds of the command, steps)."""
    command = [sys.executable, "-m"]
    if processes > 1:
        command += ["torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", "-m"]
    command += ["regopt", "run", str(config), "--out", str(out), "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    run_dir = out / config.stem
    with open(run_dir / "metrics.csv", newline="") as f:
        last = list(csv.DictReader(f))[-1]
    return float(last["seconds"]), wall, int(last["step"])


def throughput(repeats: int, scale: float) -> list[str]:
    """Markdown rows of part 1."""
    lines = [
        "| workload | variant | train examples/s median (min-max) | / anchor (medians) | / anchor (median per "
        "repeat) | train s median | wall s median | wall / anchor |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for workload, (batch, epochs, lr) in WORKLOADS.items():
            epochs = max(1, round(epochs * scale))
            config = root / f"b{batch}.toml"
            config.write_text(CONFIG.format(name=config.stem, lr=lr, epochs=epochs, batch=batch))
            train: dict[str, list[float]] = {v: [] for v in VARIANTS}
            wall: dict[str, list[float]] = {v: [] for v in VARIANTS}
            for repeat in range(repeats):
                order = list(VARIANTS) if repeat % 2 == 0 else list(reversed(VARIANTS))
                for variant in order:
                    out = root / f"out-{len(list(root.iterdir()))}"
                    seconds, whole, steps = regopt_run(config, out, *VARIANTS[variant])
                    assert steps == epochs * -(-TRAIN_EXAMPLES // batch), f"{steps} steps: not the expected data"
                    train[variant].append(seconds)
                    wall[variant].append(whole)
                print(f"  {workload}: repeat {repeat + 1}/{repeats} done", file=sys.stderr)
            examples = TRAIN_EXAMPLES * epochs
            anchor_rate = examples / statistics.median(train[ANCHOR])
            for variant in VARIANTS:
                rates = [examples / s for s in train[variant]]
                per_repeat = statistics.median(
                    a / s for a, s in zip(train[ANCHOR], train[variant], strict=True)
                )  # rate / anchor rate = anchor seconds / seconds
                lines.append(
                    f"| {workload} ({epochs} epochs) | {variant} | {statistics.median(rates):,.0f} "
                    f"({min(rates):,.0f}-{max(rates):,.0f}) | {statistics.median(rates) / anchor_rate:.2f} | "
                    f"{per_repeat:.2f} | {statistics.median(train[variant]):.2f} | "
                    f"{statistics.median(wall[variant]):.1f} | "
                    f"{statistics.median(wall[variant]) / statistics.median(wall[ANCHOR]):.2f} |"
                )
    return lines


# ------------------------------------------------------------------------- part 2: distributed HVP vs gradient
HVP_MODELS = {"MLP 40-256-256-10": [256, 256], "MLP 40-1024-1024-10": [1024, 1024]}
HVP_BATCH = 1024
OPS = ("gradient", "HVP from scratch", "HVP on the kept graph", "all-reduce alone")


def mlp(widths: list[int]) -> nn.Module:
    sizes = [40, *widths, 10]
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers += [nn.Linear(a, b)] + ([nn.ReLU()] if i < len(sizes) - 2 else [])
    return nn.Sequential(*layers)


def time_model(widths: list[int], rank: int, world: int, repeats: int) -> dict[str, list[float]]:
    """Seconds of each of :data:`OPS` per repeat for the MLP of hidden ``widths``, on this rank's shard (the
    slower rank's when distributed)."""
    torch.manual_seed(0)
    model = mlp(widths)
    x, y = torch.randn(HVP_BATCH, 40), torch.randint(0, 10, (HVP_BATCH,))
    x_local, y_local = torch.tensor_split(x, world)[rank], torch.tensor_split(y, world)[rank]
    op = HessianOperator(model, F.cross_entropy, x_local, y_local, distributed=world > 1)
    params, share = op.params, len(x_local) / HVP_BATCH
    v = torch.randn(op.dim, generator=torch.Generator().manual_seed(1))
    if world > 1 and rank == 0:  # the global operator is the Hessian of the whole batch
        whole = HessianOperator(model, F.cross_entropy, x, y).matvec(v)
        torch.testing.assert_close(op.matvec(v), whole, rtol=1e-4, atol=1e-5)
    elif world > 1:
        op.matvec(v)

    def all_reduce(flat: Tensor) -> Tensor:
        if world > 1:
            flat = flat * share  # as HessianOperator weights each rank's shard
            dist.all_reduce(flat)
        return flat

    def gradient() -> Tensor:
        loss = F.cross_entropy(model(x_local), y_local)
        return all_reduce(torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)]))

    def from_scratch() -> Tensor:
        op.refresh()
        return op.matvec(v)

    flat = torch.randn(op.dim)
    calls: dict[str, Callable[[], Tensor]] = {
        "gradient": gradient,
        "HVP from scratch": from_scratch,
        "HVP on the kept graph": lambda: op.matvec(v),  # right after from_scratch: the graph is there
        "all-reduce alone": lambda: all_reduce(flat),
    }
    times = torch.zeros(repeats + 3, len(OPS), dtype=torch.float64)
    for r in range(repeats + 3):  # the first 3 are warm-up
        for j, name in enumerate(OPS):
            if world > 1:
                dist.barrier()
            started = time.perf_counter()
            calls[name]()
            times[r, j] = time.perf_counter() - started
    if world > 1:
        dist.all_reduce(times, op=dist.ReduceOp.MAX)
    return {name: times[3:, j].tolist() for j, name in enumerate(OPS)}


def time_ops(rank: int, world: int, repeats: int) -> dict[str, dict[str, list[float]]]:
    """:func:`time_model` for each of :data:`HVP_MODELS`, with one torch thread."""
    torch.set_num_threads(1)
    return {label: time_model(widths, rank, world, repeats) for label, widths in HVP_MODELS.items()}


def hvp_worker(rank: int, world: int, port: int, repeats: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        results = time_ops(rank, world, repeats)
        if rank == 0:
            Path(out).write_text(json.dumps(results))
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn_world(world: int, repeats: int, timeout_s: float = 300) -> dict[str, dict[str, list[float]]]:
    """:func:`time_ops` on ``world`` spawned gloo processes; rank 0's (max over ranks) results."""
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "times.json")
        args = (world, free_port(), repeats, out)
        context = mp.start_processes(hvp_worker, args=args, nprocs=world, join=False, start_method="spawn")
        deadline = time.monotonic() + timeout_s
        while not context.join(timeout=0.5):
            if time.monotonic() > deadline:
                for process in context.processes:
                    process.kill()
                raise TimeoutError(f"the {world} processes did not finish in {timeout_s:.0f} s")
        loaded: dict[str, dict[str, list[float]]] = json.loads(Path(out).read_text())
        return loaded


def hvp_table(repeats: int) -> list[str]:
    """Markdown rows of part 2."""
    saved = torch.get_num_threads()
    one = time_ops(0, 1, repeats)  # in this process, one thread
    torch.set_num_threads(saved)
    two = spawn_world(2, repeats)
    lines = [
        "| model | processes x batch each | gradient ms median (min) | HVP from scratch ms | HVP / gradient "
        "(medians) | HVP / gradient (median per repeat) | HVP on kept graph ms | kept / gradient | all-reduce alone "
        "ms | 2-process / 1-process time: gradient, HVP |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label in HVP_MODELS:
        for world, times in ((1, one[label]), (2, two[label])):
            ms = {name: [1000 * t for t in times[name]] for name in OPS}
            med = {name: statistics.median(ms[name]) for name in OPS}
            grad, scratch, kept = med["gradient"], med["HVP from scratch"], med["HVP on the kept graph"]
            per_repeat = statistics.median(h / g for h, g in zip(ms["HVP from scratch"], ms["gradient"], strict=True))
            base = one[label]
            vs_one = (
                f"{grad / (1000 * statistics.median(base['gradient'])):.2f}, "
                f"{scratch / (1000 * statistics.median(base['HVP from scratch'])):.2f}"
            )
            reduce_ms = f"{med['all-reduce alone']:.2f}" if world > 1 else "-"
            lines.append(
                f"| {label} | {world} x {HVP_BATCH // world} | {grad:.2f} ({min(ms['gradient']):.2f}) | "
                f"{scratch:.2f} | {scratch / grad:.2f} | {per_repeat:.2f} | {kept:.2f} | {kept / grad:.2f} | "
                f"{reduce_ms} | {vs_one if world > 1 else '1 (anchor)'} |"
            )
    return lines


# ----------------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs of each regopt run variant")
    parser.add_argument("--hvp-repeats", type=int, default=20, help="timed repeats of each operation")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 repeat of shorter runs")
    parser.add_argument("--skip-runs", action="store_true", help="only part 2 (HVP vs gradient)")
    args = parser.parse_args(argv)
    scale = 1.0
    if args.quick:
        args.repeats, args.hvp_repeats, scale = 1, 5, 0.25

    print(f"Distributed (gloo, CPU), {date.today().isoformat()}:")
    print()
    print(
        f"- machine: torch {torch.__version__}, os.cpu_count() = {os.cpu_count()}, Python "
        f"{platform.python_version()}, {platform.platform()}; load average at start {os.getloadavg()[0]:.2f}"
    )
    if not args.skip_runs:
        print(
            f"- regopt run: MNIST-1D ({TRAIN_EXAMPLES} training examples), MLP [1024, 1024] (1.1M parameters), SGD "
            f"momentum 0.9; median of {args.repeats} interleaved runs per variant; anchor: {ANCHOR}"
        )
        print()
        print("\n".join(throughput(args.repeats, scale)))
        print()
    print(
        f"- HVP vs gradient: cross-entropy, batch {HVP_BATCH} (split across the ranks), float32, 1 thread per "
        f"process; median of {args.hvp_repeats} repeats after 3 warm-up"
    )
    print()
    print("\n".join(hvp_table(args.hvp_repeats)))
    print(f"load average at end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
