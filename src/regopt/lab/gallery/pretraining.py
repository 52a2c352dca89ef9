"""Gallery entry ``pretraining`` (sec. 8.7.4): greedy supervised pretraining vs the same deep MLP from scratch.

Greedy supervised pretraining (:mod:`regopt.pretraining`) grows a 4-hidden-layer MLP one layer at a time, then
fine-tunes it; the same network trained from scratch gets as many epochs. Every model is an ordinary run of
``pretraining.toml`` (``[pretraining]`` trains the stages on one Trainer), written under the entry's directory.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from statistics import mean
from typing import Any

from regopt.lab.gallery.base import GalleryResult, base_config, run_seeds, single_threaded, write_table
from regopt.lab.gallery.meta_runs import LR

ENTRY = "pretraining"


@single_threaded
def pretraining(
    out: Path, progress: bool, *, epochs_per_stage: int = 5, seeds: Sequence[int] = (0, 1, 2)
) -> GalleryResult:
    """Greedy supervised pretraining vs training the same deep MLP from scratch for as many epochs."""
    from regopt.lab.gallery.figures.meta_algorithms import plot_val_curves

    del progress  # a few seconds a run
    widths = [128] * 4  # grown to 4 hidden layers from a 1-hidden-layer start, then fine-tuned
    stages = len(widths) + 1  # + fine-tuning
    total = epochs_per_stage * stages
    base = base_config(ENTRY, total)
    base["pretraining"]["epochs_per_stage"] = epochs_per_stage
    variants: dict[str, tuple[str, dict[str, Any]]] = {  # table row: (run name, changes to the base config)
        "from scratch": ("scratch", {"pretraining": None}),
        "greedy, layers kept training": ("greedy", {}),
        "greedy, earlier layers frozen": ("greedy-frozen", {"pretraining.freeze_existing": True}),
    }
    folder = Path(out) / ENTRY
    runs = run_seeds(base, ENTRY, variants, seeds, folder)
    curves = {name: [[row["val_error"] for row in r.history] for r in runs[name]] for name in variants}
    results = {
        name: [(r.summary["test_error"], r.summary["steps"], r.summary["wall_time_s"]) for r in runs[name]]
        for name in variants
    }
    rows = []
    for name in variants:
        tests = [r[0] for r in results[name]]
        finals = [h[-1] for h in curves[name]]
        seconds = mean(r[2] for r in results[name])
        rows.append((name, mean(finals), mean(tests), min(tests), max(tests), results[name][0][1], seconds))
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
