"""Two probes behind figures in BENCHMARKS.md and ``regopt/optim/kernels.py``, below the level of ``step()``.

1. **Compiled kernels against torch's fused step.** regopt's update functions compiled as ``step()`` compiles
   them (``torch.compile(dynamic=True, fullgraph=True)``, scalars as 0-dim tensors) called directly on 16M
   float32 tensors, against torch's ``fused=True`` optimizer on tensors of the same size, interleaved round by
   round (``--rounds`` rounds of ``--steps`` steps each, the order reversed every round). This separates the
   kernels' speed from everything around them (the machine's bandwidth state, the per-step Python work).
2. **Eager slice size.** The eager path (buckets under ``COMPILE_THRESHOLD``) runs the update over slices of
   ``EAGER_CHUNK`` elements; this sweeps that size for Adam and SGD with momentum at three bucket sizes and prints
   the median ``step()`` time, with torch's foreach and fused Adam beside it.

Usage::

    .venv/bin/python benchmarks/optimizer_probes.py            # both probes, about a minute on 2 cores
    .venv/bin/python benchmarks/optimizer_probes.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

import regopt.optim.kernels as kernels
from regopt.optim import SGD, Adam
from regopt.optim.adam import adam_update
from regopt.optim.sgd import momentum_update

Step = Callable[[], object]


def median_ms(step: Step, steps: int) -> float:
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def interleaved(cases: dict[str, Step], rounds: int, steps: int) -> dict[str, float]:
    """Median over rounds of each round's median ms; the order is reversed every round."""
    for step in cases.values():
        for _ in range(3):
            step()
    per_round: dict[str, list[float]] = {name: [] for name in cases}
    items = list(cases.items())
    for r in range(rounds):
        for name, step in items if r % 2 == 0 else items[::-1]:
            per_round[name].append(median_ms(step, steps))
    return {name: statistics.median(values) for name, values in per_round.items()}


def kernel_probe(numel: int, rounds: int, steps: int) -> None:
    print(f"\n### Compiled update kernels vs torch's fused step ({numel:,} float32, {rounds} rounds x {steps} steps)\n")
    print("| algorithm | regopt kernel ms | torch fused step ms | torch / regopt speed |")
    print("|---|---:|---:|---:|")
    t = lambda value: torch.tensor(value)  # noqa: E731  (0-dim float32, as the compiled dispatcher passes them)
    gen = torch.Generator().manual_seed(0)
    theta, g, s, r = (torch.randn(numel, generator=gen).abs() for _ in range(4))
    adam_kwargs = {
        "lr": t(1e-3), "rho1": t(0.9), "rho2": t(0.999), "delta": t(1e-8), "correction1": t(0.1),
        "correction2": t(0.001), "decay": False, "delta_inside_sqrt": False,
    }  # fmt: skip
    rows: list[tuple[str, Step, torch.optim.Optimizer]] = []
    for name, decoupled, torch_cls in (("Adam", False, torch.optim.Adam), ("AdamW", True, torch.optim.AdamW)):
        kernel = torch.compile(adam_update, dynamic=True, fullgraph=True)
        kwargs = {**adam_kwargs, "decay": decoupled, "decoupled": decoupled, "weight_decay": t(1e-2)}
        rows.append((name, lambda k=kernel, kw=kwargs: k(theta, g, s, r, **kw), torch_cls))
    nesterov = torch.compile(momentum_update, dynamic=True, fullgraph=True)
    nesterov_kwargs = {"lr": t(1e-2), "alpha": t(0.9), "weight_decay": t(0.0), "decay": False, "nesterov": True}
    rows.append(("SGD Nesterov", lambda: nesterov(theta, g, s, **nesterov_kwargs), torch.optim.SGD))
    for name, kernel_step, torch_cls in rows:
        p = nn.Parameter(torch.randn(numel, generator=gen))
        p.grad = torch.randn(numel, generator=gen)
        extra = {"momentum": 0.9, "nesterov": True, "lr": 1e-2} if torch_cls is torch.optim.SGD else {"lr": 1e-3}
        reference = torch_cls([p], fused=True, **extra)
        ms = interleaved({"regopt": kernel_step, "torch": reference.step}, rounds, steps)
        print(f"| {name} | {ms['regopt']:.3f} | {ms['torch']:.3f} | {ms['torch'] / ms['regopt']:.2f} |")


def eager_probe(sizes: list[int], chunks: list[int], steps: int) -> None:
    print(f"\n### Eager step() ms by slice size (EAGER_CHUNK), median of {steps} warm steps\n")
    header = " | ".join(f"Adam {c // 1024}K | momentum {c // 1024}K" for c in chunks)
    print(f"| elements | {header} | torch Adam foreach | torch Adam fused |")
    print("|---:|" + "---:|" * (2 * len(chunks) + 2))
    saved = kernels.EAGER_CHUNK
    try:
        for n in sizes:
            cells = []
            for chunk in chunks:
                kernels.EAGER_CHUNK = chunk
                for factory in (lambda ps: Adam(ps, lr=1e-3), lambda ps: SGD(ps, lr=1e-3, momentum=0.9)):
                    cells.append(f"{eager_step_ms(factory, n, steps):.3f}")
            for extra in ({"foreach": True}, {"fused": True}):
                cells.append(f"{eager_step_ms(lambda ps, e=extra: torch.optim.Adam(ps, lr=1e-3, **e), n, steps):.3f}")
            print(f"| {n:,} | " + " | ".join(cells) + " |")
    finally:
        kernels.EAGER_CHUNK = saved


def eager_step_ms(factory: Callable[[list[nn.Parameter]], torch.optim.Optimizer], numel: int, steps: int) -> float:
    p = nn.Parameter(torch.randn(numel))
    p.grad = torch.randn(numel)
    optimizer = factory([p])
    for _ in range(20):
        optimizer.step()
    return median_ms(optimizer.step, steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: small sizes, few steps")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"Optimizer probes: torch {torch.__version__}, torch.get_num_threads() = {torch.get_num_threads()}")
    if args.quick:
        kernel_probe(1 << 20, rounds=2, steps=3)
        eager_probe([100_000], [1 << 16, 1 << 17], steps=20)
    else:
        kernel_probe(16_000_000, rounds=9, steps=10)
        eager_probe([101_610, 500_000, 1_000_000], [1 << 16, 1 << 17, 1 << 18], steps=200)


if __name__ == "__main__":
    main()
