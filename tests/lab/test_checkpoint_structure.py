"""A damaged checkpoint (fields of the wrong type, a missing key, another model's weights) is refused on
``regopt run --resume`` in one line naming the field, before any of it is used, and nothing is written."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from regopt.cli import main
from regopt.lab.config import validate
from regopt.lab.experiment import build_experiment
from regopt.lab.runs import run
from tests.conftest import small_raw

Damage = Callable[[dict[str, Any]], None]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real two-epoch run directory (its checkpoint written by the Trainer)."""
    out = tmp_path_factory.mktemp("runs")
    run(validate(small_raw(train={"epochs": 2, "batch_size": 32})), out=out)
    return out / "tiny"


def _resume_damaged(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: Damage
) -> tuple[int, list[str], Path]:
    """Copy the run, damage its checkpoint with ``damage``, resume it through the CLI: exit code, stderr lines."""
    path = tmp_path / "tiny"
    shutil.copytree(finished_run, path)
    state = torch.load(path / "checkpoint.pt", weights_only=True)
    damage(state)
    torch.save(state, path / "checkpoint.pt")
    before = {p.name: p.read_bytes() for p in path.iterdir()}
    capsys.readouterr()
    code = main(["run", str(path / "config.toml"), "--out", str(tmp_path), "--resume", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before, "a refused resume must write nothing"
    return code, err, path


def _set(*keys: str, value: Callable[[Any], Any]) -> Damage:
    def damage(state: dict[str, Any]) -> None:
        inner = state
        for key in keys[:-1]:
            inner = inner[key]
        inner[keys[-1]] = value(inner[keys[-1]])

    return damage


def _delete(key: str) -> Damage:
    def damage(state: dict[str, Any]) -> None:
        del state[key]

    return damage


def _wider_momentum(state: dict[int, Any]) -> dict[int, Any]:
    return {**state, 0: {**state[0], "v": torch.zeros(32, 2)}}


def _other_width(state: dict[str, Any]) -> None:
    other = build_experiment(validate(small_raw(model={"name": "mlp", "widths": [32]})))
    state["model"] = other.model.state_dict()


CASES: list[tuple[str, Damage, list[str]]] = [
    ("epoch as a string", _set("position", "epoch", value=str), ["position.epoch is a str, expected an int"]),
    ("negative step", _set("position", "step", value=lambda s: -1), ["position.step is -1"]),
    ("torch RNG as floats", _set("rng", "torch", value=lambda t: t.float()), ["rng.torch is a torch.float32"]),
    ("shuffle RNG cut short", _set("rng", "epoch_shuffle", value=lambda t: t[:100]), ["rng.epoch_shuffle", "(100,)"]),
    ("numpy keys as a list", _set("rng", "numpy", "keys", value=lambda t: t.tolist()), ["rng.numpy.keys is a list"]),
    ("python RNG garbage", _set("rng", "python", value=lambda s: "(3, (1, 2), None)"), ["rng.python"]),
    ("history as a tensor", _set("history", value=lambda h: torch.zeros(2, 8)), ["history is a Tensor"]),
    ("history row of strings", _set("history", value=lambda h: [{**h[0], "val_loss": "low"}]), ["val_loss is a str"]),
    ("elapsed as a string", _set("elapsed", value=str), ["elapsed is a str, expected a number"]),
    ("missing optimizer", _delete("optimizer"), ["optimizer is missing"]),
    ("missing rng", _delete("rng"), ["rng is missing"]),
    ("lr as a string", _set("optimizer", "param_groups", value=lambda g: [{**g[0], "lr": "0.1"}]), [".lr is a str"]),
    (
        "momentum of another shape",
        _set("optimizer", "state", value=_wider_momentum),
        ["optimizer.state[0].v has shape"],
    ),
    ("another model's weights", _other_width, ["has shape (32, 2), this config's model has (16, 2)"]),
]


@pytest.mark.parametrize(("damage", "expected"), [(d, e) for _, d, e in CASES], ids=[c[0] for c in CASES])
def test_damaged_checkpoint_is_refused_in_one_line(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: Damage, expected: list[str]
) -> None:
    code, err, path = _resume_damaged(finished_run, tmp_path, capsys, damage)
    assert code == 2
    assert len(err) == 1, err
    line = err[0]
    assert line.startswith(f"regopt: error: {path / 'checkpoint.pt'}: "), line
    assert "Traceback" not in line
    for part in expected:
        assert part in line, line


def test_training_state_not_a_dict_is_refused(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A final-model checkpoint keeps the state training continues from under training_state: a tensor there
    must not silently send resume to the top level (the final model's state)."""

    def damage(state: dict[str, Any]) -> None:
        state["training_state"] = torch.zeros(3)

    code, err, _ = _resume_damaged(finished_run, tmp_path, capsys, damage)
    assert code == 2 and len(err) == 1
    assert "training_state is a Tensor, expected a dict" in err[0]


def test_damage_inside_training_state_is_named_with_its_prefix(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def damage(state: dict[str, Any]) -> None:
        inner = {k: v for k, v in state.items() if k != "format"}
        inner["position"] = {**inner["position"], "batch": 1.5}
        state["training_state"] = inner

    code, err, _ = _resume_damaged(finished_run, tmp_path, capsys, damage)
    assert code == 2 and len(err) == 1
    assert "training_state.position.batch is a float, expected an int" in err[0]


def test_an_intact_checkpoint_still_resumes(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "tiny"
    shutil.copytree(finished_run, path)
    code = main(
        ["run", str(path / "config.toml"), "--out", str(tmp_path), "--resume", "--quiet", "--set", "train.epochs=3"]
    )
    assert code == 0, capsys.readouterr().err
    assert len((path / "metrics.csv").read_text().strip().splitlines()) == 1 + 3


EARLY_STOPPED = {
    "train": {"epochs": 4, "batch_size": 32},
    "regularize": {"early_stopping": {"patience": 1, "monitor": "val_loss", "min_delta": 10.0}},
}


@pytest.fixture(scope="module")
def early_stopped_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run early stopping stopped at epoch 2: its monitors hold copies of the weights (best, and at the stop)."""
    out = tmp_path_factory.mktemp("runs")
    result = run(validate(small_raw(**EARLY_STOPPED)), out=out)
    assert result.summary["early_stopping"]["stopped_epoch"] == 2
    return out / "tiny"


def _monitor_with(state: dict[str, Any], key: str) -> dict[str, Any]:
    inner = state.get("training_state", state)
    return next(m for m in inner["hook_states"] if key in m)


def _other_width_best_weights(state: dict[str, Any]) -> None:
    other = build_experiment(validate(small_raw(model={"name": "mlp", "widths": [32]})))
    _monitor_with(state, "best_weights")["best_weights"] = other.model.state_dict()


def _wait_as_string(state: dict[str, Any]) -> None:
    _monitor_with(state, "wait")["wait"] = "1"


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (_other_width_best_weights, [".best_weights.", "has shape (32, 2), this config's model has (16, 2)"]),
        (_wait_as_string, ["hook_states[", "].wait is a str, expected a number"]),
    ],
    ids=["best weights of another width", "early stopping wait as a string"],
)
def test_damaged_monitor_state_is_refused_in_one_line(
    early_stopped_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: Damage, expected: list[str]
) -> None:
    code, err, path = _resume_damaged(early_stopped_run, tmp_path, capsys, damage)
    assert code == 2
    assert len(err) == 1, err
    assert err[0].startswith(f"regopt: error: {path / 'checkpoint.pt'}: "), err[0]
    for part in expected:
        assert part in err[0], err[0]


def _coordinate_layout_before_issue_19(state: dict[str, Any]) -> None:
    """Rewrite a coordinate-descent checkpoint's optimizer state into the layout it had before issue 19: one
    torch state dict per block under ``inner``, the position beside them."""
    optimizer = state["optimizer"]
    position = optimizer["param_groups"][0]["coordinate"]
    inner: list[dict[str, Any]] = []
    for group in optimizer["param_groups"]:
        group = {k: v for k, v in group.items() if k not in ("block", "coordinate")}
        offset = group["params"][0]
        inner.append(
            {
                "state": {i - offset: optimizer["state"][i] for i in group["params"] if i in optimizer["state"]},
                "param_groups": [{**group, "params": [i - offset for i in group["params"]]}],
            }
        )
    state["optimizer"] = {"inner": inner, **position}


def test_coordinate_descent_checkpoint_resumes_and_its_inner_state_is_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Block coordinate descent saves torch's optimizer layout (its blocks' groups in order, the position in the
    first group); a checkpoint in that layout or in the one before issue 19 (``inner``: one state per block)
    resumes, and a damaged group is named in either."""
    raw = small_raw(
        optimizer={"name": "coordinate", "inner": "adam", "lr": 0.01}, train={"epochs": 2, "batch_size": 32}
    )
    out = tmp_path / "runs"
    run(validate(raw), out=out)
    extended = validate({**raw, "train": {"epochs": 3, "batch_size": 32}})
    path = out / "tiny"
    state = torch.load(path / "checkpoint.pt", weights_only=True)
    assert [g["block"] for g in state["optimizer"]["param_groups"]] == [0, 1]
    expected = run(extended, out=_copy_run(path, tmp_path / "intact"), resume=True).history
    assert len(expected) == 3
    old = _copy_run(path, tmp_path / "old")
    _coordinate_layout_before_issue_19(state)
    torch.save(state, old / "tiny" / "checkpoint.pt")
    resumed = run(extended, out=old, resume=True).history
    assert [{k: v for k, v in e.items() if k != "seconds"} for e in resumed] == [
        {k: v for k, v in e.items() if k != "seconds"} for e in expected
    ]  # the same losses to the last bit

    def damage(state: dict[str, Any]) -> None:
        state["optimizer"]["param_groups"][1]["lr"] = "fast"

    code, err, _ = _resume_damaged(path, tmp_path / "damaged", capsys, damage)
    assert code == 2 and len(err) == 1
    assert "optimizer.param_groups[1].lr is a str, expected a number" in err[0]

    def damage_old(state: dict[str, Any]) -> None:
        _coordinate_layout_before_issue_19(state)
        state["optimizer"]["inner"][1]["param_groups"][0]["lr"] = "fast"

    code, err, _ = _resume_damaged(path, tmp_path / "damaged-old", capsys, damage_old)
    assert code == 2 and len(err) == 1
    assert "optimizer.inner[1].param_groups[0].lr is a str, expected a number" in err[0]


def _copy_run(path: Path, out: Path) -> Path:
    shutil.copytree(path, out / path.name)
    return out


def test_a_checkpoint_written_before_the_hook_states_rename_still_resumes(
    early_stopped_run: Path, tmp_path: Path
) -> None:
    """Checkpoints from before issue 16 name the hooks' states ``monitors``; they resume as they did."""
    path = tmp_path / "tiny"
    shutil.copytree(early_stopped_run, path)
    state = torch.load(path / "checkpoint.pt", weights_only=True)
    for inner in (state, state.get("training_state", {})):
        if "hook_states" in inner:
            inner["monitors"] = inner.pop("hook_states")
    torch.save(state, path / "checkpoint.pt")
    longer = validate(
        {
            **small_raw(**EARLY_STOPPED),
            "regularize": {"early_stopping": {"patience": 3, "monitor": "val_loss", "min_delta": 10.0}},
        }
    )
    result = run(longer, out=tmp_path, resume=True)
    assert any("continuing with patience 3" in note for note in result.summary["notes"])
    written = torch.load(path / "checkpoint.pt", weights_only=True)
    written = written.get("training_state", written)
    assert "hook_states" in written and "monitors" not in written
