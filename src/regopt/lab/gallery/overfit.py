"""Gallery entry ``overfit``: the chapter's opening picture, an MLP that fits its training set and not the rest.

The run of ``overfit.toml`` (200 digits, no regularization) is an ordinary run directory ``<out>/overfit/``, so
``regopt run`` reproduces it alone; its ``curves.png`` shows training error reaching 0 while validation error
stalls far above it.
"""

from __future__ import annotations

from pathlib import Path

from regopt.lab.gallery.base import GalleryResult, gallery_config


def overfit(out: Path, progress: bool) -> GalleryResult:
    """MLP on 200 digits without regularization: train error -> 0 while validation error stays high."""
    from regopt.lab.runs import run

    result = run(gallery_config("overfit"), out=out, force=True, progress=progress)
    s = result.summary
    return GalleryResult(
        entry="overfit",
        files=[result.path / "curves.png", result.path / "metrics.csv", result.path / "summary.json"],
        numbers={
            "final train error": s["final_train_error"],
            "final val error": s["final_val_error"],
            "generalization gap": s["generalization_gap"],
        },
    )
