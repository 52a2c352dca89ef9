"""Damaged configs, generated from a seed: every one ends in one line and exit 2, and nothing is written.

A property-style test over classes of bad input (issue 15): wrong types, non-finite and huge numbers, path-like
run names, unknown keys and bytes that are not UTF-8, each applied to a config that would otherwise train one
epoch of a tiny model, and run through ``regopt run`` as a user would.
"""

from __future__ import annotations

import copy
import random
import re
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from regopt.cli import main

BASE: dict[str, Any] = {
    "name": "fuzz",
    "seed": 0,
    "data": {"name": "moons", "num_samples": 120, "noise": 0.1},
    "model": {"name": "mlp", "widths": [4]},
    "optimizer": {"name": "sgd", "lr": 0.1},
    "train": {"epochs": 1, "batch_size": 32},
}
BOOLS = ["train.shuffle", "train.evaluate_test", "diagnostics.nonfinite_guard", "model.batch_norm"]
INTS = ["train.epochs", "train.batch_size", "data.num_samples", "seed", "data.seed", "train.checkpoint_every"]
FLOATS = ["optimizer.lr", "data.noise", "regularize.label_smoothing", "train.clip_grad_norm", "regularize.l2.alpha"]
HUGE = {
    "optimizer.lr": [1e300, 1e7],
    "data.noise": [1e300, 1e7],
    "data.num_samples": [10**12, 10**8],
    "model.widths": [[10**9], [70_000], [40_000, 40_000]],
    "data.seed": [2**64, 10**40],
    "seed": [2**64, -(2**63) - 1, 10**30],
}
NAMES = ["..", ".", "a/b", "../up", "/abs", "a\\b", "", "x" * 200, "tab\there", "new\nline", "nul\x00"]
SECTIONS = ["", "train", "data", "model", "regularize", "diagnostics", "optimizer"]
BAD_BYTES = [b"\xff", b"\xfe\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xe9", b"\x80\x80", b"\xf8\x88\x80\x80\x80"]


def _set(raw: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = raw
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def _wrong_type(rng: random.Random, kind: str) -> Any:
    choices: dict[str, list[Any]] = {
        "bool": ["yes", "true", 1, 0, 1.0, [True], {"v": True}],
        "int": ["5", 5.5, 1e2, True, [3], {"v": 3}, "many"],
        "float": ["0.1", True, False, [0.1], {"v": 0.1}, "inf"],
    }
    return rng.choice(choices[kind])


def damage(rng: random.Random) -> tuple[str, bytes]:
    """One damaged config file's bytes and a label saying what was damaged."""
    raw = copy.deepcopy(BASE)
    kind = rng.choice(["type", "non-finite", "huge", "name", "unknown", "bytes", "eta_min", "schedule-type"])
    if kind == "type":
        table = rng.choice([("bool", BOOLS), ("int", INTS), ("float", FLOATS)])
        key = rng.choice(table[1])
        value = _wrong_type(rng, table[0])
        label = f"{key} = {value!r}"
    elif kind == "non-finite":
        key, value = rng.choice(FLOATS), rng.choice([float("inf"), float("-inf"), float("nan")])
        label = f"{key} = {value!r}"
    elif kind == "huge":
        key = rng.choice(sorted(HUGE))
        value = rng.choice(HUGE[key])
        label = f"{key} = {value!r}"
    elif kind == "name":
        key, value = "name", rng.choice(NAMES)
        label = f"name = {value!r}"
    elif kind == "unknown":
        section = rng.choice(SECTIONS)
        key = f"{section}.zz_{rng.randrange(1000)}".lstrip(".")
        value = rng.choice([1, "x", 0.5, True])
        label = f"unknown {key}"
    elif kind in ("eta_min", "schedule-type"):
        value = rng.choice([float("inf"), float("nan"), 1e300, -1.0]) if kind == "eta_min" else "0.0"
        key = "schedule"
        value = {"name": "cosine", "interval": "step", "eta_min": value}
        label = f"schedule.eta_min = {value['eta_min']!r}"
    else:  # bytes that are not UTF-8, somewhere in an otherwise valid file
        text = tomli_w.dumps(raw).encode()
        at = rng.randrange(len(text) + 1)
        bad = rng.choice(BAD_BYTES)
        return f"bytes {bad!r} at {at}", text[:at] + bad + text[at:]
    _set(raw, key, value)
    return label, tomli_w.dumps(raw).encode()


CASES = [damage(random.Random(seed)) for seed in range(150)]
TRACEBACK = re.compile(r"Traceback|^\s+File \"", re.MULTILINE)


def test_the_generator_covers_every_class() -> None:
    labels = " ".join(label for label, _ in CASES)
    for needle in ("= 'yes'", "inf", "nan", "1e+300", "name = '..'", "unknown", "bytes", "eta_min", "widths"):
        assert needle in labels, needle


@pytest.mark.parametrize(("label", "content"), CASES, ids=[label[:40] for label, _ in CASES])
def test_a_damaged_config_ends_in_one_line_and_exit_2_writing_nothing(
    label: str, content: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.toml"
    config.write_bytes(content)
    out = tmp_path / "runs"
    code = main(["run", str(config), "--out", str(out), "--quiet"])
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, (label, captured.err[-500:])
    assert 1 <= len(lines) <= 3 and lines[0].startswith("regopt: error:"), (label, lines)
    assert not TRACEBACK.search(captured.err + captured.out), label
    assert not out.exists() or not any(out.iterdir()), (label, sorted(p.name for p in out.rglob("*")))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml"] + (["runs"] if out.exists() else [])
