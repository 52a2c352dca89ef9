"""Gallery entry ``optimizers``: eight run directories on one budget, the figure, the table, and learning."""

from __future__ import annotations

import json

import pytest

from regopt.lab.config import load_config, to_toml_dict
from regopt.lab.gallery.base import gallery_config
from regopt.lab.gallery.optimizers import CHANCE_ERROR, OPTIMIZERS, optimizers
from regopt.lab.gallery.registry import GALLERY
from tests.lab.gallery_checks import PNG

EPOCHS = 4  # 128 steps per optimizer instead of 640


@pytest.fixture(scope="module")
def entry(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return out, optimizers(out, False, epochs=EPOCHS)


def test_registered_after_overfit():
    assert list(GALLERY)[:2] == ["overfit", "optimizers"]
    assert GALLERY["optimizers"] is optimizers


def test_the_eight_optimizers_of_the_brief():
    sections = {name: section for name, (_, section) in OPTIMIZERS.items()}
    assert len(sections) == 8
    assert sections["nesterov"]["nesterov"] and sections["nesterov"]["name"] == "sgd"
    assert sections["rmsprop_nesterov"]["nesterov"] and sections["rmsprop_nesterov"]["name"] == "rmsprop"
    assert {s["name"] for s in sections.values()} == {"sgd", "adagrad", "rmsprop", "adam", "delta_bar_delta"}


def test_every_run_is_a_run_directory_on_the_same_budget(entry):
    out, _ = entry
    base = to_toml_dict(gallery_config("optimizers"))
    for name, (_, section) in OPTIMIZERS.items():
        path = out / "optimizers" / name
        for file in ("config.toml", "metrics.csv", "summary.json", "checkpoint.pt", "curves.png"):
            assert (path / file).is_file(), f"{name}: no {file}"
        saved = to_toml_dict(load_config(path / "config.toml"))  # reusable with `regopt run`
        assert saved["name"] == name
        assert saved["optimizer"] == {"lr": section["lr"], **section}
        for key in ("seed", "data", "model", "schedule"):
            assert saved[key] == base[key], f"{name}: {key} differs from the base config"
        assert saved["train"] == {**base["train"], "epochs": EPOCHS}
        assert json.loads((path / "summary.json").read_text())["steps"] == EPOCHS * 32  # 3200 examples / 100


def test_figure_and_table(entry):
    out, result = entry
    figure, table = out / "optimizers" / "validation_error.png", out / "optimizers" / "table.md"
    assert result.files == [figure, table]
    assert figure.read_bytes()[:8] == PNG
    lines = table.read_text().splitlines()
    assert lines[0].startswith("| optimizer | settings | best val error | final val error")
    body = lines[2:]
    assert [line.split(" | ")[0].removeprefix("| ") for line in body] == [label for label, _ in OPTIMIZERS.values()]
    for line, (_, section) in zip(body, OPTIMIZERS.values(), strict=True):
        assert f"lr={section['lr']}" in line


def test_every_optimizer_learns_and_headline_is_the_best(entry):
    out, result = entry
    finals = {}
    for name, (label, _) in OPTIMIZERS.items():
        summary = json.loads((out / "optimizers" / name / "summary.json").read_text())
        assert summary["final_val_error"] < CHANCE_ERROR - 0.1, f"{name} did not learn in {summary['steps']} steps"
        finals[label] = summary["final_val_error"]
    best = min(finals, key=finals.__getitem__)
    assert result.numbers["best optimizer (final val error)"] == best
    assert result.numbers["its final val error"] == finals[best]
    assert result.numbers["steps per optimizer"] == EPOCHS * 32
