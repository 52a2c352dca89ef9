"""Speed of regopt's optimizers' ``step()`` against torch's fastest implementation of the same algorithm.

Each algorithm runs on two layouts of ``--numel`` float32 parameters on the CPU: one tensor, and 400 equal
tensors. Gradients are set once (``p.grad = randn``) and persist, so only ``step()`` is timed, as torch's own
optimizer benchmarks do. Pairs, with regopt's flags set so that both compute the same update:

* SGD (plain, momentum, Nesterov), AdaGrad, Adam, AdamW against torch's ``fused=True`` implementation;
* RMSProp against ``torch.optim.RMSprop(foreach=True)`` (torch has no fused RMSprop) and against the
  memory-bandwidth bound;
* RMSProp with Nesterov momentum and delta-bar-delta (no torch counterpart) against the bound; torch's RMSprop
  with classical momentum is timed as a reference for the former.

The bandwidth bound: the in-place axpy ``y.add_(x, alpha=a)`` on ``--numel`` float32 elements moves 12 bytes
per element (read x, read y, write y). It is timed like an optimizer in every block, between regopt and torch,
so the bound of each pair comes from the same seconds as its timings (on a shared machine the bandwidth moves
with the neighbours' load). An algorithm that must read k and write m tensors of parameter size moves
4 (k + m) bytes per parameter, so its bound is ``numel * 4 (k + m) / bandwidth``; "fraction of bound" is bound
time / measured time (a fused kernel that streams several tensors at once can draw more bandwidth than the
two-input axpy, so it can exceed 1).

Method: in each round, every pair gets fresh parameters and optimizers (same seed for both), one first step
(timed separately: for regopt on the one-tensor layout it includes the ``torch.compile`` of the update),
``WARMUP`` untimed steps each, then ``--repeats`` timed steps of regopt, the axpy and torch interleaved step by
step (the order reversed every step), so that the three see the same machine state: this machine's memory
bandwidth moves by up to 1.7x between seconds, and blocks of steps timed one after the other measured that,
not the code. Reported ms are the median over rounds of each round's median; the ratio torch / regopt is the
median over rounds of the per-round ratio; the ratio of the fastest steps is printed beside it, as a check
that is less sensitive to other processes taking a core. Both implementations take the same number of steps
from the same start, so after each round their parameters are compared (max |delta theta|) to show that the
pair computes the same thing.

Also reported: the bytes allocated by one warm step (``torch.profiler`` with ``profile_memory=True``: the sum
of positive per-op self allocations) and the growth of peak RSS over one warm step, on the one-tensor layout;
first in the process, the first step of each optimizer on an MLP of about 100K parameters, which takes
regopt's eager path (no compile); and, outside the goals, SGD momentum and Adam with a fresh gradient tensor
before every step (as after ``zero_grad(set_to_none=True)``), which regopt uses in place (tensors of at least
``DIRECT_MIN`` elements; smaller ones are copied into its flat buffer). The
inductor cache starts empty (a fresh temporary directory) unless ``--warm-cache`` is given, so the first-step
times are those of a user's first run. The last line says how much of the machine's CPU time other processes
took during the timed steps: above a few percent, the 2-thread timings are not trustworthy.

Usage::

    .venv/bin/python benchmarks/optimizers.py            # full run, 2 to 5 minutes on 2 cores
    .venv/bin/python benchmarks/optimizers.py --quick    # smoke run
    .venv/bin/python benchmarks/optimizers.py --only adam,rmsprop
"""

from __future__ import annotations

import argparse
import copy
import gc
import os
import platform
import re
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import torch
from torch import nn
from torch.optim import Optimizer
from torch.profiler import ProfilerActivity, profile

from regopt.optim import SGD, AdaGrad, Adam, AdamW, DeltaBarDelta, RMSProp, kernels
from regopt.optim.kernels import COMPILE_THRESHOLD

WARMUP = 3
TORCH_RATIO_GOAL = 0.9
BOUND_GOAL = 0.6
FRESH_GRAD_KEYS = ("sgd-momentum", "adam")  # also timed with a fresh gradient tensor every step
ALLOC_GOAL_MB = 1.0  # "far below" one float32 copy of the parameters (64 MB at 16M)
Params = list[nn.Parameter]
Factory = Callable[[Params], Optimizer]


@dataclass(frozen=True)
class Algo:
    key: str
    name: str
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    regopt: Factory
    torch_label: str | None = None
    torch: Factory | None = None
    torch_goal: bool = False  # goal: regopt >= 0.9x torch's speed
    bound_goal: bool = False  # goal: regopt >= 60% of the bandwidth bound
    same_math: bool = True  # torch's update equals regopt's (so parameters are compared)

    @property
    def bytes_per_param(self) -> int:
        return 4 * (len(self.reads) + len(self.writes))


ALGOS = [
    Algo(
        "sgd",
        "SGD",
        ("theta", "g"),
        ("theta",),
        lambda ps: SGD(ps, lr=1e-2),
        "SGD fused",
        lambda ps: torch.optim.SGD(ps, lr=1e-2, fused=True),
        torch_goal=True,
    ),
    Algo(
        "sgd-momentum",
        "SGD momentum",
        ("theta", "g", "v"),
        ("theta", "v"),
        lambda ps: SGD(ps, lr=1e-2, momentum=0.9),
        "SGD momentum fused",
        lambda ps: torch.optim.SGD(ps, lr=1e-2, momentum=0.9, fused=True),
        torch_goal=True,
    ),
    Algo(
        "sgd-nesterov",
        "SGD Nesterov",
        ("theta", "g", "v"),
        ("theta", "v"),
        lambda ps: SGD(ps, lr=1e-2, momentum=0.9, nesterov=True),
        "SGD nesterov fused",
        lambda ps: torch.optim.SGD(ps, lr=1e-2, momentum=0.9, nesterov=True, fused=True),
        torch_goal=True,
    ),
    Algo(
        "adagrad",
        "AdaGrad",
        ("theta", "g", "r"),
        ("theta", "r"),
        lambda ps: AdaGrad(ps, lr=1e-2, eps=1e-10),
        "Adagrad fused",
        lambda ps: torch.optim.Adagrad(ps, lr=1e-2, eps=1e-10, fused=True),
        torch_goal=True,
    ),
    Algo(
        "adam",
        "Adam",
        ("theta", "g", "s", "r"),
        ("theta", "s", "r"),
        lambda ps: Adam(ps, lr=1e-3, eps=1e-8, eps_inside_sqrt=False),
        "Adam fused",
        lambda ps: torch.optim.Adam(ps, lr=1e-3, eps=1e-8, fused=True),
        torch_goal=True,
    ),
    Algo(
        "adamw",
        "AdamW",
        ("theta", "g", "s", "r"),
        ("theta", "s", "r"),
        lambda ps: AdamW(ps, lr=1e-3, eps=1e-8, weight_decay=1e-2, eps_inside_sqrt=False),
        "AdamW fused",
        lambda ps: torch.optim.AdamW(ps, lr=1e-3, eps=1e-8, weight_decay=1e-2, fused=True),
        torch_goal=True,
    ),
    Algo(
        "rmsprop",
        "RMSProp",
        ("theta", "g", "r"),
        ("theta", "r"),
        lambda ps: RMSProp(ps, lr=1e-3, rho=0.99, eps=1e-8, eps_inside_sqrt=False),
        "RMSprop foreach (no fused)",
        lambda ps: torch.optim.RMSprop(ps, lr=1e-3, alpha=0.99, eps=1e-8, foreach=True),
        torch_goal=True,
        bound_goal=True,
    ),
    Algo(
        "rmsprop-nesterov",
        "RMSProp Nesterov",
        ("theta", "g", "r", "v"),
        ("theta", "r", "v"),
        lambda ps: RMSProp(ps, lr=1e-3, rho=0.99, eps=1e-8, momentum=0.9, nesterov=True, eps_inside_sqrt=False),
        "RMSprop momentum foreach (ref.)",
        lambda ps: torch.optim.RMSprop(ps, lr=1e-3, alpha=0.99, eps=1e-8, momentum=0.9, foreach=True),
        bound_goal=True,
        same_math=False,  # torch has classical momentum only
    ),
    Algo(
        "delta-bar-delta",
        "DeltaBarDelta",
        ("theta", "g", "rate", "bar"),
        ("theta", "rate", "bar"),
        lambda ps: DeltaBarDelta(ps, lr=1e-2, kappa=1e-4, phi=0.1, theta=0.7),
        bound_goal=True,
    ),
]


@dataclass
class Result:
    """Timings of one algorithm on one layout, gathered over the rounds."""

    regopt_ms: list[float] = field(default_factory=list)  # per-round medians
    torch_ms: list[float] = field(default_factory=list)
    fastest: dict[str, float] = field(default_factory=lambda: {"regopt": float("inf"), "torch": float("inf")})
    ratios: list[float] = field(default_factory=list)  # per-round torch / regopt
    axpy_ms: list[float] = field(default_factory=list)  # per-round median of the axpy timed in the same block
    first_regopt_s: float | None = None  # round 0
    first_torch_s: float | None = None
    max_diff: float = 0.0


# ----------------------------------------------------------------------------------------------- helpers
def make_params(sizes: list[int], seed: int) -> Params:
    """Float32 parameters of the given sizes with persistent gradients; the same seed gives the same values."""
    generator = torch.Generator().manual_seed(seed)
    params = []
    for n in sizes:
        p = nn.Parameter(torch.randn(n, generator=generator))
        p.grad = torch.randn(n, generator=generator)
        params.append(p)
    return params


CPU_DURING_TIMING = {"busy": 0, "own": 0}  # jiffies over the timed steps: machine busy, this process


def timed_steps(optimizers: list[Optimizer | Axpy], repeats: int) -> list[list[float]]:
    """``repeats`` timed steps of each optimizer, interleaved step by step (the order reversed every step), so
    that all of them see the same machine state: this machine's memory bandwidth moves by up to 1.7x from one
    second to the next, and blocks of steps taken one after the other compared those states, not the code."""
    busy, own = cpu_jiffies()
    times: list[list[float]] = [[] for _ in optimizers]
    indexed = list(enumerate(optimizers))
    for i in range(repeats):
        for j, optimizer in indexed if i % 2 == 0 else indexed[::-1]:
            start = time.perf_counter()
            optimizer.step()
            times[j].append(time.perf_counter() - start)
    busy_after, own_after = cpu_jiffies()
    CPU_DURING_TIMING["busy"] += busy_after - busy
    CPU_DURING_TIMING["own"] += own_after - own
    return times


def first_step(optimizer: Optimizer) -> float:
    start = time.perf_counter()
    optimizer.step()
    return time.perf_counter() - start


class Axpy:
    """The in-place ``y.add_(x, alpha=a)`` on ``numel`` float32 elements (12 bytes per element), with ``step()``
    like an optimizer so it is timed the same way, between the two optimizers of each pair."""

    def __init__(self, numel: int) -> None:
        self.x, self.y = torch.randn(numel), torch.randn(numel)

    def step(self) -> None:
        self.y.add_(self.x, alpha=1e-3)


def allocated_mb(step: Callable[[], object]) -> float:
    """MB allocated by the CPU allocator during one call: positive per-op self allocations, summed."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    return sum(max(e.self_cpu_memory_usage, 0) for e in prof.events()) / 1e6


def _rss() -> tuple[int, int]:
    status = Path("/proc/self/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    hwm = int(re.search(r"VmHWM:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    return rss * 1024, hwm * 1024


def peak_rss_growth_mb(step: Callable[[], object]) -> float | None:
    """Growth of the peak RSS over one call (Linux: resets the high-water mark first), or None if unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before, _ = _rss()
        step()
        _, peak = _rss()
    except (OSError, AttributeError):
        return None
    return max(peak - before, 0) / 1e6


def cpu_jiffies() -> tuple[int, int]:
    """(busy jiffies of the whole machine, jiffies of this process), to tell how much CPU others took."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    values = [int(v) for v in fields]
    busy = sum(values) - values[3] - values[4]  # minus idle and iowait
    own = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    return busy, int(own[11]) + int(own[12])  # utime + stime


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


# ------------------------------------------------------------------------------------------ small model
def small_model_check(algos: list[Algo], steps: int) -> list[str]:
    """First step and steady step of each optimizer on an MLP of ~100K parameters (regopt's eager path)."""
    lines = []
    torch.manual_seed(0)
    template = nn.Sequential(nn.Linear(100, 500), nn.ReLU(), nn.Linear(500, 100), nn.ReLU(), nn.Linear(100, 10))
    numel = sum(p.numel() for p in template.parameters())
    x, y = torch.randn(64, 100), torch.randint(0, 10, (64,))
    lines.append(
        f"Small model: MLP 100-500-100-10, {numel:,} float32 parameters in one bucket (below COMPILE_THRESHOLD = "
        f"{COMPILE_THRESHOLD:,}, so regopt runs its update eagerly). Gradients from one backward pass, then "
        f"persistent; step ms = median of {steps} warm steps. This section runs first in the process, so the "
        "first step includes any one-time initialization."
    )
    lines.append("")
    lines.append(
        "| algorithm | regopt first step ms | regopt step ms | regopt alloc KB/step | torch | torch first step ms "
        "| torch step ms |"
    )
    lines.append("|---|---:|---:|---:|---|---:|---:|")
    for algo in algos:
        cells: list[str] = []
        for factory in (algo.regopt, algo.torch):
            if factory is None:
                cells += ["-", "-"]
                continue
            model = copy.deepcopy(template)
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer = factory(list(model.parameters()))
            first = first_step(optimizer)
            for _ in range(WARMUP):
                optimizer.step()
            cells += [fmt(first * 1e3), fmt(statistics.median(timed_steps([optimizer], steps)[0]) * 1e3, 3)]
            if factory is algo.regopt:
                cells.append(fmt(allocated_mb(optimizer.step) * 1e3, 0))
        row = [algo.name, *cells[:3], algo.torch_label or "-", *cells[3:]]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def measure_pair(
    algo: Algo,
    sizes: list[int],
    res: Result,
    axpy: Axpy,
    *,
    seed: int,
    repeats: int,
    torch_first: bool,
    alloc: dict[str, float | None] | None,
) -> None:
    """One round of one pair on one layout: fresh optimizers, first step, warm-up, then timed steps of regopt,
    the axpy and torch (or torch, axpy, regopt), and checks."""
    regopt_opt = algo.regopt(make_params(sizes, seed=seed))
    torch_opt = algo.torch(make_params(sizes, seed=seed)) if algo.torch is not None else None
    first = first_step(regopt_opt)
    first_torch = first_step(torch_opt) if torch_opt is not None else None
    if not res.regopt_ms:  # round 0
        res.first_regopt_s, res.first_torch_s = first, first_torch
    order: list[tuple[str, Optimizer | Axpy | None]] = [("regopt", regopt_opt), ("axpy", axpy), ("torch", torch_opt)]
    if torch_first:
        order.reverse()
    present = [(label, optimizer) for label, optimizer in order if optimizer is not None]
    for _, optimizer in present:
        for _ in range(WARMUP):
            optimizer.step()
    medians: dict[str, float] = {}
    for (label, _), times in zip(present, timed_steps([o for _, o in present], repeats), strict=True):
        medians[label] = statistics.median(times) * 1e3
        res.fastest[label] = min(res.fastest.get(label, float("inf")), min(times) * 1e3)
    res.regopt_ms.append(medians["regopt"])
    res.axpy_ms.append(medians["axpy"])
    if torch_opt is not None:
        res.torch_ms.append(medians["torch"])
        res.ratios.append(medians["torch"] / medians["regopt"])
        if algo.same_math:  # both took the same steps from the same start
            pairs = zip(regopt_opt.param_groups[0]["params"], torch_opt.param_groups[0]["params"], strict=True)
            diff = max((p.detach() - q.detach()).abs().max().item() for p, q in pairs)
            res.max_diff = max(res.max_diff, diff)
    if alloc is not None:
        alloc["regopt"] = allocated_mb(regopt_opt.step)
        alloc["regopt_rss"] = peak_rss_growth_mb(regopt_opt.step)
        alloc["torch"] = allocated_mb(torch_opt.step) if torch_opt is not None else None
        alloc["torch_rss"] = peak_rss_growth_mb(torch_opt.step) if torch_opt is not None else None
    del regopt_opt, torch_opt
    gc.collect()


def fresh_grad_pair(algo: Algo, numel: int, seed: int, repeats: int, torch_first: bool) -> tuple[float, float]:
    """Median ms per step of regopt and torch when every step brings a fresh gradient tensor, as after
    ``zero_grad(set_to_none=True)`` (the Trainer's setting): regopt updates from it in place (it is large)."""
    assert algo.torch is not None
    medians = {}
    order = [("regopt", algo.regopt), ("torch", algo.torch)]
    if torch_first:
        order.reverse()
    generator = torch.Generator().manual_seed(seed)
    fresh = [torch.randn(numel, generator=generator) for _ in range(2)]
    for label, factory in order:
        params = make_params([numel], seed=seed)
        optimizer = factory(params)
        times = []
        for i in range(WARMUP + repeats):
            params[0].grad = fresh[i % 2]  # a tensor autograd would have just allocated (not the flat view)
            start = time.perf_counter()
            optimizer.step()
            times.append(time.perf_counter() - start)
        medians[label] = statistics.median(times[WARMUP:]) * 1e3
        del optimizer, params
        gc.collect()
    return medians["regopt"], medians["torch"]


# ----------------------------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--numel", type=int, default=16_000_000, help="parameters per layout (default 16M)")
    parser.add_argument("--repeats", type=int, default=15, help="timed steps per measurement (median)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaving rounds")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1.2M parameters, 1 round, 3 repeats")
    parser.add_argument("--only", help="comma-separated keys: " + ", ".join(a.key for a in ALGOS))
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--warm-cache", action="store_true", help="keep the default inductor cache directory")
    args = parser.parse_args()
    if args.quick:
        args.numel, args.repeats, args.rounds = COMPILE_THRESHOLD + 200_000, 3, 1
    if args.threads:
        torch.set_num_threads(args.threads)
    kernels.COMPILE_PAYOFF = 0  # compile="auto" compiles large groups at once: this benchmark times the compiled step
    cache = "default (possibly warm)"
    if not args.warm_cache and "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="regopt-bench-inductor-")
        cache = "fresh temporary directory (cold)"
    algos = ALGOS
    if args.only:
        keys = [k.strip() for k in args.only.split(",")]
        unknown = [k for k in keys if k not in {a.key for a in ALGOS}]
        if unknown:
            parser.error(f"unknown --only keys {unknown}; choose from {[a.key for a in ALGOS]}")
        algos = [a for a in ALGOS if a.key in keys]
    numel, tensors = args.numel, 400
    layouts = {f"1 x {numel / 1e6:g}M": [numel], f"{tensors} x {numel // tensors / 1e3:g}K": [numel // tensors] * 400}

    started = time.perf_counter()
    load_start = Path("/proc/loadavg").read_text().split()[:3]
    print(f"regopt optimizers vs torch, step() speed, {date.today().isoformat()}:\n")
    print(
        f"- machine: torch {torch.__version__}, torch.get_num_threads() = {torch.get_num_threads()}, "
        f"os.cpu_count() = {os.cpu_count()}, Python {platform.python_version()}, {platform.platform()}"
    )
    print(
        f"- layouts: {', '.join(layouts)} float32 parameters on the CPU, persistent gradients; {args.rounds} "
        f"rounds x {args.repeats} timed steps after {WARMUP} warm-up steps; inductor cache: {cache}"
    )
    print(f"- load average at start: {' '.join(load_start)}\n")

    for line in small_model_check(algos, steps=50 if not args.quick else 5):
        print(line)
    print()

    results: dict[tuple[str, str], Result] = {(a.key, name): Result() for a in algos for name in layouts}
    alloc: dict[str, dict[str, float | None]] = {}
    axpy = Axpy(numel)
    fresh: dict[str, list[tuple[float, float]]] = {a.key: [] for a in algos if a.key in FRESH_GRAD_KEYS}
    for rnd in range(args.rounds):
        for index, algo in enumerate(algos):
            for name, sizes in layouts.items():
                measure_pair(
                    algo,
                    sizes,
                    results[(algo.key, name)],
                    axpy,
                    seed=rnd,
                    repeats=args.repeats,
                    torch_first=(rnd + index) % 2 == 1,
                    alloc=alloc.setdefault(algo.key, {}) if rnd == 0 and name == next(iter(layouts)) else None,
                )
        for index, algo in enumerate(a for a in algos if a.key in FRESH_GRAD_KEYS):
            fresh[algo.key].append(fresh_grad_pair(algo, numel, rnd, args.repeats, torch_first=(rnd + index) % 2 == 1))

    axpy_all = [ms for res in results.values() for ms in res.axpy_ms]
    axpy_ms = statistics.median(axpy_all)
    busy, own = CPU_DURING_TIMING["busy"], CPU_DURING_TIMING["own"]
    others = max(busy - own, 0) / max(busy, 1)
    fastest_axpy = min(r.fastest["axpy"] for r in results.values())
    print(
        f"Bandwidth bound: in-place axpy `y.add_(x, alpha=a)` on {numel:,} float32, timed in every block between "
        f"regopt and torch: median {axpy_ms:.2f} ms over {len(axpy_all)} blocks (fastest step {fastest_axpy:.2f} "
        f"ms), 12 B/element -> **{12 * numel / axpy_ms / 1e6:.1f} GB/s**. Bound ms = numel x bytes per parameter "
        "/ bandwidth; fraction of bound = bound ms / measured ms, each round with the axpy of its own block, median "
        "over rounds. The speed ratio is the median of the per-round ratios of medians (goal >= 0.9); in "
        "parentheses, the ratio of the fastest steps, less sensitive to other processes taking a core.\n"
    )
    print(
        "| algorithm | layout | B/param | bound ms | regopt ms | torch impl | torch ms | torch / regopt speed (min) "
        "| regopt frac. of bound | torch frac. of bound | goal | result |"
    )
    print("|---|---|---:|---:|---:|---|---:|---:|---:|---:|---|---|")
    failures = []
    for algo in algos:
        for name in layouts:
            res = results[(algo.key, name)]
            per_byte = [a / 12 for a in res.axpy_ms]  # ms per byte per element, this pair's blocks
            bound_ms = statistics.median(per_byte) * algo.bytes_per_param
            reg_ms = statistics.median(res.regopt_ms)
            tor_ms = statistics.median(res.torch_ms) if res.torch_ms else None
            reg_frac = statistics.median(
                b * algo.bytes_per_param / r for b, r in zip(per_byte, res.regopt_ms, strict=True)
            )
            tor_frac = None
            if res.torch_ms:
                tor_frac = statistics.median(
                    b * algo.bytes_per_param / t for b, t in zip(per_byte, res.torch_ms, strict=True)
                )
            ratio = statistics.median(res.ratios) if res.ratios else None
            speed = "-"
            if ratio is not None:
                speed = f"{ratio:.2f} ({res.fastest['torch'] / res.fastest['regopt']:.2f})"
            goals, ok = [], True
            if algo.torch_goal:
                goals.append(f"torch/regopt >= {TORCH_RATIO_GOAL}")
                ok &= ratio is not None and ratio >= TORCH_RATIO_GOAL
            if algo.bound_goal:
                goals.append(f"bound >= {BOUND_GOAL:.0%}")
                ok &= reg_frac >= BOUND_GOAL
            if not ok:
                failures.append(f"{algo.name} ({name})")
            print(
                f"| {algo.name} | {name} | {algo.bytes_per_param} | {bound_ms:.2f} | {reg_ms:.2f} "
                f"| {algo.torch_label or '-'} | {fmt(tor_ms)} | {speed} | {reg_frac:.2f} "
                f"| {fmt(tor_frac)} | {', '.join(goals)} | {'PASS' if ok else 'FAIL'} |"
            )
    print()
    first_layout, second_layout = layouts
    print(
        f"First step and allocation. First step s: round 0, fresh optimizer; regopt's first step on {first_layout} "
        f"includes compiling its update (the {second_layout} layout, built after it, reuses the dynamic-shape "
        f"kernel). Alloc: one warm step on {first_layout} (profiler: MB allocated; peak RSS growth MB). Goal: "
        f"alloc far below one float32 copy of the parameters ({numel * 4 / 1e6:.0f} MB); PASS below "
        f"{ALLOC_GOAL_MB:g} MB.\n"
    )
    print(
        f"| algorithm | regopt first step s ({first_layout}) | regopt first step s ({second_layout}) "
        f"| torch first step s ({first_layout}) | regopt alloc MB/step | regopt peak RSS growth MB "
        "| torch alloc MB/step | max abs(theta_regopt - theta_torch) | alloc result |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for algo in algos:
        one, many = results[(algo.key, first_layout)], results[(algo.key, second_layout)]
        a = alloc[algo.key]
        ok = a["regopt"] is not None and a["regopt"] < ALLOC_GOAL_MB
        if not ok:
            failures.append(f"{algo.name} allocation")
        diff = "-" if not algo.same_math or algo.torch is None else f"{max(one.max_diff, many.max_diff):.1e}"
        print(
            f"| {algo.name} | {fmt(one.first_regopt_s)} | {fmt(many.first_regopt_s)} | {fmt(one.first_torch_s)} "
            f"| {fmt(a['regopt'], 3)} | {fmt(a['regopt_rss'], 1)} | {fmt(a['torch'], 3)} | {diff} "
            f"| {'PASS' if ok else 'FAIL'} |"
        )
    print()
    if fresh:
        print(
            f"Fresh gradients (outside the goals): {first_layout}, a new gradient tensor before every step, as "
            "after `zero_grad(set_to_none=True)` (torch's default and the Trainer's); both use it in place (regopt "
            "copies only fresh gradients under DIRECT_MIN elements into its flat buffer). "
            "Median over rounds of per-round medians.\n"
        )
        print("| algorithm | regopt ms | torch ms | torch / regopt speed |")
        print("|---|---:|---:|---:|")
        for key, pairs in fresh.items():
            algo = next(a for a in algos if a.key == key)
            reg = statistics.median(p[0] for p in pairs)
            tor = statistics.median(p[1] for p in pairs)
            ratio = statistics.median(p[1] / p[0] for p in pairs)
            print(f"| {algo.name} | {reg:.2f} | {tor:.2f} | {ratio:.2f} |")
        print()
    load_end = Path("/proc/loadavg").read_text().split()[:3]
    print(
        f"Run took {time.perf_counter() - started:.0f} s; load average at end {' '.join(load_end)}; "
        f"other processes used {others:.0%} of the machine's busy CPU time during the timed steps."
    )
    print("All goals met." if not failures else "Goals missed: " + "; ".join(failures) + ".")


if __name__ == "__main__":
    main()
