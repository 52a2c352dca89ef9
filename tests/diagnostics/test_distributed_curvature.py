"""Curvature under data parallelism (issue 19, part 3): ``HessianOperator(..., distributed=True)`` all-reduces the
loss, gradient and Hessian-vector products weighted by shard size, so with the probe batch split over two
processes it is the Hessian of the whole batch: matvecs to float64 rounding, the Lanczos top eigenvalue within the
issue's 1e-4 (relative), Hutchinson's trace and the spectral density to rounding, on every rank alike; the
ill-conditioning monitor's probe rows are the single-process rows on the whole batch; ``rank_gradient_norms``
gives the per-rank and global squared gradient norms of the noise scale. Two real processes over gloo on a free
port, every check inside one spawn, with a timeout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from regopt.diagnostics import (
    HessianOperator,
    IllConditioningMonitor,
    NoiseScaleHook,
    hessian_trace,
    noise_scale_terms,
    rank_gradient_norms,
    spectral_density,
    top_eigenvalues,
)
from tests.spawn import free_port, run_world

WORLD, N = 2, 24
SPLITS = {"equal": 12, "unequal": 5}  # rank 0's share of the N examples; rank 1 gets the rest


def make_problem() -> tuple[nn.Module, Tensor, Tensor]:
    torch.manual_seed(0)  # the same weights and data on every rank
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    x = torch.randn(N, 5, dtype=torch.float64)
    y = torch.randint(0, 3, (N,))
    return model, x, y


def measure(op: HessianOperator) -> dict[str, Any]:
    """Everything compared, in the same (collective) order on every rank."""
    gen = torch.Generator().manual_seed(7)
    vectors = [torch.randn(op.dim, generator=gen, dtype=torch.float64) for _ in range(3)]
    grid, density = spectral_density(op, num_runs=2, lanczos_steps=12, grid_points=50)
    return {
        "loss": op.loss(),
        "gradient": op.gradient().tolist(),
        "matvecs": [op.matvec(v).tolist() for v in vectors],
        "matmat": op.matmat(torch.stack(vectors), chunk_size=2).tolist(),  # all-reduced like matvec
        "top": top_eigenvalues(op, k=2).tolist(),
        "trace": hessian_trace(op, samples=20, seed=3),
        "grid": grid.tolist(),
        "density": density.tolist(),
    }


def monitor_row(model: nn.Module, x: Tensor, y: Tensor, distributed: bool | None) -> dict[str, float]:
    monitor = IllConditioningMonitor(model, F.cross_entropy, (x, y), lambda: 0.5, every=1, distributed=distributed)
    monitor.after_step(1, torch.tensor(0.0))
    return monitor.history[0]


def shard_gradient(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    grads = torch.autograd.grad(F.cross_entropy(model(x), y), list(model.parameters()))
    return torch.cat([g.reshape(-1) for g in grads])


def hooked_steps(rank: int) -> dict[str, Any]:
    """Two backward passes of a DDP model carrying the noise-scale hook, each rank on its half."""
    model, x, y = make_problem()
    ddp = DistributedDataParallel(model)
    hook = NoiseScaleHook(batch_size=12)
    hook.register(ddp)
    shard = slice(0, 12) if rank == 0 else slice(12, N)
    for _ in range(2):
        ddp.zero_grad()
        F.cross_entropy(ddp(x[shard]), y[shard]).backward()
    gradient = torch.cat([p.grad.reshape(-1) for p in model.parameters() if p.grad is not None])
    return {"result": hook.result(), "gradient": gradient.tolist(), "whole": shard_gradient(model, x, y).tolist()}


def rank_main(rank: int, port: int, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        model, x, y = make_problem()
        result: dict[str, Any] = {}
        if rank == 0:  # the references: one process on the whole batch (no collective)
            result["whole"] = measure(HessianOperator(model, F.cross_entropy, x, y))
            result["whole_row"] = monitor_row(model, x, y, distributed=False)
        for name, first in SPLITS.items():
            shard = slice(0, first) if rank == 0 else slice(first, N)
            op = HessianOperator(model, F.cross_entropy, x[shard], y[shard], distributed=True)
            result[name] = measure(op)
        halves = [shard_gradient(model, x[:12], y[:12]), shard_gradient(model, x[12:], y[12:])]
        result["norms"] = rank_gradient_norms(halves[rank])
        if rank == 0:
            result["norms_ref"] = [
                float((halves[0].square().sum() + halves[1].square().sum()) / 2),
                float(shard_gradient(model, x, y).square().sum()),  # the mean of the halves: the whole batch
            ]
        ddp = DistributedDataParallel(model)  # the monitor unwraps it and all-reduces by default
        shard = slice(0, 12) if rank == 0 else slice(12, N)
        result["ddp_row"] = monitor_row(ddp, x[shard], y[shard], distributed=None)
        try:
            IllConditioningMonitor(ddp, lr_fn=lambda: 0.5)
        except ValueError as error:
            result["ddp_without_probe"] = str(error)
        result["hook"] = hooked_steps(rank)
        Path(out, f"{rank}.json").write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("dcurv")
    run_world(rank_main, (free_port(), str(out)), timeout_s=120)
    return [json.loads((out / f"{rank}.json").read_text()) for rank in range(WORLD)]


def close(a: list[float], b: list[float], rtol: float) -> bool:
    ta, tb = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    return bool(torch.linalg.vector_norm(ta - tb) <= rtol * torch.linalg.vector_norm(tb))


@pytest.mark.parametrize("split", list(SPLITS))
def test_two_processes_describe_the_whole_batch(results: list[dict[str, Any]], split: str) -> None:
    whole = results[0]["whole"]
    for rank in range(WORLD):
        got = results[rank][split]
        # float64 sums of 24 per-example terms in another order: rounding ~1e-15, far below 1e-10
        assert got["loss"] == pytest.approx(whole["loss"], rel=1e-12)
        assert close(got["gradient"], whole["gradient"], 1e-10)
        for hv, ref in zip(got["matvecs"], whole["matvecs"], strict=True):
            assert close(hv, ref, 1e-10)
        for hv, ref in zip(got["matmat"], whole["matvecs"], strict=True):
            assert close(hv, ref, 1e-10)
        assert got["top"] == pytest.approx(whole["top"], rel=1e-4)  # the tolerance
        assert got["trace"] == pytest.approx(whole["trace"], rel=1e-9)  # same Rademacher vectors
        assert close(got["density"], whole["density"], 1e-6)
    assert results[0][split] == results[1][split]  # the ranks agree bit for bit: they ran the same iteration


def test_a_shard_alone_is_not_the_whole_batch(results: list[dict[str, Any]]) -> None:
    # the check above could not pass by accident: weighting the 5- and 19-example shards equally is far off
    whole = torch.tensor(results[0]["whole"]["matvecs"][0], dtype=torch.float64)
    model, x, y = make_problem()
    small = HessianOperator(model, F.cross_entropy, x[:5], y[:5])
    large = HessianOperator(model, F.cross_entropy, x[5:], y[5:])
    v = torch.randn(small.dim, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    assert close(((5 * small.matvec(v) + 19 * large.matvec(v)) / N).tolist(), whole.tolist(), 1e-10)
    naive = (small.matvec(v) + large.matvec(v)) / 2
    assert torch.linalg.vector_norm(naive - whole) > 0.01 * torch.linalg.vector_norm(whole)


def test_monitor_probe_rows_under_ddp_are_the_whole_batch_rows(results: list[dict[str, Any]]) -> None:
    whole = results[0]["whole_row"]
    for rank in range(WORLD):
        row = results[rank]["ddp_row"]
        for key in ("loss", "gg", "gHg", "criterion"):
            assert row[key] == pytest.approx(whole[key], rel=1e-10), key
    assert "needs a probe batch" in results[0]["ddp_without_probe"]


def test_distributed_needs_an_initialized_process_group() -> None:
    model, x, y = make_problem()
    assert not dist.is_initialized()
    with pytest.raises(RuntimeError, match=r"torch\.distributed initialized"):
        HessianOperator(model, F.cross_entropy, x, y, distributed=True)
    with pytest.raises(ValueError, match="only used with distributed=True"):
        HessianOperator(model, F.cross_entropy, x, y, group=object())  # type: ignore[arg-type]


def test_rank_gradient_norms_are_the_per_rank_mean_and_the_global_squared_norms(results: list[dict[str, Any]]) -> None:
    small, big = results[0]["norms_ref"]
    assert small > 1.01 * big  # two half batches are noisier than the whole: the two numbers differ
    for rank in range(WORLD):
        assert results[rank]["norms"] == pytest.approx([small, big], rel=1e-12)


def test_the_ddp_hook_measures_the_noise_scale_from_ddps_own_all_reduce(results: list[dict[str, Any]]) -> None:
    small, big = results[0]["norms_ref"]
    norm_sq, trace = noise_scale_terms(small, 12, big, N)
    for rank in range(WORLD):
        hooked = results[rank]["hook"]
        assert close(hooked["gradient"], hooked["whole"], 1e-12)  # training sees DDP's usual average
        got = hooked["result"]
        assert got["steps"] == 2
        assert [got["grad_norm_sq"], got["trace_cov"]] == pytest.approx([norm_sq, trace], rel=1e-9)
        assert got["noise_scale"] == pytest.approx(trace / norm_sq, rel=1e-9)
    assert results[0]["hook"]["result"] == results[1]["hook"]["result"]
