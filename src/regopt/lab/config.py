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

from pydantic import AfterValidator, Field, ValidationError

from regopt.lab.schema.base import KEY_ERROR, ConfigError, Seed, Strict
from regopt.lab.schema.curriculum import CurriculumConfig
from regopt.lab.schema.data import *  # noqa: F403 - the config API is flat
from regopt.lab.schema.data import CsvData, DataConfig, Mnist1dData, NpzData
from regopt.lab.schema.diagnostics import *  # noqa: F403
from regopt.lab.schema.diagnostics import DiagnosticsConfig
from regopt.lab.schema.distributed import DistributedConfig
from regopt.lab.schema.logging_config import LoggingConfig
from regopt.lab.schema.model import *  # noqa: F403
from regopt.lab.schema.model import MlpConfig, ModelConfig
from regopt.lab.schema.multitask import MultitaskConfig
from regopt.lab.schema.pretraining import PretrainingConfig
from regopt.lab.schema.regularize import *  # noqa: F403
from regopt.lab.schema.regularize import RegularizeConfig
from regopt.lab.schema.training import *  # noqa: F403
from regopt.lab.schema.training import (
    AveragingConfig,
    ConstantSchedule,
    InitConfig,
    OptimizerConfig,
    ScheduleConfig,
    TrainConfig,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def run_name(value: str) -> str:
    """A run name is one path component: it names the directory ``OUT/NAME/`` and nothing outside ``OUT``."""
    if value in (".", ".."):
        raise ValueError(f"{value!r} is not a run name: a run directory must lie inside --out")
    return value


class RunConfig(Strict):
    name: Annotated[str, Field(pattern=r"^[\w.-]+$", max_length=100), AfterValidator(run_name)] = "run"
    seed: Seed = 0
    device: Literal["auto", "cpu", "cuda", "mps"] = "cpu"
    data: DataConfig = Field(default_factory=lambda: Mnist1dData(name="mnist1d"))
    model: ModelConfig = Field(default_factory=lambda: MlpConfig(name="mlp"))
    optimizer: OptimizerConfig = Field(default_factory=lambda: OptimizerConfig())
    schedule: ScheduleConfig = Field(default_factory=lambda: ConstantSchedule(name="constant"))
    train: TrainConfig = Field(default_factory=TrainConfig)
    averaging: AveragingConfig | None = None
    init: InitConfig | None = None
    regularize: RegularizeConfig = Field(default_factory=RegularizeConfig)
    diagnostics: DiagnosticsConfig = Field(default_factory=DiagnosticsConfig)
    multitask: MultitaskConfig | None = None
    curriculum: CurriculumConfig | None = None
    pretraining: PretrainingConfig | None = None
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    distributed: DistributedConfig = Field(default_factory=DistributedConfig)


# ------------------------------------------------------------------------------------------------ loading
_TAGGED = {"data", "model", "schedule"}


def _format_error(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    loc = [str(p) for p in first["loc"]]
    # Drop the union tag pydantic inserts after a discriminated section ("model.mlp.widths" -> "model.widths").
    if len(loc) >= 2 and loc[0] in _TAGGED:
        loc = [loc[0], *loc[2:]] if first["type"] != "union_tag_invalid" else loc[:1]
    if first["type"] == KEY_ERROR:  # a validator's verdict on one of the section's extra keys
        loc.append(first["ctx"]["key"])
    path = ".".join(loc) or "(top level)"
    msg = first["msg"]
    if first["type"] == "union_tag_invalid":
        msg = f"unknown name {first['input'].get('name')!r}; expected one of {first['ctx']['expected_tags']}"
    elif first["type"] == "union_tag_not_found":
        msg = "missing 'name'" if isinstance(first["input"], dict) else "expected a table with a 'name'"
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
    """Read a TOML file, raising :class:`ConfigError` for a missing, unreadable, non-UTF-8 or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"{path}: cannot read: {err.strerror or err}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        where = f"byte {err.start} (line {line}) is 0x{data[err.start]:02x}"
        raise ConfigError(f"{path}: not UTF-8 text, as TOML must be: {where}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: invalid TOML: {err}") from None


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, as 64 hex digits."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def record_data_identity(config: RunConfig) -> RunConfig:
    """``config`` with its data file (``npz``/``csv``) named by absolute path and its ``sha256`` filled in.

    A relative ``data.path`` is taken relative to the working directory. A recorded ``sha256`` is kept (the
    loader compares it with the file's); a missing file is left for the loader to report. Other datasets
    pass unchanged.
    """
    data = config.data
    if not isinstance(data, (NpzData, CsvData)):
        return config
    path = data.path.resolve()
    sha256 = data.sha256 if data.sha256 is not None or not path.is_file() else file_sha256(path)
    if (path, sha256) == (data.path, data.sha256):
        return config
    return config.model_copy(update={"data": data.model_copy(update={"path": path, "sha256": sha256})})


def read_raw_config(path: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """The config file's raw mapping with ``overrides`` applied and ``data.path`` made absolute.

    A relative ``data.path`` in the file is taken relative to the file's folder; one given with ``--set`` is
    relative to the working directory. A ``--set data.path=...`` without ``--set data.sha256=...`` drops
    the hash recorded for the old file. (For commands that validate later, such as ``regopt tune``.)
    """
    raw = read_toml(path)
    data = raw.get("data")
    if isinstance(data, dict) and isinstance(data.get("path"), str):
        data["path"] = str((Path(path).parent / data["path"]).resolve())
    overrides = overrides or []
    raw = apply_overrides(raw, overrides)
    keys = {item.partition("=")[0].strip() for item in overrides}
    data = raw.get("data")
    if isinstance(data, dict) and isinstance(data.get("path"), str):
        data["path"] = str(Path(data["path"]).resolve())
        if "data.path" in keys and "data.sha256" not in keys:
            data.pop("sha256", None)
    return raw


def load_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Read, override and validate a run config.

    A relative ``data.path`` in the file is taken relative to the file's folder (so a config and its data travel
    together); one given with ``--set`` is relative to the working directory, as any command-line path is.
    The result names the data file by absolute path and carries its ``sha256`` (:func:`record_data_identity`),
    so a config written into a run directory reruns from anywhere and a changed file is noticed. A
    ``--set data.path=...`` without ``--set data.sha256=...`` drops the hash recorded for the old file.
    """
    return record_data_identity(validate(read_raw_config(path, overrides), str(path)))


def to_toml_dict(config: RunConfig) -> dict[str, Any]:
    """The resolved config as plain TOML-serializable data (paths as strings, None omitted)."""
    return config.model_dump(mode="json", exclude_none=True)
