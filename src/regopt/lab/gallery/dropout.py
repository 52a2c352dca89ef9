"""Gallery entry ``dropout``: one MLP trained with and without dropout, and two ways to predict with dropout.

The MLP of ``dropout.toml`` (widths [256, 256], Adam, 1000 MNIST-1D signals) is trained from the same
initialization and batches with dropout p = 0.5 after each hidden layer and without dropout. Without it the
network fits the training set exactly and its validation loss climbs; dropout keeps training error above 0 and
the validation loss low (sec. 7.12: training a shared-weight ensemble of the 2^n subnetworks).

The trained dropout network then predicts the validation set two ways (:func:`regopt.regularize.compare_inference`):
the weight-scaling rule (one pass in eval mode; torch's inverted dropout already scales by 1/(1-p) in
training) and Monte Carlo dropout (the average of 50 random subnetworks' predictions).
"""

from __future__ import annotations

from pathlib import Path

from regopt.lab.gallery.base import (
    RUN_HEADERS,
    GalleryResult,
    base_config,
    run_row,
    single_threaded,
    variant,
    write_table,
)

ENTRY = "dropout"
MC_SAMPLES = 50
HEADERS = RUN_HEADERS
INFERENCE_HEADERS = ("prediction rule (dropout network)", "val error")


@single_threaded
def dropout(out: Path, progress: bool, *, epochs: int | None = None) -> GalleryResult:
    """MLP on MNIST-1D with and without dropout (p=0.5): curves, and weight scaling vs Monte Carlo dropout."""
    from regopt.lab.gallery.figures.regularize import plot_on_off
    from regopt.lab.report import markdown_table
    from regopt.lab.runs import run
    from regopt.regularize import compare_inference

    base = base_config(ENTRY, epochs)
    p = base["model"]["dropout_hidden"]
    folder = Path(out) / ENTRY
    runs = {
        "no_dropout": (
            "no dropout",
            run(
                variant(base, ENTRY, "no_dropout", {"model.dropout_hidden": 0.0}),
                out=folder,
                force=True,
                progress=progress,
            ),
        ),
        "dropout": (f"dropout p={p}", run(variant(base, ENTRY, "dropout"), out=folder, force=True, progress=progress)),
    }
    rows = [run_row(label, r.summary) for label, r in runs.values()]
    trained = runs["dropout"][1].experiment
    inference = compare_inference(trained.model, trained.data.x_val, trained.data.y_val, samples=MC_SAMPLES, seed=0)

    figure = folder / "curves.png"
    size = base["data"]["train_size"]
    plot_on_off(
        [(label, r.history) for label, r in runs.values()],
        figure,
        title=f"dropout on an MLP (hidden layers [256, 256]) trained on {size} MNIST-1D signals",
    )
    inference_rows = [
        ("weight scaling (one pass, eval mode)", inference["weight_scaling_error"]),
        (f"Monte Carlo dropout ({MC_SAMPLES} subnetworks averaged)", inference["mc_error"]),
    ]
    note = (
        "\n## weight scaling vs Monte Carlo dropout\n\n"
        f"{markdown_table(INFERENCE_HEADERS, inference_rows, digits={'val error': 3})}"
        f"\nThe two rules predict the same class on {inference['agreement']:.1%} of the validation signals; "
        f"their class probabilities differ by {inference['mean_abs_prob_diff']:.4f} on average.\n"
    )
    digits = dict.fromkeys(HEADERS[1:], 3)
    table = write_table(
        folder / "table.md", HEADERS, rows, title="with and without dropout", digits=digits, append=note
    )
    return GalleryResult(
        entry=ENTRY,
        files=[figure, table],
        numbers={
            "final val error without / with dropout": f"{rows[0][2]:.3f} / {rows[1][2]:.3f}",
            "final val loss without / with dropout": f"{rows[0][4]:.3f} / {rows[1][4]:.3f}",
            "val error, weight scaling": inference["weight_scaling_error"],
            f"val error, MC dropout ({MC_SAMPLES} samples)": inference["mc_error"],
            "agreement of the two rules": inference["agreement"],
        },
    )
