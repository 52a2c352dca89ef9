"""Several processes on one study: ``regopt tune --workers K --storage postgresql://...``.

Optuna keeps a study in a database (its RDB storage, through SQLAlchemy); any number of processes, on any
number of machines, may add trials to it at once. ``tune`` therefore runs ``K`` worker processes on one study,
and the same command run again elsewhere with the same storage and study name joins it (the study is loaded, not
refused). Every worker checks before each trial that the study does not already hold ``--trials`` trials that
finished, were pruned or are running, so the total holds across all of them; trials are numbered by the study,
so each trial's run directory (``trials/trial-NNNN``) belongs to one worker.

A worker that is killed (``kill -9``, a machine lost) leaves its trial ``RUNNING``. On a database storage each
running trial records a heartbeat every :data:`HEARTBEAT_S` seconds; a trial whose heartbeat is older than
:data:`GRACE_S` seconds is marked failed (``interrupted``) by the next worker that starts a trial
(``optuna.storages.fail_stale_trials``), so it is neither counted nor lost. SQLite allows one writer at a time,
and its single process marks every running trial it finds at start as interrupted: it serves one worker only.
"""

from __future__ import annotations

import importlib
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import optuna
import sqlalchemy.exc
from optuna.trial import TrialState
from sqlalchemy.engine import make_url

from regopt.lab.config import ConfigError

__all__ = [
    "GRACE_S",
    "HEARTBEAT_S",
    "driver_of",
    "fail_stale",
    "heartbeat",
    "is_sqlite",
    "open_storage",
    "shares",
    "started_count",
]

HEARTBEAT_S = 1
"""Seconds between the heartbeats a running trial writes to a database storage."""
GRACE_S = 5
"""Seconds without a heartbeat after which a running trial counts as killed and is marked failed."""


def driver_of(url: str) -> str:
    """The Python module SQLAlchemy's dialect for ``url`` imports (``postgresql://`` means psycopg 3 since 2.1)."""
    return str(make_url(url).get_dialect().driver)


def is_sqlite(url: str) -> bool:
    return urlsplit(url).scheme.startswith("sqlite")


def open_storage(url: str, workers: int) -> str | optuna.storages.RDBStorage:
    """The storage ``tune`` opens for ``url``: SQLite as a URL (one worker), any other database with heartbeats.

    Raises :class:`ConfigError` for more than one worker on SQLite and for a PostgreSQL URL whose driver is not
    installed (naming the ``postgres`` extra); the URL itself is never echoed, as it may hold a password.
    """
    if workers < 1:
        raise ConfigError(f"--workers {workers}: expected 1 or more")
    if is_sqlite(url):
        if workers > 1:
            raise ConfigError(
                f"--workers {workers}: SQLite lets one process write at a time; give --storage "
                "postgresql://USER@HOST/DB for parallel workers"
            )
        return url
    scheme = urlsplit(url).scheme
    try:
        driver = driver_of(url)
    except sqlalchemy.exc.ArgumentError as err:  # not a URL, or a dialect SQLAlchemy does not know
        raise ConfigError(f"--storage {scheme}://...: {_first_line(err)}") from None
    if scheme.startswith("postgresql"):
        try:
            importlib.import_module(driver)
        except ImportError:
            raise ConfigError(
                f"--storage {scheme}://...: the PostgreSQL driver {driver} is not installed; "
                "pip install 'regopt[postgres]'"
            ) from None
    with warnings.catch_warnings():  # heartbeats are marked experimental since Optuna 2.9
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            return optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S)
        except sqlalchemy.exc.OperationalError as err:  # server down, no such database, login refused
            raise ConfigError(f"--storage {scheme}://...: cannot connect: {_first_line(err.orig or err)}") from None


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def _beats(storage: object) -> bool:
    """Whether ``storage`` records heartbeats (Optuna's BaseHeartbeat with an interval: an RDBStorage opened here)."""
    interval = getattr(storage, "get_heartbeat_interval", None)
    return interval is not None and interval() is not None


def started_count(study: optuna.Study) -> int:
    """Trials that finished, were pruned or are running: what counts against ``--trials`` before a new one."""
    states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    return len(study.get_trials(deepcopy=False, states=states))


def shares(remaining: int, workers: int) -> list[int]:
    """Split ``remaining`` trials over ``workers`` as evenly as possible (the first ones take one more)."""
    return [remaining // workers + (i < remaining % workers) for i in range(workers)]


@contextmanager
def heartbeat(study: optuna.Study, trial: optuna.Trial) -> Iterator[None]:
    """Record ``trial``'s heartbeat every :data:`HEARTBEAT_S` seconds while the block runs (database storage)."""
    storage: Any = study._storage  # Optuna's own optimize() reaches the storage the same way
    if not _beats(storage):
        yield
        return
    stop = threading.Event()
    storage.record_heartbeat(trial._trial_id)  # before the run starts: a trial killed at once is still seen stale

    def beat() -> None:
        while not stop.wait(HEARTBEAT_S):
            storage.record_heartbeat(trial._trial_id)

    thread = threading.Thread(target=beat, daemon=True, name=f"heartbeat-trial-{trial.number}")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def fail_stale(study: optuna.Study) -> None:
    """Mark trials whose worker stopped beating as failed (a no-op without heartbeats)."""
    if _beats(study._storage):
        with warnings.catch_warnings():  # experimental since Optuna 2.9, like the heartbeats
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
