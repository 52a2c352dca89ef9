"""What a kill mid-write leaves behind never blocks a run: a directory holding only the temporary files of killed
atomic writes counts as empty, and stale temporaries are removed when a run starts or resumes (issue 15, item 4
and the checkpoints bullet). The state is the one a SIGKILL inside ``atomic_write`` leaves: the target file
absent or intact, and a ``.NAME.XXXXXXXX.tmp`` beside it."""

from __future__ import annotations

from pathlib import Path

import pytest

from regopt.cli import main
from regopt.lab import runs
from regopt.lab.atomic import temp_files
from regopt.lab.config import validate
from regopt.lab.runs import run
from tests.conftest import small_raw


@pytest.fixture(autouse=True)
def _no_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runs, "plot_curves", lambda *args, **kwargs: None)


def killed_in_first_write(out: Path) -> Path:
    """A run directory whose run was killed while writing config.toml: only the temp file is there."""
    path = out / "tiny"
    path.mkdir(parents=True)
    (path / ".config.toml.k3j2h1ab.tmp").write_text('name = "tin')
    return path


def config_file(tmp_path: Path) -> Path:
    file = tmp_path / "c.toml"
    file.write_text('name = "tiny"\n[data]\nname = "moons"\nnum_samples = 200\n[train]\nepochs = 1\n')
    return file


@pytest.mark.parametrize("flags", [[], ["--resume"], ["--force"]])
def test_a_directory_of_temp_files_counts_as_empty(tmp_path: Path, flags: list[str]) -> None:
    path = killed_in_first_write(tmp_path / "runs")
    assert main(["run", str(config_file(tmp_path)), "--out", str(tmp_path / "runs"), "--quiet", *flags]) == 0
    assert (path / "summary.json").is_file() and temp_files(path) == []


def test_stale_temp_files_are_removed_on_resume(tmp_path: Path) -> None:
    config = validate(small_raw(train={"epochs": 1, "batch_size": 64}))
    path = run(config, out=tmp_path).path
    stale = path / ".checkpoint.pt.x8f0a2zz.tmp"
    stale.write_bytes(b"half a checkpoint")
    longer = validate(small_raw(train={"epochs": 2, "batch_size": 64}))
    run(longer, out=tmp_path, resume=True)
    assert not stale.exists()


def test_other_dot_files_are_not_temp_files(tmp_path: Path) -> None:
    """A directory with anything else in it is not taken for empty."""
    path = tmp_path / "runs" / "tiny"
    path.mkdir(parents=True)
    (path / ".notes.tmp").write_text("mine")  # not NAME.XXXX: not an atomic write's temp file
    assert main(["run", str(config_file(tmp_path)), "--out", str(tmp_path / "runs"), "--quiet"]) == 2
    assert (path / ".notes.tmp").read_text() == "mine"
