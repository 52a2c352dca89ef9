"""Interrupting a run the way a user does (Ctrl-C at a chosen optimizer step), and the check every resume test
makes: the resumed run ends as the uninterrupted one, lr column and weights, bit for bit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from regopt.lab.config import RunConfig
from regopt.lab.runs import RunResult, run
from regopt.lab.trainer import Trainer


def run_interrupted(config: RunConfig, out: Path, *, after_step: int) -> None:
    """Run ``config`` into ``out`` and raise KeyboardInterrupt right after optimizer step ``after_step``, through
    torch's global optimizer hook (the run itself is unchanged up to there)."""
    taken = 0

    def interrupt(optimizer: Any, args: Any, kwargs: Any) -> None:
        nonlocal taken
        taken += 1
        if taken == after_step:
            raise KeyboardInterrupt

    handle = register_optimizer_step_post_hook(interrupt)
    try:
        with pytest.raises(KeyboardInterrupt):
            run(config, out=out)
    finally:
        handle.remove()


def interrupt_train_step(monkeypatch: pytest.MonkeyPatch, call: int) -> None:
    """Make the ``call``-th ``Trainer.train_step`` raise KeyboardInterrupt before it runs."""
    original = Trainer.train_step
    calls = {"n": 0}

    def flaky(self: Trainer, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        if calls["n"] == call:
            raise KeyboardInterrupt
        return original(self, x, y)

    monkeypatch.setattr(Trainer, "train_step", flaky)


def assert_same_run(straight: RunResult, resumed: RunResult) -> None:
    """The same lr column and the same final weights, bit for bit."""
    assert [r["lr"] for r in straight.history] == [r["lr"] for r in resumed.history]
    for a, b in zip(straight.experiment.model.parameters(), resumed.experiment.model.parameters(), strict=True):
        assert torch.equal(a, b)
