"""Any torch lr_scheduler by name (issue 17): ``[schedule] name = "torch.<Class>"``, its keys checked against the
class's signature when the config is read; the lr column is torch's own scheduler, and a run resumes exactly."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest
import tomli_w
import torch
from torch.optim import lr_scheduler
from torch.optim.lr_scheduler import MultiStepLR, OneCycleLR

from regopt.cli import main
from regopt.lab.config import validate
from regopt.lab.experiment import build_experiment
from regopt.lab.run_dir import horizon_dependence
from regopt.lab.runs import run
from regopt.lab.schedule_table import REFUSED, SCHEDULERS
from tests.conftest import small_raw
from tests.lab.interruptions import assert_same_run, run_interrupted

LR = 0.1


def raw_with(schedule: dict[str, Any], epochs: int = 3) -> dict[str, Any]:
    return small_raw(
        optimizer={"name": "sgd", "lr": LR, "momentum": 0.9},
        train={"epochs": epochs, "batch_size": 64},
        schedule=schedule,
    )


def by_hand(make: Any, steps: int) -> list[float]:
    """The lr after 0, 1, ..., ``steps`` steps of torch's scheduler ``make(optimizer)`` on a dummy optimizer."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR, momentum=0.9)
    scheduler = make(optimizer)
    seen = [optimizer.param_groups[0]["lr"]]
    for _ in range(steps):
        optimizer.step()
        scheduler.step()
        seen.append(optimizer.param_groups[0]["lr"])
    return seen


def test_one_cycle_spans_the_run_and_its_lr_column_is_torchs(tmp_path: Path) -> None:
    """No total_steps given: the cycle is the run's steps. Each row's lr is torch's after that row's steps."""
    schedule = {"name": "torch.OneCycleLR", "interval": "step", "max_lr": 0.5, "pct_start": 0.25}
    history = run(validate(raw_with(schedule)), out=tmp_path).history
    horizon = int(history[-1]["step"])
    expected = by_hand(lambda o: OneCycleLR(o, max_lr=0.5, pct_start=0.25, total_steps=horizon), horizon)
    assert [row["lr"] for row in history] == [expected[int(row["step"])] for row in history]
    assert max(expected) == 0.5 and history[0]["lr"] > 0.5 / 25  # the column really follows a cycle


def test_multistep_per_epoch_and_after_a_warmup() -> None:
    schedule = {"name": "torch.MultiStepLR", "milestones": [2, 4], "gamma": 0.5}
    history = build_experiment(validate(raw_with(schedule, epochs=6))).trainer.fit()
    expected = by_hand(lambda o: MultiStepLR(o, milestones=[2, 4], gamma=0.5), 6)
    assert [row["lr"] for row in history] == expected[:6] == [0.1, 0.1, 0.05, 0.05, 0.025, 0.025]
    warm = {**schedule, "interval": "step", "warmup_steps": 2, "warmup_start_factor": 0.5}
    trainer = build_experiment(validate(raw_with(warm))).trainer
    seen = []
    for _ in range(8):
        seen.append(trainer.optimizer.param_groups[0]["lr"])
        trainer.optimizer.step()  # no gradients: nothing moves, but the schedule sees a step taken
        trainer.scheduler.step()  # type: ignore[union-attr]
    # linear warmup 0.05 -> 0.1 over 2 steps, then MultiStepLR counting from the warmup's end
    assert seen == pytest.approx([0.05, 0.075, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025], rel=1e-15)


def test_a_one_cycle_run_interrupted_mid_cycle_resumes_to_the_same_bits(tmp_path: Path) -> None:
    """Ctrl-C after optimizer step 11 (checkpoints every 4 steps): --resume ends as the uninterrupted run."""
    raw = raw_with({"name": "torch.OneCycleLR", "interval": "step", "max_lr": 0.5})
    raw["train"]["checkpoint_every"] = 4
    straight = run(validate(raw), out=tmp_path / "a")
    run_interrupted(validate(raw), tmp_path / "b", after_step=11)
    resumed = run(validate(raw), out=tmp_path / "b", resume=True)
    assert_same_run(straight, resumed)


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ({"name": "torch.OneCycle"}, "schedule.name: unknown torch scheduler 'torch.OneCycle'"),
        ({"name": "torch.MultiStepLR", "milestones": [2], "gama": 0.5}, "schedule.gama: not an option of torch.Mul"),
        ({"name": "torch.MultiStepLR"}, "schedule.milestones: torch.MultiStepLR needs it"),
        ({"name": "torch.StepLR", "step_size": 2, "optimizer": "sgd"}, "schedule.optimizer: regopt passes"),
        ({"name": "torch.StepLR", "step_size": 2, "gamma": float("nan")}, "schedule.gamma: nan is not a finite"),
        ({"name": "torch.MultiStepLR", "milestones": "2,4"}, "schedule.milestones: '2,4' is text; torch.MultiStepLR"),
        ({"name": "torch.OneCycleLR", "max_lr": 1.0}, "schedule.interval: torch.OneCycleLR steps after every batch"),
        (
            {"name": "torch.CyclicLR", "base_lr": 0.01, "max_lr": 0.1, "interval": "step", "warmup_steps": 2},
            "schedule.warmup_steps: torch.CyclicLR takes no warmup",
        ),
        ({"name": "torch.LambdaLR"}, "schedule.name: torch.LambdaLR takes lr_lambda, a Python function"),
        ({"name": "torch.SequentialLR"}, "schedule.name: torch.SequentialLR chains other schedulers"),
        ({"name": "torch.ReduceLROnPlateau"}, 'schedule.name: torch.ReduceLROnPlateau is name = "plateau"'),
        (  # found when the run is built (the run's length): still before anything is written
            {"name": "torch.OneCycleLR", "max_lr": 1.0, "interval": "step", "total_steps": 5},
            "schedule.total_steps: torch.OneCycleLR's cycle of 5 steps ends before the run's",
        ),
        ({"name": "torch.CosineAnnealingWarmRestarts", "T_0": 0}, "schedule: torch.CosineAnnealingWarmRestarts: "),
    ],
)
def test_bad_torch_schedules_end_in_one_line_and_exit_2(
    schedule: dict[str, Any], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(tomli_w.dumps(raw_with(schedule)))
    code = main(["run", str(config), "--out", str(tmp_path / "runs"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("regopt: error: "), err
    assert message in err[0], err[0]
    assert not (tmp_path / "runs").exists()


def test_only_a_one_cycle_that_spans_the_run_refuses_lengthening() -> None:
    spanning = validate(raw_with({"name": "torch.OneCycleLR", "interval": "step", "max_lr": 1.0}))
    assert "torch.OneCycleLR spans the whole run" in str(horizon_dependence(spanning))
    fixed = validate(raw_with({"name": "torch.OneCycleLR", "interval": "step", "max_lr": 1.0, "total_steps": 99}))
    assert horizon_dependence(fixed) is None


def test_every_torch_scheduler_is_offered_or_refused_and_listed(capsys: pytest.CaptureFixture[str]) -> None:
    """A scheduler torch adds is offered at once; one that needs a function or other schedulers must be refused."""
    public = {
        name
        for name, value in vars(lr_scheduler).items()
        if isinstance(value, type) and not name.startswith("_") and name != "LRScheduler"
        if issubclass(value, lr_scheduler.LRScheduler) or value is lr_scheduler.ReduceLROnPlateau
    }
    assert public == set(SCHEDULERS) | set(REFUSED) and not set(SCHEDULERS) & set(REFUSED)
    for cls in SCHEDULERS.values():
        for parameter in inspect.signature(cls.__init__).parameters.values():
            if parameter.default is inspect.Parameter.empty:
                assert "Callable" not in str(parameter.annotation) and "LRScheduler" not in str(parameter.annotation)
    assert main(["list"]) == 0
    assert "torch.<Class>" in capsys.readouterr().out
