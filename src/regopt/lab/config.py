"""Run configuration: a TOML file validated by pydantic into typed objects.

Every section is strict (an unknown key is an error) and every error is reported as one line naming the key
path, e.g. ``config.toml: train.epochs: Input should be greater than 0``. Sections whose contents depend on a
``name`` (data, model, schedule) are discriminated unions, so ``noise`` on ``digits`` is rejected, not ignored.

Example::

    name = "overfit"
    seed = 0

    [data]
    name = "digits"
    train_size = 200

    [model]
    name = "mlp"
    widths = [256, 256]

    [optimizer]
    name = "sgd"
    lr = 0.1

    [train]
    epochs = 100
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class ConfigError(ValueError):
    """A configuration that cannot be used; the message is one line naming the key path and the problem."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Fraction = Annotated[float, Field(gt=0.0, lt=1.0)]


# --------------------------------------------------------------------------------------------------- data
class _SplitOptions(_Strict):
    train_size: PositiveInt | None = None
    """Keep only this many training examples (after the validation split); small data shows overfitting."""
    val_fraction: Fraction = 0.2
    """Fraction of the training pool carved off as the validation split."""
    seed: int = 0
    """Seed of the split and subsampling, separate from the training seed so runs compare on the same data."""


class Mnist1dData(_SplitOptions):
    """MNIST-1D (Greydanus 2020), generated locally: 4000 train / 1000 test, 40 features, 10 classes.

    The validation split is carved from the 4000 (3200 / 800 at the default ``val_fraction``)."""

    name: Literal["mnist1d"]
    num_samples: PositiveInt = 5000
    as_sequence: bool = False
    """Shape each example (40, 1) for recurrent models instead of (40,)."""


class DigitsData(_SplitOptions):
    """scikit-learn's bundled 8x8 handwritten digits (1797 images, 10 classes)."""

    name: Literal["digits"]
    image: bool = False
    """Examples as 1x8x8 images (for CNNs and image augmentation) instead of 64-vectors."""
    test_fraction: Fraction = 0.2


class MoonsData(_SplitOptions):
    """Two interleaving half circles (2-D, 2 classes)."""

    name: Literal["moons"]
    num_samples: PositiveInt = 1000
    noise: float = Field(0.2, ge=0.0)
    test_fraction: Fraction = 0.2


class SpiralsData(_SplitOptions):
    """Interleaved spiral arms (2-D, one class per arm)."""

    name: Literal["spirals"]
    num_samples: PositiveInt = 1000
    num_classes: Annotated[int, Field(ge=2)] = 3
    noise: float = Field(0.2, ge=0.0)
    test_fraction: Fraction = 0.2


class PolynomialData(_Strict):
    """1-D regression y = sin(2 pi x) + noise on few points with features x, x^2, ..., x^degree (Bishop 2006)."""

    name: Literal["polynomial"]
    train_size: PositiveInt = 15
    val_size: PositiveInt = 100
    test_size: PositiveInt = 500
    degree: PositiveInt = 9
    noise: float = Field(0.2, ge=0.0)
    seed: int = 0


class _FileData(_SplitOptions):
    path: Path
    task: Literal["auto", "classification", "regression"] = "auto"
    """'auto': classification when every label is an integer, else regression."""
    test_fraction: Fraction = 0.2


class NpzData(_FileData):
    """User data from an ``.npz`` file holding arrays ``x`` (examples first) and ``y``."""

    name: Literal["npz"]


class CsvData(_FileData):
    """User data from a ``.csv`` file with a header row; ``label_column`` is the target, the rest features."""

    name: Literal["csv"]
    label_column: str = "label"


DataConfig = Annotated[
    Mnist1dData | DigitsData | MoonsData | SpiralsData | PolynomialData | NpzData | CsvData,
    Field(discriminator="name"),
]


# -------------------------------------------------------------------------------------------------- model
Activation = Literal["relu", "tanh", "sigmoid", "gelu", "elu", "leaky_relu", "identity"]
DropoutP = Annotated[float, Field(ge=0.0, lt=1.0)]


class LinearModelConfig(_Strict):
    """One affine layer: linear regression, or logistic (softmax) regression for classification."""

    name: Literal["linear", "logistic"]


class MlpConfig(_Strict):
    """Multilayer perceptron: [dropout] -> (Linear -> [BatchNorm] -> activation -> [dropout]) x len(widths)."""

    name: Literal["mlp"]
    widths: list[PositiveInt] = Field(default_factory=lambda: [100, 100])
    activation: Activation = "relu"
    dropout_input: DropoutP = 0.0
    dropout_hidden: DropoutP = 0.0
    batch_norm: bool = False


class Cnn1dConfig(_Strict):
    """MNIST-1D paper's ConvBase: 3 conv layers (kernels 5, 3, 3; stride 2; padding 1) and a linear head."""

    name: Literal["cnn1d"]
    channels: PositiveInt = 25
    activation: Activation = "relu"
    dropout_hidden: DropoutP = 0.0
    batch_norm: bool = False


class Cnn2dConfig(_Strict):
    """Small CNN for 8x8 digits: conv blocks with the given channels, then a linear head."""

    name: Literal["cnn2d"]
    channels: list[PositiveInt] = Field(default_factory=lambda: [16, 32])
    activation: Activation = "relu"
    dropout_hidden: DropoutP = 0.0
    batch_norm: bool = False


class GruConfig(_Strict):
    """GRU over the feature axis (a sequence of scalars), classifying from the last hidden state."""

    name: Literal["gru"]
    hidden_size: PositiveInt = 6
    num_layers: PositiveInt = 1
    bidirectional: bool = True


class CustomModelConfig(_Strict):
    """A user model: ``target = "package.module:function"`` called as ``function(input_shape, output_dim,
    **kwargs)`` and returning an ``nn.Module``."""

    name: Literal["custom"]
    target: Annotated[str, Field(pattern=r"^[\w.]+:\w+$")]
    kwargs: dict[str, Any] = Field(default_factory=dict)


ModelConfig = Annotated[
    LinearModelConfig | MlpConfig | Cnn1dConfig | Cnn2dConfig | GruConfig | CustomModelConfig,
    Field(discriminator="name"),
]


# ------------------------------------------------------------------------------------ optimizer, schedule
class OptimizerConfig(BaseModel):
    """``name`` picks an optimizer from the registry (``regopt list``); every other key is passed to its
    constructor and checked against its signature when the run is built."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: str = "sgd"
    lr: float = Field(0.01, gt=0.0)

    def kwargs(self) -> dict[str, Any]:
        """Constructor keyword arguments: everything but ``name``; TOML arrays become tuples (``betas``)."""
        extra = {k: tuple(v) if isinstance(v, list) else v for k, v in (self.model_extra or {}).items()}
        return {"lr": self.lr, **extra}


class _Schedule(_Strict):
    interval: Literal["epoch", "step"] = "epoch"
    """Whether the schedule advances once per epoch or once per optimizer step."""


class ConstantSchedule(_Schedule):
    name: Literal["constant"]


class StepSchedule(_Schedule):
    """Multiply the learning rate by ``gamma`` every ``step_size`` intervals (torch ``StepLR``)."""

    name: Literal["step"]
    step_size: PositiveInt = 30
    gamma: Fraction = 0.1


class ExponentialSchedule(_Schedule):
    """Multiply the learning rate by ``gamma`` every interval (torch ``ExponentialLR``)."""

    name: Literal["exponential"]
    gamma: Annotated[float, Field(gt=0.0, le=1.0)] = 0.95


class CosineSchedule(_Schedule):
    """Cosine annealing to ``eta_min`` over the whole run (torch ``CosineAnnealingLR``)."""

    name: Literal["cosine"]
    eta_min: Annotated[float, Field(ge=0.0)] = 0.0


class LinearSchedule(_Schedule):
    """Algorithm 8.1's decay: eps_k = (1 - k/tau) eps_0 + (k/tau) eps_tau for k <= tau, then eps_tau, with
    eps_tau = ``final_fraction`` * eps_0; ``tau`` defaults to the whole run."""

    name: Literal["linear"]
    tau: PositiveInt | None = None
    final_fraction: Annotated[float, Field(ge=0.0, le=1.0)] = 0.01


ScheduleConfig = Annotated[
    ConstantSchedule | StepSchedule | ExponentialSchedule | CosineSchedule | LinearSchedule,
    Field(discriminator="name"),
]


# --------------------------------------------------------------------------------------------------- train
class TrainConfig(_Strict):
    epochs: PositiveInt = 20
    batch_size: PositiveInt = 64
    clip_grad_norm: Annotated[float, Field(gt=0.0)] | None = None
    """Rescale the global gradient norm to at most this (torch.nn.utils.clip_grad_norm_)."""
    clip_grad_value: Annotated[float, Field(gt=0.0)] | None = None
    """Clamp every gradient entry to [-v, v] (torch.nn.utils.clip_grad_value_)."""
    evaluate_test: bool = True
    """Evaluate the test split once, at the end."""
    checkpoint_every: PositiveInt | None = None
    """Also checkpoint every this many optimizer steps (a checkpoint is always written each epoch)."""


class AveragingConfig(_Strict):
    """Polyak averaging of the weights (sec. 8.7.3): evaluation uses the averages; ``decay`` None is the
    arithmetic mean of all iterates since ``start_step``, a number in [0, 1) an exponential moving average."""

    decay: Annotated[float, Field(ge=0.0, lt=1.0)] | None = None
    start_step: Annotated[int, Field(ge=0)] = 0


class RunConfig(_Strict):
    name: Annotated[str, Field(pattern=r"^[\w.-]+$")] = "run"
    seed: int = 0
    device: Literal["auto", "cpu", "cuda", "mps"] = "cpu"
    data: DataConfig = Field(default_factory=lambda: Mnist1dData(name="mnist1d"))
    model: ModelConfig = Field(default_factory=lambda: MlpConfig(name="mlp"))
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = Field(default_factory=lambda: ConstantSchedule(name="constant"))
    train: TrainConfig = Field(default_factory=TrainConfig)
    averaging: AveragingConfig | None = None


# ------------------------------------------------------------------------------------------------ loading
_TAGGED = {"data", "model", "schedule"}


def _format_error(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    loc = [str(p) for p in first["loc"]]
    # Drop the union tag pydantic inserts after a discriminated section ("model.mlp.widths" -> "model.widths").
    if len(loc) >= 2 and loc[0] in _TAGGED:
        loc = [loc[0], *loc[2:]] if first["type"] != "union_tag_invalid" else loc[:1]
    path = ".".join(loc) or "(top level)"
    msg = first["msg"]
    if first["type"] == "union_tag_invalid":
        msg = f"unknown name {first['input'].get('name')!r}; expected one of {first['ctx']['expected_tags']}"
    elif first["type"] == "union_tag_not_found":
        msg = "missing 'name'"
    elif first["type"] == "extra_forbidden":
        msg = "unknown key"
    more = f" (and {len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    return f"{source}: {path}: {msg}{more}"


def parse_value(text: str) -> Any:
    """Parse a ``--set`` value as a TOML literal (``0.1``, ``true``, ``[64, 64]``), else keep it a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``raw`` with each ``dotted.key=value`` override applied."""
    import copy

    out = copy.deepcopy(raw)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. optimizer.lr=0.1")
        *parents, leaf = key.strip().split(".")
        node = out
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item!r}: {part!r} is not a section")
            node = child
        node[leaf] = parse_value(value.strip())
    return out


def validate(raw: dict[str, Any], source: str = "config") -> RunConfig:
    """Validate a raw mapping into a :class:`RunConfig`, raising :class:`ConfigError` with one line."""
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_error(err, source)) from None


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file, raising :class:`ConfigError` for a missing or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: invalid TOML: {err}") from None


def load_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Read, override and validate a run config.

    A relative ``data.path`` in the file is taken relative to the file's folder (so a config and its data travel
    together); one given with ``--set`` is relative to the working directory, as any command-line path is.
    """
    raw = read_toml(path)
    data = raw.get("data")
    if isinstance(data, dict) and isinstance(data.get("path"), str) and not Path(data["path"]).is_absolute():
        data["path"] = str(Path(path).parent / data["path"])
    raw = apply_overrides(raw, overrides or [])
    return validate(raw, str(path))


def to_toml_dict(config: RunConfig) -> dict[str, Any]:
    """The resolved config as plain TOML-serializable data (paths as strings, None omitted)."""
    return config.model_dump(mode="json", exclude_none=True)
