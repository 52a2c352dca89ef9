"""Running a test's function in real processes (torch.distributed over gloo): a free port, spawned workers, and a
timeout so a stuck collective fails the test instead of hanging the suite."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import torch.multiprocessing as mp


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_world(fn: Callable[..., None], args: tuple[Any, ...], *, nprocs: int = 2, timeout_s: float = 120) -> None:
    """``fn(rank, *args)`` in ``nprocs`` spawned processes; kills them and raises TimeoutError after ``timeout_s``.
    A worker's exception is raised here (torch's ProcessRaisedException)."""
    context = mp.start_processes(fn, args=args, nprocs=nprocs, join=False, start_method="spawn")
    for _ in range(int(timeout_s / 0.5)):
        if context.join(timeout=0.5):
            return
    for process in context.processes:
        process.kill()
    raise TimeoutError(f"the {nprocs} processes did not finish in {timeout_s:.0f} s")
