"""A throwaway PostgreSQL server for the tests that share an Optuna study between processes.

The session-scoped ``postgres_url`` fixture makes a cluster in a temporary directory with ``initdb -A trust``,
starts it with ``pg_ctl`` on a free port of 127.0.0.1 (its socket in the same directory), creates a database
and yields ``postgresql://USER@127.0.0.1:PORT/regopt``; at the end it stops the server (``-m immediate``) and
deletes the directory. PostgreSQL refuses to run as root, so as root the cluster belongs to the ``postgres``
user (Debian's package makes it) and every command runs through ``runuser``.

Where the server's binaries (Debian's ``postgresql`` package) or the psycopg driver are missing, the fixture
skips with the command that installs them; ``.ci/run`` installs the package, ``make test`` the driver.
"""

from __future__ import annotations

import glob
import importlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.spawn import free_port

INSTALL_HINT = "apt-get install postgresql"
TIMEOUT_S = 60


def find_bin_dir() -> Path | None:
    """The directory holding initdb, pg_ctl and postgres: Debian's newest version, else the PATH."""
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(Path(d).parent.name), reverse=True)
    dirs += [str(Path(p).parent) for p in [shutil.which("pg_ctl")] if p]
    for d in dirs:
        if all((Path(d) / tool).exists() for tool in ("initdb", "pg_ctl", "postgres", "createdb")):
            return Path(d)
    return None


def missing_reason() -> str | None:
    """Why no server can be started here, or None."""
    if find_bin_dir() is None:
        return f"PostgreSQL server binaries (initdb, pg_ctl, postgres, createdb) not found; {INSTALL_HINT}"
    from regopt.lab.tune_workers import driver_of  # here: conftest imports this module in every test session

    try:
        importlib.import_module(driver_of("postgresql://"))
    except ImportError:
        return "the PostgreSQL driver psycopg is not installed; pip install 'regopt[postgres]'"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and no 'postgres' user to own the cluster (PostgreSQL refuses root)"
    return None


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    reason = missing_reason()
    if reason is not None:
        pytest.skip(reason)
    bin_dir = find_bin_dir()
    assert bin_dir is not None
    root = Path(tempfile.mkdtemp(prefix="regopt-pg-"))
    as_user: list[str] = []
    user = pwd.getpwuid(os.geteuid()).pw_name
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        os.chown(root, entry.pw_uid, entry.pw_gid)
        as_user, user = ["runuser", "-u", "postgres", "--"], "postgres"
    data, port = root / "data", free_port()

    def pg(*args: str) -> None:
        subprocess.run([*as_user, *args], check=True, capture_output=True, timeout=TIMEOUT_S, cwd=root)

    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    try:
        pg(str(bin_dir / "initdb"), "-A", "trust", "-U", user, "-D", str(data))
        pg(str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start")
    except subprocess.CalledProcessError as err:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"PostgreSQL did not start: {err.stderr.decode(errors='replace').strip()[-500:]}")
    try:
        pg(str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", user, "regopt")
        yield f"postgresql://{user}@127.0.0.1:{port}/regopt"
    finally:
        subprocess.run(
            [*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            timeout=TIMEOUT_S,
            cwd=root,
        )
        shutil.rmtree(root, ignore_errors=True)
