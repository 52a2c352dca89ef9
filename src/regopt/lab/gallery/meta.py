"""Gallery entries for sec. 8.4 and 8.7: initialization, batch normalization, pretraining, curriculum/continuation.

- ``initialization``: the std of each hidden layer's activations and of the loss gradient with respect to them,
  through 20-layer ReLU and tanh MLPs (width 256, MNIST-1D inputs), for every policy of :mod:`regopt.init`.
- ``batch_norm``: a 12-hidden-layer MLP on MNIST-1D trained with and without batch normalization at one lr and
  budget (``batch_norm.toml``), plus the plain network at He initialization, to separate the two effects.
- ``pretraining``: greedy supervised pretraining (:mod:`regopt.pretraining`) vs the same deep MLP from scratch,
  at the same number of epochs.
- ``curriculum``: easy-first training (difficulty = a reference model's loss) vs random order, and continuation
  on a 1-D wiggly function (:func:`regopt.curriculum.smoothed_loss`).

The plain-loop runs of ``pretraining`` and ``curriculum`` are in :mod:`.meta_runs`, the figures in :mod:`.meta_plots`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from statistics import mean
from typing import Any

import torch
from torch import nn

from regopt.lab.gallery import GalleryResult
from regopt.lab.gallery.common import base_config, single_threaded, variant, write_table
from regopt.lab.gallery.meta_plots import plot_continuation, plot_depth_profiles, plot_train_val, plot_val_curves
from regopt.lab.gallery.meta_runs import (
    LR,
    continuation_demo,
    curriculum_run,
    mlp,
    mnist1d,
    pretraining_run,
    train_epochs,
)

INIT_DEPTH, INIT_WIDTH, INIT_EXAMPLES = 20, 256, 512
SMALL = "N(0, 0.01^2)"  # a too-small initialization, beside the policies


# ----------------------------------------------------------------------------------------- initialization


@single_threaded
def initialization(out: Path, progress: bool) -> GalleryResult:
    """Activation and gradient std through 20-layer ReLU and tanh MLPs for each initialization policy."""
    from regopt.init import POLICIES, activation_statistics, initialize

    data = mnist1d()
    x, y = data.x_train[:INIT_EXAMPLES], data.y_train[:INIT_EXAMPLES]
    profiles: dict[str, dict[str, list[dict[str, Any]]]] = {}
    rows = []
    for net, activation, nonlinearity in (("ReLU", nn.ReLU, "relu"), ("tanh", nn.Tanh, "tanh")):
        profiles[net] = {}
        for policy in [*POLICIES, SMALL]:
            torch.manual_seed(0)
            model = mlp([INIT_WIDTH] * INIT_DEPTH, activation=activation)
            if policy == SMALL:
                initialize(model, "lecun_normal", gain=0.01 * math.sqrt(INIT_WIDTH))  # std 0.01 at width 256
            else:
                initialize(model, policy, nonlinearity=nonlinearity)  # type: ignore[arg-type]
            stats: list[dict[str, Any]] = activation_statistics(model, x, y)
            profiles[net][policy] = stats
            first, last = stats[0], stats[-1]
            rows.append(
                (
                    net,
                    policy,
                    last["activation_std"],
                    last["activation_std"] / first["activation_std"],
                    first["gradient_std"] / last["gradient_std"],
                )
            )
    folder = Path(out) / "initialization"
    figure = folder / "depth_profiles.png"
    plot_depth_profiles(profiles, figure, title=f"{INIT_DEPTH}-layer MLPs (width {INIT_WIDTH}) on MNIST-1D inputs")
    headers = ("network", "policy", "activation std, layer 20", "activation std 20 / 1", "gradient std 1 / 20")
    note = (
        "\nBiases are zero. He uses gain sqrt(2) in the ReLU network and 5/3 (torch's tanh gain) in the tanh one; "
        "the other policies use their published gain of 1. Ratios far below 1 mean vanishing signals (forward) "
        "or gradients (backward), far above 1 exploding ones.\n"
    )
    shown = [(net, policy, *(f"{v:.3g}" for v in values)) for net, policy, *values in rows]  # 3 significant digits
    table = write_table(folder / "table.md", headers, shown, title="scale through depth", append=note)
    ratio = {(r[0], r[1]): r[3] for r in rows}
    return GalleryResult(
        entry="initialization",
        files=[figure, table],
        numbers={
            "ReLU activation std ratio 20/1, He": f"{ratio['ReLU', 'he_normal']:.3g}",
            "ReLU activation std ratio 20/1, Xavier": f"{ratio['ReLU', 'xavier_uniform']:.3g}",
            "ReLU activation std ratio 20/1, torch default": f"{ratio['ReLU', 'default']:.3g}",
            "tanh activation std ratio 20/1, Xavier": f"{ratio['tanh', 'xavier_uniform']:.3g}",
        },
    )


# ------------------------------------------------------------------------------------------- batch norm


@single_threaded
def batch_norm(out: Path, progress: bool, *, epochs: int | None = None) -> GalleryResult:
    """A 12-hidden-layer MLP on MNIST-1D with and without batch norm, same lr and budget."""
    from regopt.init import initialize
    from regopt.lab.experiment import build_experiment
    from regopt.lab.runs import run

    entry = "batch_norm"
    base = base_config(entry, epochs)
    folder = Path(out) / entry
    depth = len(base["model"]["widths"])
    runs: list[tuple[str, list[dict[str, float]], float | None, float]] = []
    for name, label, bn in (("plain", "no batch norm", False), ("batch_norm", "batch norm", True)):
        result = run(variant(base, entry, name, {"model.batch_norm": bn}), out=folder, force=True, progress=progress)
        s = result.summary
        runs.append((label, result.history, s.get("test_error"), s["wall_time_s"]))
    # The plain network at He initialization: the config has no init option, so this run is built here and
    # re-initialized before training (the optimizer holds the same parameter objects).
    started = time.perf_counter()
    experiment = build_experiment(variant(base, entry, "plain_he", {"model.batch_norm": False}))
    initialize(experiment.model, "he_normal", generator=torch.Generator().manual_seed(0))
    history = experiment.trainer.fit()
    test = experiment.trainer.test()["test_error"]
    runs.insert(1, ("no batch norm, He init", history, test, time.perf_counter() - started))

    figure = folder / "curves.png"
    opt = base["optimizer"]
    plot_train_val(
        [(label, h) for label, h, _, _ in runs],
        figure,
        title=f"MLP with {depth} hidden layers on MNIST-1D, {opt['name']} lr={opt['lr']} "
        f"momentum={opt.get('momentum', 0)}, {len(runs[0][1])} epochs",
    )
    headers = ("run", "val error, epoch 1", "best val error", "final val error", "test error", "wall s")
    rows = [
        (label, h[0]["val_error"], min(r["val_error"] for r in h), h[-1]["val_error"], t, w) for label, h, t, w in runs
    ]
    digits = {**dict.fromkeys(headers[1:5], 3), "wall s": 1}
    note = "\nWeights start at torch's default (U(+-1/sqrt(fan_in))) except in the He row; chance error is 0.9.\n"
    table = write_table(
        folder / "table.md", headers, rows, title="with and without batch norm", digits=digits, append=note
    )
    return GalleryResult(
        entry=entry,
        files=[figure, table],
        numbers={
            "final val error: plain / plain+He / batch norm": " / ".join(f"{row[3]:.3f}" for row in rows),
            "test error with batch norm": rows[2][4],
        },
    )


# ------------------------------------------------------------------------------------------- pretraining


@single_threaded
def pretraining(
    out: Path, progress: bool, *, epochs_per_stage: int = 5, seeds: Sequence[int] = (0, 1, 2)
) -> GalleryResult:
    """Greedy supervised pretraining vs training the same deep MLP from scratch for as many epochs."""
    data = mnist1d()
    widths = [128] * 4  # grown to 4 hidden layers from a 1-hidden-layer start, then fine-tuned
    stages = len(widths) + 1  # + fine-tuning
    total = epochs_per_stage * stages
    variants = ("from scratch", "greedy, layers kept training", "greedy, earlier layers frozen")
    curves: dict[str, list[list[float]]] = {v: [] for v in variants}
    results: dict[str, list[tuple[float, int, float]]] = {v: [] for v in variants}
    for seed in seeds:
        for name in variants:
            history, test, steps, seconds = pretraining_run(name, seed, data, widths, epochs_per_stage)
            curves[name].append(history)
            results[name].append((test, steps, seconds))
    rows = []
    for name in variants:
        tests = [r[0] for r in results[name]]
        finals = [h[-1] for h in curves[name]]
        seconds = mean(r[2] for r in results[name])
        rows.append((name, mean(finals), mean(tests), min(tests), max(tests), results[name][0][1], seconds))
    folder = Path(out) / "pretraining"
    figure = folder / "curves.png"
    plot_val_curves(
        {name: [mean(c) for c in zip(*curves[name], strict=True)] for name in variants},
        figure,
        title=f"MLP with {len(widths)} hidden layers of 128 on MNIST-1D, Adam lr={LR}, mean of {len(seeds)} seeds",
        boundaries=[epochs_per_stage * k for k in range(1, stages)],
        boundary_label="greedy: a layer added (last: fine-tuning starts)",
    )
    headers = ("training", "final val error", "mean test error", "min test", "max test", "optimizer steps", "wall s")
    note = (
        f"\nGreedy: 1 hidden layer, then one layer added at a time ({epochs_per_stage} epochs per stage, a fresh "
        f"head each time), then {epochs_per_stage} epochs fine-tuning all layers: {total} epochs in all, as from "
        f"scratch. Means over seeds {list(seeds)}; wall s is per run (greedy trains smaller networks in its early "
        "stages, and frozen layers need no backward pass).\n"
    )
    digits = {**dict.fromkeys(headers[1:5], 3), "wall s": 1}
    table = write_table(
        folder / "table.md", headers, rows, title="greedy pretraining vs scratch", digits=digits, append=note
    )
    return GalleryResult(
        entry="pretraining",
        files=[figure, table],
        numbers={f"mean test error, {row[0]}": row[2] for row in rows},
    )


# ---------------------------------------------------------------------------------------------- curriculum


@single_threaded
def curriculum(out: Path, progress: bool, *, epochs: int = 20, seeds: Sequence[int] = (0, 1, 2)) -> GalleryResult:
    """Easy-first curriculum vs random order on MNIST-1D; continuation on a 1-D function with local minima."""
    from regopt.curriculum import Curriculum, difficulty_by_loss

    data = mnist1d()
    torch.manual_seed(100)
    reference = mlp([32])  # a small reference model, trained briefly on the same training set
    train_epochs(reference, data, 3, torch.Generator().manual_seed(100), [])
    difficulty = difficulty_by_loss(reference, None, data.x_train, data.y_train)  # None: cross-entropy
    half = epochs // 2
    variants: dict[str, tuple[Curriculum | None, bool]] = {  # name: (schedule, same steps per epoch as random)
        "random order": (None, True),
        "curriculum (easy first)": (Curriculum(difficulty, start_fraction=0.2, epochs_to_full=half), False),
        "curriculum, same steps": (Curriculum(difficulty, start_fraction=0.2, epochs_to_full=half), True),
        "anti-curriculum (hard first), same steps": (
            Curriculum(-difficulty, start_fraction=0.2, epochs_to_full=half),
            True,
        ),
    }
    curves: dict[str, list[list[float]]] = {v: [] for v in variants}
    results: dict[str, list[tuple[float, int]]] = {v: [] for v in variants}
    for seed in seeds:
        for name, (schedule, same_steps) in variants.items():
            history, test, steps = curriculum_run(schedule, same_steps, seed, data, epochs)
            curves[name].append(history)
            results[name].append((test, steps))
    rows = []
    for name in variants:
        tests = [t for t, _ in results[name]]
        finals = [h[-1] for h in curves[name]]
        bests = [min(h) for h in curves[name]]
        rows.append((name, mean(bests), mean(finals), mean(tests), results[name][0][1]))
    folder = Path(out) / "curriculum"
    figure, cont_figure = folder / "curves.png", folder / "continuation.png"
    plot_val_curves(
        {name: [mean(c) for c in zip(*curves[name], strict=True)] for name in variants},
        figure,
        title=f"MLP [100, 100] on MNIST-1D, Adam lr={LR}: curricula from 20% to all examples by epoch {half + 1}",
        boundaries=[half],
        boundary_label="curricula reach all examples",
    )
    continuation = continuation_demo()
    plot_continuation(continuation, cont_figure)
    headers = ("order", "best val error", "final val error", "mean test error", "optimizer steps")
    note = (
        f"\nDifficulty: loss of a [32]-MLP trained 3 epochs on the same examples. {epochs} epochs for all; in "
        f"epoch e = 1, 2, ... the curricula use the easiest (hardest) fraction min(1, 0.2 + 0.8 (e - 1) / {half}) "
        "of the examples, once (fewer steps) or cycled to as many steps as random order (same steps). "
        f"Mean of seeds {list(seeds)}.\n\n"
        "## continuation on f(w) = w^2 + 2 sin(5w)\n\n"
        f"Gradient descent from w = {continuation['start']} stops at w = {continuation['plain'][-1]:.3f} "
        f"(f = {continuation['f_plain']:.3f}); continuation with sigma = {continuation['sigmas'][0]:.2f} ... 0 "
        f"ends at w = {continuation['path'][-1]:.3f} (f = {continuation['f_path']:.3f}); the global minimum is at "
        f"w = {continuation['global']:.3f}.\n"
    )
    digits = dict.fromkeys(headers[1:4], 3)
    table = write_table(
        folder / "table.md", headers, rows, title="curriculum vs random order", digits=digits, append=note
    )
    return GalleryResult(
        entry="curriculum",
        files=[figure, cont_figure, table],
        numbers={
            **{f"mean test error, {row[0]}": row[3] for row in rows},
            "continuation: final w (global minimum)": f"{continuation['path'][-1]:.3f} ({continuation['global']:.3f})",
            "plain gradient descent: final w": round(continuation["plain"][-1], 3),
        },
    )
