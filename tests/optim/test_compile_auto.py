"""Trap 14.2.12: ``compile="auto"`` compiles a large update only after the steps that could not repay the compile,
at a step that depends only on the size and the step count, so a resumed run switches where the uninterrupted
one did."""

from __future__ import annotations

import pytest
import torch

import regopt.optim.kernels as kernels
from regopt.optim import Adam, DeltaBarDelta


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))  # 58 parameters


BATCHES = [torch.randn(16, 4, generator=torch.Generator().manual_seed(i)) for i in range(8)]


def _steps(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batches: list[torch.Tensor]) -> None:
    for x in batches:
        optimizer.zero_grad()
        model(x).pow(2).mean().backward()
        optimizer.step()


@pytest.fixture
def small_threshold(monkeypatch):
    """Make the 58-parameter model "large": compiled from step 4 under auto (3 eager steps), and record compiles."""
    monkeypatch.delenv("REGOPT_COMPILE", raising=False)
    monkeypatch.setattr(kernels, "COMPILE_THRESHOLD", 8)
    monkeypatch.setattr(kernels, "COMPILE_PAYOFF", 58 * 3)
    real, calls = kernels.compiled, []
    monkeypatch.setattr(kernels, "compiled", lambda fn: calls.append(fn) or real(fn))
    return calls


def test_eager_steps_depend_on_size_only():
    assert kernels.eager_steps(kernels.COMPILE_THRESHOLD - 1) == float("inf")
    big = kernels.eager_steps(16 * kernels.COMPILE_THRESHOLD)
    assert 1 <= big < kernels.eager_steps(kernels.COMPILE_THRESHOLD)  # a larger group repays the compile sooner


def test_auto_runs_eagerly_then_compiles(small_threshold):
    model = _model()
    optimizer = Adam(model.parameters(), lr=1e-2)
    for step in range(1, 7):
        _steps(model, optimizer, BATCHES[step - 1 : step])
        assert len(small_threshold) == max(0, step - 3)  # the kernel is looked up on each step from step 4


def test_true_compiles_from_the_first_step_false_never_and_the_environment_switch(small_threshold, monkeypatch):
    model = _model()
    _steps(model, Adam(model.parameters(), lr=1e-2, compile=True), BATCHES[:1])
    assert len(small_threshold) == 1
    _steps(model, Adam(model.parameters(), lr=1e-2, compile=False), BATCHES)
    monkeypatch.setenv("REGOPT_COMPILE", "0")  # the switch turns compiling off, even where compile=True
    _steps(model, Adam(model.parameters(), lr=1e-2), BATCHES)
    _steps(model, Adam(model.parameters(), lr=1e-2, compile=True), BATCHES)
    assert len(small_threshold) == 1
    monkeypatch.setenv("REGOPT_COMPILE", "1")  # and makes "auto" compile from the first step
    _steps(model, Adam(model.parameters(), lr=1e-2), BATCHES[:1])
    assert len(small_threshold) == 2


@pytest.mark.parametrize("cls", [Adam, DeltaBarDelta])
def test_resuming_a_checkpoint_taken_while_eager_switches_at_the_same_step(small_threshold, cls):
    straight = _model()
    optimizer = cls(straight.parameters(), lr=1e-2)
    _steps(straight, optimizer, BATCHES)

    first = _model()
    optimizer = cls(first.parameters(), lr=1e-2)
    _steps(first, optimizer, BATCHES[:2])  # still eager at the checkpoint
    checkpoint = {"model": first.state_dict(), "optimizer": optimizer.state_dict()}
    calls_before = len(small_threshold)
    resumed = _model()
    resumed.load_state_dict(checkpoint["model"])
    optimizer = cls(resumed.parameters(), lr=1e-2)
    optimizer.load_state_dict(checkpoint["optimizer"])
    _steps(resumed, optimizer, BATCHES[2:3])
    assert len(small_threshold) == calls_before  # step 3: still eager
    _steps(resumed, optimizer, BATCHES[3:])
    assert len(small_threshold) == calls_before + 5  # steps 4-8 compiled
    for p, q in zip(straight.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(p, q)
