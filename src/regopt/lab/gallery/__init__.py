"""The demo gallery: each entry reproduces one picture of the chapter and writes it under the demo directory.

An entry is a function ``(out: Path, progress: bool) -> GalleryResult``; register it in :data:`GALLERY`.
Training entries are configs shipped beside this file (``<entry>.toml``) run as ordinary run directories, so
``regopt run`` reproduces any of them alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regopt.lab.config import RunConfig, load_config

HERE = Path(__file__).parent


@dataclass
class GalleryResult:
    """What an entry produced: the files a reader should open and the headline numbers."""

    entry: str
    files: list[Path]
    numbers: dict[str, Any] = field(default_factory=dict)


def gallery_config(entry: str) -> RunConfig:
    """The shipped config of a training entry."""
    return load_config(HERE / f"{entry}.toml")


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


from regopt.lab.gallery.adversarial import adversarial  # noqa: E402
from regopt.lab.gallery.alpha_selection import alpha_curve  # noqa: E402
from regopt.lab.gallery.augmentation_comparison import augmentation  # noqa: E402
from regopt.lab.gallery.bagging import bagging_digits  # noqa: E402
from regopt.lab.gallery.challenges import cliff, ill_conditioning, saddle  # noqa: E402
from regopt.lab.gallery.dropout_comparison import dropout  # noqa: E402
from regopt.lab.gallery.early_stopping_curve import early_stopping  # noqa: E402
from regopt.lab.gallery.l1_l2_histograms import l1_vs_l2  # noqa: E402
from regopt.lab.gallery.meta import batch_norm, curriculum, initialization, pretraining  # noqa: E402
from regopt.lab.gallery.multitask_learning import multitask  # noqa: E402
from regopt.lab.gallery.optimizer_comparison import optimizers  # noqa: E402  (it imports GalleryResult above)
from regopt.lab.gallery.tangent import tangent_prop  # noqa: E402
from regopt.lab.gallery.underconstrained_ridge import underconstrained  # noqa: E402

GALLERY: dict[str, Callable[[Path, bool], GalleryResult]] = {
    "overfit": overfit,
    "optimizers": optimizers,
    "ill_conditioning": ill_conditioning,
    "saddle": saddle,
    "cliff": cliff,
    # chapter 7
    "l1_vs_l2": l1_vs_l2,
    "alpha_curve": alpha_curve,
    "dropout": dropout,
    "augmentation": augmentation,
    "early_stopping": early_stopping,
    "multitask": multitask,
    "underconstrained": underconstrained,
    # chapter 8: initialization and meta-algorithms
    "initialization": initialization,
    "batch_norm": batch_norm,
    "pretraining": pretraining,
    "curriculum": curriculum,
    "bagging": bagging_digits,
    # chapter 7: adversarial training and tangent methods
    "adversarial": adversarial,
    "tangent_prop": tangent_prop,
}
"""Entry name -> function, in the order ``regopt demo`` runs them."""
