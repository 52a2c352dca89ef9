"""Gallery entry ``early_stopping``: Algorithm 7.1 on an over-fitting MLP, the stop and the restored epoch marked.

The run of ``early_stopping.toml`` watches the validation error, as the slide's Keras callback
``EarlyStopping(monitor='val_err', patience=...)`` does; once it has not improved for ``patience`` epochs
training stops and the weights of the best epoch are loaded back (Keras' ``restore_best_weights``). The same
config is also run for all its epochs without early stopping: with the same seed its curves are those of the
stopped run up to the stop, and the figure draws them faintly beyond it, to show what the stop avoided.

What it avoided here is mostly wasted epochs and an over-confident model: after its best epoch this network's
validation *error* wanders on a plateau rather than climbing (the restored weights and the last ones are within
a point or so of each other, either way round), while its validation *loss* climbs steadily. The table reports
both, and the test error, as measured.
"""

from __future__ import annotations

from pathlib import Path

from regopt.lab.gallery.base import GalleryResult, base_config, single_threaded, variant, write_table

ENTRY = "early_stopping"
HEADERS = ("run", "epochs trained", "weights of epoch", "val loss", "val error", "test error")


@single_threaded
def early_stopping(out: Path, progress: bool, *, epochs: int | None = None) -> GalleryResult:
    """An over-fitting MNIST-1D MLP stopped when validation error stops improving; best weights restored."""
    from regopt.lab.gallery.figures.regularize import plot_early_stopping
    from regopt.lab.runs import run

    base = base_config(ENTRY, epochs)
    options = base["regularize"]["early_stopping"]
    folder = Path(out) / ENTRY
    stopped = run(variant(base, ENTRY, "early_stopping"), out=folder, force=True, progress=progress)
    full = run(
        variant(base, ENTRY, "no_early_stopping", {"regularize.early_stopping": None}),
        out=folder,
        force=True,
        progress=progress,
    )
    info = stopped.summary["early_stopping"]
    best_epoch, stop_epoch = info["best_epoch"], info["stopped_epoch"]
    kept = stopped.history[best_epoch - 1]
    last = full.history[-1]
    rows = [
        (
            "early stopping",
            stopped.summary["epochs"],
            best_epoch,
            kept["val_loss"],
            kept["val_error"],
            stopped.summary.get("test_error"),
        ),
        (
            "no early stopping",
            full.summary["epochs"],
            int(last["epoch"]),
            last["val_loss"],
            last["val_error"],
            full.summary.get("test_error"),
        ),
    ]

    figure = folder / "early_stopping.png"
    size = base["data"]["train_size"]
    plot_early_stopping(
        stopped.history,
        figure,
        best_epoch=best_epoch,
        stopped_epoch=stop_epoch,
        monitor=options["monitor"],
        patience=options["patience"],
        reference=full.history,
        title=f"early stopping (Algorithm 7.1): MLP on {size} MNIST-1D signals",
    )
    digits = {"val loss": 3, "val error": 3, "test error": 3}
    table = write_table(
        folder / "table.md",
        HEADERS,
        rows,
        title=f"early stopping on {options['monitor']}, patience {options['patience']}, best weights restored",
        digits=digits,
    )
    return GalleryResult(
        entry=ENTRY,
        files=[figure, table],
        numbers={
            "stopped at epoch": stop_epoch
            if stop_epoch is not None
            else f"never (ran all {stopped.summary['epochs']})",
            "restored epoch": best_epoch,
            "test error, restored / trained to the end": f"{rows[0][5]:.3f} / {rows[1][5]:.3f}",
            "val error, restored / trained to the end": f"{rows[0][4]:.3f} / {rows[1][4]:.3f}",
            "epochs trained, early stopping / without": f"{rows[0][1]} / {rows[1][1]}",
        },
    )
