"""Config sections of ``[data]``: one class per dataset, chosen by ``name``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from regopt.lab.schema.base import MAX_SCALE, FilePath, Fraction, Samples, Seed, Strict

# --------------------------------------------------------------------------------------------------- data
Noise = Annotated[float, Field(ge=0.0, le=MAX_SCALE)]
"""Standard deviation of the noise added to generated data (at most 1e6: beyond, only noise is left)."""


class SplitOptions(Strict):
    train_size: Samples | None = None
    """Keep only this many training examples (after the validation split); small data shows overfitting."""
    val_fraction: Fraction = 0.2
    """Fraction of the training pool carved off as the validation split."""
    seed: Seed = 0
    """Seed of the split and subsampling, separate from the training seed so runs compare on the same data."""


class Mnist1dData(SplitOptions):
    """MNIST-1D (Greydanus 2020), generated locally: 4000 train / 1000 test, 40 features, 10 classes.

    The validation split is carved from the 4000 (3200 / 800 at the default ``val_fraction``)."""

    name: Literal["mnist1d"]
    num_samples: Samples = 5000
    as_sequence: bool = False
    """Shape each example (40, 1) for recurrent models instead of (40,)."""


class DigitsData(SplitOptions):
    """scikit-learn's bundled 8x8 handwritten digits (1797 images, 10 classes)."""

    name: Literal["digits"]
    image: bool = False
    """Examples as 1x8x8 images (for CNNs and image augmentation) instead of 64-vectors."""
    test_fraction: Fraction = 0.2


class MoonsData(SplitOptions):
    """Two interleaving half circles (2-D, 2 classes)."""

    name: Literal["moons"]
    num_samples: Samples = 1000
    noise: Noise = 0.2
    test_fraction: Fraction = 0.2


class SpiralsData(SplitOptions):
    """Interleaved spiral arms (2-D, one class per arm)."""

    name: Literal["spirals"]
    num_samples: Samples = 1000
    num_classes: Annotated[int, Field(ge=2, le=1000)] = 3
    noise: Noise = 0.2
    test_fraction: Fraction = 0.2


class PolynomialData(Strict):
    """1-D regression y = sin(2 pi x) + noise on few points with features x, x^2, ..., x^degree (Bishop 2006)."""

    name: Literal["polynomial"]
    train_size: Samples = 15
    val_size: Samples = 100
    test_size: Samples = 500
    degree: Annotated[int, Field(gt=0, le=1000)] = 9
    noise: Noise = 0.2
    seed: Seed = 0


AUTO_MAX_CLASSES = 50
"""``task = "auto"`` calls integer labels classes only up to this many distinct values."""


class FileData(SplitOptions):
    """Your own data from a file (``npz`` or ``csv``).

    ``task``: ``"classification"``, ``"regression"``, or ``"auto"`` (the default), which picks
    classification when the target is one integer per example with at most 50 distinct values, each seen at
    least twice (iris, wine, digits), or text (``'setosa'``); anything else is regression (the 214 distinct
    integer targets of scikit-learn's diabetes set, a target with a fraction, several targets per example).
    50 is above the class count of common tabular sets and well below the distinct values of an integer
    measurement; a value seen once cannot be both learned and evaluated, so it is not a class. The choice
    and its reason are reported in the run's notes; set ``task`` to override it. Classification labels are
    numbered 0..K-1 in sorted order and their original values (numbers or text) kept as the class names.
    """

    path: FilePath
    """The file. A relative path in a config file is relative to that file's folder (one given with ``--set``
    to the working directory); ``regopt run`` stores it absolute in the run directory's config.toml."""
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    """SHA-256 of the file (hex). Left out, ``regopt run`` fills it in, so the run directory's config.toml
    records which file was used; a file whose hash differs from a recorded one is refused, not used."""
    task: Literal["auto", "classification", "regression"] = "auto"
    """'classification', 'regression', or 'auto': classification for text labels, or for one integer label
    per example with at most 50 distinct values each seen at least twice; else regression."""
    standardize: bool | None = None
    """Shift and scale each feature to mean 0, std 1 with the training split's statistics (val and test use
    the same ones; a constant feature is only centred). Left out: on for tabular data (x of shape
    ``(n, features)``), off for images and sequences (x with more axes: scale those yourself, or set true for
    statistics per entry). The statistics are saved in the run directory's preprocessing.json."""
    test_fraction: Fraction = 0.2


class NpzData(FileData):
    """User data from an ``.npz`` file holding arrays ``x`` (examples first) and ``y``."""

    name: Literal["npz"]


class CsvData(FileData):
    """User data from a ``.csv`` file with a header row; ``label_column`` is the target, the rest features."""

    name: Literal["csv"]
    label_column: str = "label"


DataConfig = Annotated[
    Mnist1dData | DigitsData | MoonsData | SpiralsData | PolynomialData | NpzData | CsvData,
    Field(discriminator="name"),
]
