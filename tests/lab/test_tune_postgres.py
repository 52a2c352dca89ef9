"""regopt tune --workers K --storage postgresql://...: several processes on one study in a real PostgreSQL server
(tests/postgres.py), none of its trials lost or repeated, a killed worker's trial failed and the study resumed
(issue 19, part 4)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import tomli_w
from optuna.trial import TrialState

from regopt.cli import main
from regopt.lab.tune import tune
from regopt.lab.tune_workers import GRACE_S
from tests import postgres
from tests.lab.tune_helpers import ALPHA, tune_raw

optuna.logging.set_verbosity(optuna.logging.WARNING)
SRC = Path(__file__).resolve().parents[2] / "src"


def _states(url: str, name: str) -> list[TrialState]:
    return [t.state for t in optuna.load_study(study_name=name, storage=url).get_trials(deepcopy=False)]


def test_two_workers_run_eight_distinct_trials_in_parallel(postgres_url, tmp_path):
    result = tune(tune_raw(), [ALPHA], trials=8, out=tmp_path, storage=postgres_url, study="two", workers=2)
    trials = result.study.get_trials(deepcopy=False)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 8
    assert sorted(t.number for t in trials) == list(range(8))
    assert len({t.params["regularize.l2.alpha"] for t in trials}) == 8
    dirs = sorted(p.name for p in (result.path / "trials").iterdir())
    assert dirs == [f"trial-{n:04d}" for n in range(8)]
    assert all((result.path / "trials" / d / "summary.json").exists() for d in dirs)
    overlapping = [  # two processes: some trial started before another one finished
        (a.number, b.number)
        for a in trials
        for b in trials
        if a.number < b.number and a.datetime_start < b.datetime_complete and b.datetime_start < a.datetime_complete
    ]
    assert overlapping


def _command(config: Path, url: str, out: Path) -> list[str]:
    tune_args = ["tune", str(config), "--param", ALPHA, "--trials", "3", "--storage", url, "--study", "killed"]
    return [sys.executable, "-m", "regopt.cli", *tune_args, "--out", str(out), "--no-prune"]


def test_a_study_whose_worker_was_killed_resumes_with_nothing_lost(postgres_url, tmp_path):
    config = tmp_path / "tiny.toml"
    config.write_text(tomli_w.dumps(tune_raw()))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    command = _command(config, postgres_url, tmp_path / "runs")
    worker = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120  # generous: a loaded machine starts Python and torch slowly
        while True:  # kill -9 once a trial has completed and the next one is running
            assert worker.poll() is None, f"the worker exited ({worker.returncode}) before it could be killed"
            assert time.monotonic() < deadline, "no trial completed within 120 s"
            try:
                states = _states(postgres_url, "killed")
            except KeyError:  # the study is not made yet
                states = []
            if TrialState.COMPLETE in states and TrialState.RUNNING in states:
                break
            time.sleep(0.1)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()
    states = _states(postgres_url, "killed")
    assert TrialState.RUNNING in states, states  # the killed trial, left behind
    time.sleep(GRACE_S + 1)  # its heartbeat goes stale
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert rerun.returncode == 0, rerun.stderr
    study = optuna.load_study(study_name="killed", storage=postgres_url)
    trials = study.get_trials(deepcopy=False)
    completed = [t for t in trials if t.state == TrialState.COMPLETE]
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(completed) == 3 and len(failed) == 1 and len(trials) == 4, [(t.number, t.state) for t in trials]
    assert failed[0].number == 1 and "error" not in failed[0].user_attrs  # listed as interrupted
    assert len({t.params["regularize.l2.alpha"] for t in completed}) == 3
    trials_dir = tmp_path / "runs" / "killed-tune" / "trials"
    assert all((trials_dir / f"trial-{t.number:04d}" / "summary.json").exists() for t in completed)
    assert "interrupted" in (trials_dir.parent / "trials.csv").read_text()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--storage", "postgresql://u@127.0.0.1:1/x"], "pip install 'regopt[postgres]'"),
        (["--workers", "2"], "--workers 2: SQLite lets one process write at a time"),
        (["--workers", "0"], "--workers 0: expected 1 or more"),
    ],
)
def test_bad_storage_or_workers_is_one_line_and_exit_2(argv, expected, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if the driver were not installed: import fails
    config = tmp_path / "tiny.toml"
    config.write_text(tomli_w.dumps(tune_raw()))
    out = tmp_path / "runs"
    assert main(["tune", str(config), "--param", ALPHA, "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("regopt: error:") and expected in err
    assert "127.0.0.1" not in err  # the URL, which may hold a password, is not echoed
    assert not out.exists()  # nothing written


def test_the_fixture_skips_naming_the_package_where_binaries_are_missing(monkeypatch):
    monkeypatch.setattr(postgres.glob, "glob", lambda pattern: [])
    monkeypatch.setattr(postgres.shutil, "which", lambda name: None)
    reason = postgres.missing_reason()
    assert reason is not None and "initdb" in reason and "apt-get install postgresql" in reason


def test_a_server_that_cannot_be_reached_is_one_line_and_exit_2(tmp_path, capsys):
    pytest.importorskip("psycopg", reason="the PostgreSQL driver: pip install 'regopt[postgres]'")
    config = tmp_path / "tiny.toml"
    config.write_text(tomli_w.dumps(tune_raw()))
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql://u:secret@127.0.0.1:{port}/x"
    assert main(["tune", str(config), "--param", ALPHA, "--out", str(tmp_path / "runs"), "--storage", url]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--storage postgresql://...: cannot connect" in err
    assert "secret" not in err
