"""regopt diagnose: a run's curvature against the exact Hessian, and its errors."""

from __future__ import annotations

import json

import tomli_w
import torch

from regopt.cli import main
from regopt.lab.checkpoint import load_checkpoint
from regopt.lab.config import read_toml, validate
from regopt.lab.experiment import build_experiment
from tests.conftest import small_raw


def test_diagnose_matches_the_exact_hessian(tmp_path, capsys):
    config = tmp_path / "c.toml"
    config.write_text(tomli_w.dumps(small_raw(model={"name": "mlp", "widths": [8]})))
    assert main(["run", str(config), "--out", str(tmp_path), "--quiet"]) == 0
    run_dir = tmp_path / "tiny"
    assert main(["diagnose", str(run_dir), "--probe", "64"]) == 0
    printed = capsys.readouterr().out
    assert "stable lr" in printed and "noise scale" in printed
    result = json.loads((run_dir / "diagnose" / "diagnose.json").read_text())

    experiment = build_experiment(validate(read_toml(run_dir / "config.toml")))
    model = experiment.model
    model.load_state_dict(load_checkpoint(run_dir / "checkpoint.pt")["model"])
    model.eval()
    x, y = experiment.data.x_train[:64], experiment.data.y_train[:64]
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def loss(theta):
        chunks = theta.split([s.numel() for s in shapes])
        params = {n: c.reshape(s) for n, c, s in zip(names, chunks, shapes, strict=True)}
        return torch.nn.functional.cross_entropy(torch.func.functional_call(model, params, (x,)), y)

    eigenvalues = torch.linalg.eigvalsh(torch.autograd.functional.hessian(loss, flat))
    assert abs(result["top_eigenvalues"][0] - eigenvalues[-1].item()) < 1e-3 * abs(eigenvalues[-1].item())
    assert abs(result["min_eigenvalue"] - eigenvalues[0].item()) < 1e-3 * max(1.0, abs(eigenvalues[0].item()))
    assert result["stable_lr_any_direction"] == 2 / result["top_eigenvalues"][0]
    assert (run_dir / "diagnose" / "spectrum.png").is_file()


def test_diagnose_errors_are_one_line(tmp_path, capsys):
    assert main(["diagnose", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err
