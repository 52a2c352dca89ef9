"""Bad input ends in one line naming what is wrong and where, never a traceback (issue 15, item 2)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from torch import nn

from regopt.cli import main
from regopt.lab.config import ConfigError, read_toml, validate
from regopt.lab.registry import build_optimizer
from tests.conftest import small_raw


def test_a_config_that_is_not_utf8_is_refused_naming_the_file_and_byte(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_bytes(b'name = "caf\xe9"\n')
    with pytest.raises(ConfigError) as info:
        read_toml(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "UTF-8" in message and "byte 11 (line 1) is 0xe9" in message
    assert "\n" not in message


def test_cli_refuses_a_non_utf8_config_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.toml"
    path.write_bytes(b"\xff\xfe[train]\n")
    code = main(["run", str(path), "--out", str(tmp_path / "runs"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("regopt: error: ") and "byte 0" in err[0]
    assert not (tmp_path / "runs").exists()


def _refused(raw: dict[str, Any], where: str) -> str:
    with pytest.raises(ConfigError) as info:
        validate(raw)
    message = str(info.value)
    assert message.startswith(f"config: {where}") and "\n" not in message, message
    return message


def _section(section: str, **values: Any) -> dict[str, Any]:
    raw = small_raw()
    return {**raw, section: {**raw.get(section, {}), **values}}


@pytest.mark.parametrize("value", ["yes", "true", 1, 0, 1.0])
@pytest.mark.parametrize(
    ("section", "key"),
    [("train", "shuffle"), ("train", "evaluate_test"), ("diagnostics", "nonfinite_guard"), ("model", "batch_norm")],
)
def test_a_boolean_must_be_true_or_false(section: str, key: str, value: Any) -> None:
    _refused(_section(section, **{key: value}), f"{section}.{key}")


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("train", "epochs", "5"),
        ("train", "epochs", True),
        ("train", "batch_size", 32.0),
        ("optimizer", "lr", "0.1"),
        ("optimizer", "lr", True),
        ("data", "noise", "0.1"),
    ],
)
def test_a_number_must_be_a_number(section: str, key: str, value: Any) -> None:
    _refused(_section(section, **{key: value}), f"{section}.{key}")


def test_types_the_toml_spelling_gives_still_validate(tmp_path: Path) -> None:
    data = tmp_path / "d.csv"
    data.write_text("a,label\n1,0\n2,1\n")
    raw = small_raw(data={"name": "csv", "path": str(data), "standardize": True})
    raw["regularize"] = {"augment_signal": {"scale": [0.9, 1.1]}, "l1": {"alpha": 0, "proximal": True}}
    raw["optimizer"] = {"name": "adam", "lr": 1, "betas": [0.9, 0.99]}
    config = validate(raw)
    assert config.data.path == data and config.regularize.augment_signal.scale == (0.9, 1.1)
    assert config.optimizer.lr == 1.0 and config.regularize.l1.alpha == 0.0


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
@pytest.mark.parametrize(
    ("where", "raw"),
    [
        ("optimizer.lr", lambda v: _section("optimizer", lr=v)),
        ("schedule.eta_min", lambda v: _section("schedule", name="cosine", eta_min=v)),
        ("data.noise", lambda v: _section("data", noise=v)),
        ("regularize.l2.alpha", lambda v: _section("regularize", l2={"alpha": v})),
        ("regularize.max_norm.c", lambda v: _section("regularize", max_norm={"c": v})),
        ("regularize.augment_signal.scale.1", lambda v: _section("regularize", augment_signal={"scale": [1.0, v]})),
        ("train.clip_grad_norm", lambda v: _section("train", clip_grad_norm=v)),
        ("init.bias", lambda v: _section("init", bias=v)),
        ("diagnostics.plateau.loss_tol", lambda v: _section("diagnostics", plateau={"loss_tol": v})),
    ],
)
def test_every_float_is_finite(where: str, raw: Any, value: float) -> None:
    message = _refused(raw(value), where)
    assert "finite" in message or "greater" in message or "less" in message


@pytest.mark.parametrize(
    ("where", "raw"),
    [
        ("optimizer.lr", _section("optimizer", lr=1e300)),
        ("schedule.eta_min", _section("schedule", name="cosine", eta_min=1e300)),
        ("data.noise", _section("data", noise=1e300)),
        ("data.seed", _section("data", seed=2**64)),
        ("data.seed", _section("data", seed=-(2**63) - 1)),
    ],
)
def test_numbers_beyond_what_can_run_are_refused(where: str, raw: dict[str, Any]) -> None:
    _refused(raw, where)


def test_the_seed_range_is_what_torch_accepts() -> None:
    for seed in (2**64 - 1, -(2**63), 0):
        assert validate(_section("data", seed=seed)).data.seed == seed


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"name": "sgd", "weight_decay": float("inf")}, "weight_decay"),
        ({"name": "sgd", "momentum": float("nan")}, "momentum"),
        ({"name": "adam", "betas": [0.9, float("nan")]}, "betas"),
        ({"name": "adam", "eps": float("inf")}, "eps"),
        ({"name": "coordinate", "inner": "sgd", "momentum": float("inf")}, "momentum"),
    ],
)
def test_optimizer_options_are_finite(options: dict[str, Any], key: str) -> None:
    config = validate(small_raw(optimizer={"lr": 0.1, **options}))
    with pytest.raises(ConfigError, match=rf"^optimizer\.{key}: .*not a finite number"):
        build_optimizer(config.optimizer, nn.Linear(2, 2))


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"name": "sgd", "weight_decay": 1e300}, "weight_decay"),
        ({"name": "adam", "eps": 1e7}, "eps"),
        ({"name": "adam", "betas": [0.9, -1e300]}, "betas"),
        ({"name": "delta_bar_delta", "kappa": 1e300}, "kappa"),
        ({"name": "coordinate", "inner": "sgd", "weight_decay": 1e300}, "weight_decay"),
    ],
)
def test_optimizer_options_beyond_any_sane_size_are_refused(options: dict[str, Any], key: str) -> None:
    config = validate(small_raw(optimizer={"lr": 0.1, **options}))
    with pytest.raises(ConfigError, match=rf"^optimizer\.{key}: .*beyond 1e\+06 in size"):
        build_optimizer(config.optimizer, nn.Linear(2, 2))


def test_optimizer_options_at_the_bound_and_booleans_still_build() -> None:
    raw = small_raw(optimizer={"name": "sgd", "lr": 0.1, "weight_decay": 1e6, "momentum": 0.9, "nesterov": True})
    assert build_optimizer(validate(raw).optimizer, nn.Linear(2, 2)).defaults["weight_decay"] == 1e6


@pytest.mark.parametrize(
    ("where", "raw"),
    [
        ("model.widths.0", _section("model", widths=[10**9])),
        ("model.widths", _section("model", widths=[60_000, 60_000, 60_000])),
        ("model.channels", small_raw(model={"name": "cnn1d", "channels": 10**9})),
        ("model.hidden_size", small_raw(model={"name": "gru", "hidden_size": 10**9})),
        ("data.num_samples", _section("data", num_samples=10**12)),
        ("data.degree", small_raw(data={"name": "polynomial", "degree": 10**12})),
        ("data.test_size", small_raw(data={"name": "polynomial", "test_size": 10**12})),
        ("data.train_size", small_raw(data={"name": "digits", "train_size": 10**12})),
    ],
)
def test_sizes_that_cannot_fit_are_refused_naming_the_limit(where: str, raw: dict[str, Any]) -> None:
    message = _refused(raw, where)
    assert "less than or equal" in message or "at most" in message


def test_sizes_at_the_limit_still_validate() -> None:
    validate(_section("model", widths=[65_536]))
    validate(_section("data", num_samples=10_000_000))


@pytest.mark.parametrize(
    ("where", "raw"),
    [
        ("model.channels", small_raw(model={"name": "cnn1d", "channels": 60_000})),
        ("model.channels", small_raw(model={"name": "cnn2d", "channels": [60_000, 60_000]})),
        ("model.hidden_size", small_raw(model={"name": "gru", "hidden_size": 60_000})),
    ],
)
def test_layers_whose_weights_cannot_fit_say_how_much_memory_they_need(where: str, raw: dict[str, Any]) -> None:
    assert "GiB of float32" in _refused(raw, where)
