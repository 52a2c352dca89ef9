"""regopt optimizers under FSDP2 (issue 19, part 1): with each Linear and the root ``fully_shard``-ed over two gloo
processes, each rank on half of the batch, every optimizer reaches the weights one process reaches on the full
batch, and so under tensor parallelism (Shard(0), Shard(1) and Replicate parameters); a sharded
``torch.distributed.checkpoint`` saved mid-run and loaded into a fresh model and optimizer (block coordinate
descent and Polyak averages included) continues exactly; a parameter whose shard cannot be updated elementwise is
refused by name."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor, Partial, init_device_mesh
from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module

from regopt.optim import (
    SGD,
    AdaGrad,
    Adam,
    AdamW,
    CoordinateDescent,
    DeltaBarDelta,
    PolyakAveraging,
    RMSProp,
)
from tests.spawn import free_port, run_world

WORLD, STEPS, BATCH = 2, 4, 12

OPTIMIZERS: dict[str, Callable[[nn.Module], torch.optim.Optimizer]] = {
    "sgd": lambda m: SGD(m.parameters(), lr=0.1, weight_decay=0.01),
    "momentum": lambda m: SGD(m.parameters(), lr=0.1, momentum=0.9),
    "nesterov": lambda m: SGD(m.parameters(), lr=0.1, momentum=0.9, nesterov=True),
    "adagrad": lambda m: AdaGrad(m.parameters(), lr=0.1),
    "rmsprop": lambda m: RMSProp(m.parameters(), lr=0.01, momentum=0.5, nesterov=True),
    "adam": lambda m: Adam(m.parameters(), lr=0.01, weight_decay=0.01),
    "adamw": lambda m: AdamW(m.parameters(), lr=0.01),
    "delta_bar_delta": lambda m: DeltaBarDelta(m.parameters(), lr=0.05, kappa=1e-3, phi=0.1, theta=0.7),
    "coordinate": lambda m: CoordinateDescent(
        CoordinateDescent.blocks_by_module(m), lambda ps: Adam(ps, lr=0.01), order="random", seed=5
    ),
}
# a velocity held in theta, two moments (and Polyak averages), per-weight rates, blocks and their random order
CHECKPOINTED = ("nesterov", "adam", "delta_bar_delta", "coordinate")


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 4))


def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(100 + step)
    return torch.randn(BATCH, 8, generator=generator), torch.randn(BATCH, 4, generator=generator)


def train(net: nn.Module, opt: torch.optim.Optimizer, steps: range, rank: int | None, avg: Any = None) -> None:
    """Full batch when ``rank`` is None, else the rank's half; the mean loss, so FSDP2's averaged gradient is the
    full batch's."""
    half = BATCH // WORLD
    for step in steps:
        x, y = batch(step)
        if rank is not None:
            x, y = x[rank * half : (rank + 1) * half], y[rank * half : (rank + 1) * half]
        opt.zero_grad()
        (net(x) - y).pow(2).mean().backward()
        opt.step()
        if avg is not None:
            avg.update()


def full(t: torch.Tensor) -> list[float]:
    return (t.full_tensor() if isinstance(t, DTensor) else t).detach().flatten().tolist()


def sharded_model() -> nn.Module:
    net = model()
    for layer in (net[0], net[2]):
        fully_shard(layer)
    fully_shard(net)
    return net


def tensor_parallel_model() -> nn.Module:
    net = model()
    plan = {"0": ColwiseParallel(), "2": RowwiseParallel()}  # weights Shard(0), Shard(1); last bias Replicate
    return parallelize_module(net, init_device_mesh("cpu", (WORLD,)), plan)  # type: ignore[arg-type]


def worker(rank: int, port: int, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        results: dict[str, Any] = {}
        for name, make in OPTIMIZERS.items():
            net = sharded_model()
            opt = make(net)
            avg = PolyakAveraging(net, decay=0.5) if name == "adam" else None
            train(net, opt, range(STEPS), rank, avg)
            results[name] = [full(p) for p in net.parameters()]
            if avg is not None:
                results["polyak"] = [full(a) for a in avg._averages]
                with avg.averaged():  # the averages swapped into the sharded parameters and the weights back after
                    assert [full(p) for p in net.parameters()] == results["polyak"]
                assert [full(p) for p in net.parameters()] == results[name]
            if name == "nesterov":
                with opt.evaluation_view():  # type: ignore[attr-defined]
                    results["nesterov-theta"] = [full(p) for p in net.parameters()]
                assert [full(p) for p in net.parameters()] == results[name]  # the interim point restored exactly
            net = tensor_parallel_model()  # the whole batch on both ranks
            opt = make(net)
            train(net, opt, range(STEPS), None)
            results[f"tp-{name}"] = [full(p) for p in net.parameters()]
        for name in CHECKPOINTED:
            results[f"resumed-{name}"], averages = resumed(name, rank, Path(out, name))
            if averages is not None:
                results["resumed-polyak"] = averages
        results["partial"] = partial_error()
        if rank == 0:
            Path(out, "results.json").write_text(json.dumps(results))
    finally:
        dist.destroy_process_group()


def resumed(name: str, rank: int, path: Path) -> tuple[list[list[float]], list[list[float]] | None]:
    """Two steps, a sharded checkpoint, then two more steps in a fresh model and optimizer (and, for Adam, Polyak
    averages) loaded from it: the weights and the averages."""
    net = sharded_model()
    opt = OPTIMIZERS[name](net)
    avg = PolyakAveraging(net, decay=0.5) if name == "adam" else None
    train(net, opt, range(2), rank, avg)
    model_state, optim_state = get_state_dict(net, opt)
    saved = {"model": model_state, "optim": optim_state}
    if avg is not None:
        saved["polyak"] = avg.state_dict()
    dcp.save(saved, checkpoint_id=str(path))
    fresh = sharded_model()  # the initial weights: everything must come from the checkpoint
    fresh_opt = OPTIMIZERS[name](fresh)
    fresh_avg = PolyakAveraging(fresh, decay=0.5) if avg is not None else None
    if isinstance(fresh_opt, CoordinateDescent):
        fresh_opt.init_state()  # every block's state in the template dcp.load fills
    model_state, optim_state = get_state_dict(fresh, fresh_opt)
    state = {"model": model_state, "optim": optim_state}
    if fresh_avg is not None:
        state["polyak"] = fresh_avg.state_dict()
    dcp.load(state, checkpoint_id=str(path))
    set_state_dict(fresh, fresh_opt, model_state_dict=state["model"], optim_state_dict=state["optim"])
    if fresh_avg is not None:
        fresh_avg.load_state_dict(state["polyak"])
    train(fresh, fresh_opt, range(2, STEPS), rank, fresh_avg)
    averages = None if fresh_avg is None else [full(a) for a in fresh_avg._averages]
    return [full(p) for p in fresh.parameters()], averages


def partial_error() -> str:
    mesh = init_device_mesh("cpu", (WORLD,))
    weight = nn.Parameter(DTensor.from_local(torch.ones(3, 2), mesh, [Partial()]))
    weight.grad = DTensor.from_local(torch.ones(3, 2), mesh, [Partial()])
    bias = nn.Parameter(torch.zeros(2))
    opt = Adam([{"params": [bias]}, {"params": [bias.new_zeros(1).requires_grad_(), weight]}])
    try:
        opt.step()
    except ValueError as error:
        return str(error)
    return "no error"


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("fsdp2")
    run_world(worker, (free_port(), str(out)), timeout_s=180)
    return dict(json.loads((out / "results.json").read_text()))


def assert_close(got: list[list[float]], expected: list[torch.Tensor]) -> None:
    # float32 sums over 6 vs 12 examples, then a few steps: rounding, far below the steps' size (~1e-2)
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(torch.tensor(g), e.detach().flatten(), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_fsdp2_weights_equal_one_process_on_the_full_batch(results: dict[str, Any], name: str) -> None:
    net = model()
    opt = OPTIMIZERS[name](net)
    avg = PolyakAveraging(net, decay=0.5) if name == "adam" else None
    train(net, opt, range(STEPS), None, avg)
    assert_close(results[name], list(net.parameters()))
    assert_close(results[f"tp-{name}"], list(net.parameters()))
    if avg is not None:
        assert_close(results["polyak"], avg._averages)
    if name == "nesterov":
        with opt.evaluation_view():  # type: ignore[attr-defined]
            assert_close(results["nesterov-theta"], list(net.parameters()))


@pytest.mark.parametrize("name", CHECKPOINTED)
def test_sharded_checkpoint_resumes_the_same_run(results: dict[str, Any], name: str) -> None:
    assert results[f"resumed-{name}"] == results[name]  # the same float operations in the same order: exact
    if name == "adam":
        assert results["resumed-polyak"] == results["polyak"]


def test_a_partial_dtensor_parameter_is_refused_by_name(results: dict[str, Any]) -> None:
    message = results["partial"]
    assert "param_groups[1]['params'][1]" in message and "Partial" in message and "(3, 2)" in message
