"""Gallery entry ``batch_norm`` (sec. 8.7.1): a deep MLP trained with and without batch normalization.

A 12-hidden-layer MLP on MNIST-1D trained with and without batch normalization at one lr and budget
(``batch_norm.toml``), plus the plain network at He initialization, to separate the two effects.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from regopt.lab.gallery.base import GalleryResult, base_config, single_threaded, variant, write_table


@single_threaded
def batch_norm(out: Path, progress: bool, *, epochs: int | None = None) -> GalleryResult:
    """A 12-hidden-layer MLP on MNIST-1D with and without batch norm, same lr and budget."""
    from regopt.init import initialize
    from regopt.lab.experiment import build_experiment
    from regopt.lab.gallery.figures.meta_algorithms import plot_train_val
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
