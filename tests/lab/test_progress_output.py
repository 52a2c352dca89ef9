"""Output off a terminal (issue 18, part 3): one plain line per epoch when stdout is not a TTY or ``CI`` is set; a
live bar only on a terminal, with epoch, step and ETA on its line and the latest metrics whole on the next, at 80
columns."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from regopt.cli import main
from regopt.lab.config import validate
from regopt.lab.experiment import build_experiment
from regopt.lab.progress import epoch_line, progress_mode
from regopt.lab.runs import read_metrics
from tests.conftest import small_raw

LINE = re.compile(
    r"^epoch (\d+)/3  train err (\d\.\d{4})  val err (\d\.\d{4})  loss (\d+\.\d{4})  lr (\S+)  \d+\.\d s$"
)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("enabled", "tty", "ci", "mode"),
    [
        (True, True, None, "live"),
        (True, True, "true", "lines"),
        (True, True, "1", "lines"),
        (True, True, "0", "live"),
        (True, True, "", "live"),
        (True, False, None, "lines"),
        (False, True, None, "off"),
        (False, False, "true", "off"),
    ],
)
def test_the_mode_follows_the_stream_and_ci(enabled: bool, tty: bool, ci: str | None, mode: str) -> None:
    stream = Terminal() if tty else io.StringIO()
    assert progress_mode(enabled, stream, {} if ci is None else {"CI": ci}) == mode


def test_off_a_terminal_each_epoch_is_one_plain_line_of_its_metrics(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CI", raising=False)
    config = tmp_path / "c.toml"
    config.write_text('name = "plain"\n[data]\nname = "moons"\nnum_samples = 200\n[train]\nepochs = 3\n')
    assert main(["run", str(config), "--out", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    assert "━" not in out and "\r" not in out  # no bar redraws
    lines = [LINE.match(line) for line in out.splitlines() if line.startswith("epoch ")]
    rows = read_metrics(tmp_path / "runs" / "plain" / "metrics.csv")
    assert len(lines) == len(rows) == 3 and all(lines)
    for match, row in zip(lines, rows, strict=True):
        assert match is not None
        assert int(match[1]) == row["epoch"]
        assert match[2] == f"{row['train_error']:.4f}" and match[3] == f"{row['val_error']:.4f}"
        assert match[4] == f"{row['train_loss']:.4f}" and float(match[5]) == pytest.approx(row["lr"], rel=1e-2)


def test_quiet_prints_no_epoch_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.toml"
    config.write_text('name = "q"\n[data]\nname = "moons"\nnum_samples = 200\n[train]\nepochs = 2\n')
    assert main(["run", str(config), "--out", str(tmp_path / "runs"), "--quiet"]) == 0
    assert not [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch ")]


def test_on_a_terminal_the_bar_shows_epoch_step_eta_and_whole_metrics_at_80_columns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("COLUMNS", "80")
    terminal = Terminal()
    monkeypatch.setattr("sys.stdout", terminal)
    raw = small_raw(train={"epochs": 3, "batch_size": 32, "evaluate_test": False})
    trainer = build_experiment(validate(raw), progress=True).trainer
    history = trainer.fit()
    screen = terminal.getvalue()
    assert "\x1b[" in screen  # a live, redrawn bar
    last = epoch_line(history[-1], 3)
    assert len(last) > 60 and last in screen  # the metrics, whole, on their own line
    steps = history[-1]["step"]
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen)  # without the colour codes
    assert re.search(rf"{int(steps)}/{int(steps)} steps\s+epoch 3/3 \d:\d\d:\d\d eta \d:\d\d:\d\d", plain)
    assert "…" not in plain
