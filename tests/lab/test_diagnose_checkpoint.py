"""``regopt diagnose`` refuses a checkpoint holding another model's weights in one line naming the tensor, not
torch's multi-line size-mismatch report (issue 15, checkpoints)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from regopt.cli import main
from regopt.lab import runs
from regopt.lab.config import validate
from regopt.lab.runs import run
from tests.conftest import small_raw


def test_diagnose_names_the_tensor_that_does_not_fit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runs, "plot_curves", lambda *args, **kwargs: None)
    path = run(validate(small_raw(train={"epochs": 1, "batch_size": 64})), out=tmp_path).path
    checkpoint = path / "checkpoint.pt"
    state = torch.load(checkpoint, weights_only=True)
    state["model"] = {k: torch.zeros(v.shape[0] * 2, *v.shape[1:]) for k, v in state["model"].items()}
    torch.save(state, checkpoint)
    assert main(["diagnose", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has shape" in err[0] and "this config's model has" in err[0], err
