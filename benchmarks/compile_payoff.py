"""When does compiling an optimizer update pay? Eager vs compiled step time on 1M-4M element groups, and the cost
of the first compiled step in a fresh process; from them ``COMPILE_PAYOFF`` of ``regopt.optim.kernels``.

``compile="auto"`` runs an update of n elements eagerly for ``ceil(COMPILE_PAYOFF / n)`` steps and compiled after.
Compiling costs C seconds once (the first compiled step of a process, cold inductor cache) and saves
``(eager - compiled)`` per step, which grows with n: ``saving = s * n`` with s the saving per element-step. A run
breaks even after ``C / (s * n)`` steps, so ``COMPILE_PAYOFF = C / s`` element-steps. Running eagerly exactly that
long before compiling (the ski-rental rule) costs at most twice the better of the two choices made in hindsight,
whatever the length of the run.

Usage::

    .venv/bin/python benchmarks/compile_payoff.py            # about a minute on 2 cores
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import torch

from regopt.optim import SGD, Adam, DeltaBarDelta

SIZES = (1 << 20, 4 << 20)
ALGORITHMS = {
    "SGD momentum": (SGD, {"lr": 1e-3, "momentum": 0.9}),
    "Adam": (Adam, {"lr": 1e-3}),
    "DeltaBarDelta": (DeltaBarDelta, {"lr": 1e-3, "kappa": 1e-5}),
}
WARM, TIMED = 3, 40

FIRST_STEP = """
import sys, time, torch
from regopt.optim import SGD, Adam, DeltaBarDelta
cls, kwargs = {"SGD momentum": (SGD, {"lr": 1e-3, "momentum": 0.9}), "Adam": (Adam, {"lr": 1e-3}),
               "DeltaBarDelta": (DeltaBarDelta, {"lr": 1e-3, "kappa": 1e-5})}[sys.argv[1]]
p = torch.nn.Parameter(torch.zeros(int(sys.argv[2])))
p.grad = torch.randn(p.numel())
opt = cls([p], **kwargs, compile="auto")
opt.step(); opt.step()
"""


def step_ms(cls: type, kwargs: dict, numel: int, compile: bool) -> float:
    """Fastest ms of a warm step() on one persistent gradient of ``numel`` float32 elements (the fastest, not the
    median, so that other processes taking the cores inflate it least)."""
    p = torch.nn.Parameter(torch.zeros(numel))
    p.grad = torch.randn(numel, generator=torch.Generator().manual_seed(0))
    optimizer = cls([p], **kwargs, compile=compile)
    for _ in range(WARM):
        optimizer.step()
    times = []
    for _ in range(TIMED):
        start = time.perf_counter()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return 1e3 * min(times)


def _child_cpu_s(name: str, numel: int, compile: bool) -> float:
    """CPU seconds (user + system, with its own children: inductor's C++ compiler) of a fresh process that takes
    two steps; an empty inductor cache."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache, "REGOPT_COMPILE": "1" if compile else "0"}
        subprocess.run([sys.executable, "-c", FIRST_STEP, name, str(numel)], env=env, capture_output=True, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def first_compile_s(name: str, numel: int) -> float:
    """The compile's cost: CPU seconds of a fresh process that compiles its update minus one that does not. CPU
    time, not wall time, so that it reads the same on a busy machine as on a quiet one (where the two agree:
    inductor compiles in this process and one compiler process at a time)."""
    return _child_cpu_s(name, numel, True) - _child_cpu_s(name, numel, False)


def main() -> None:
    torch.set_num_threads(1)
    print(
        f"- torch {torch.__version__}, torch.get_num_threads() = {torch.get_num_threads()} (set), "
        f"os.cpu_count() = {os.cpu_count()}, load average at start {os.getloadavg()[0]:.2f}\n"
    )
    print(
        "| algorithm | elements | eager step ms | compiled step ms | saving ns/element-step | compile CPU s "
        "(fresh process) | break-even steps |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    payoffs = []
    for name, (cls, kwargs) in ALGORITHMS.items():
        compile_s = first_compile_s(name, SIZES[0])
        for numel in SIZES:
            eager, compiled = step_ms(cls, kwargs, numel, False), step_ms(cls, kwargs, numel, True)
            saving = (eager - compiled) * 1e6 / numel  # ns per element-step
            steps = compile_s * 1e9 / (saving * numel) if saving > 0 else float("inf")
            payoffs.append(compile_s * 1e9 / saving if saving > 0 else float("inf"))
            print(
                f"| {name} | {numel:,} | {eager:.3f} | {compiled:.3f} | {saving:.3f} | {compile_s:.2f} | {steps:,.0f} |"
            )
    finite = [p for p in payoffs if p != float("inf")]
    print(
        f"\nCOMPILE_PAYOFF = first compiled step / saving per element-step: median {statistics.median(finite):.3g} "
        f"element-steps (range {min(finite):.3g} to {max(finite):.3g}); load average at end {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
