"""Gradient accumulation under DistributedDataParallel (issue 17, item 3): the first k - 1 micro-batches run inside
``no_sync()``, so gradients cross the network once per optimizer step, not once per micro-batch, and the step still
equals the unaccumulated one. Two real processes over gloo on a free port, with a timeout; a DDP communication
hook counts the all-reduces."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from regopt.lab.data import Dataset
from regopt.lab.trainer import Trainer
from tests.spawn import free_port, run_world

STEPS, WORLD = 3, 2


def train_rank(rank: int, port: int, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        for accumulate in (1, 4):
            train(rank, accumulate, out)
    finally:
        dist.destroy_process_group()


def train(rank: int, accumulate: int, out: str) -> None:
    torch.manual_seed(0)  # the same initial weights on both ranks
    model = DistributedDataParallel(nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3)))
    calls = [0]

    def counting_allreduce(state, bucket):  # type: ignore[no-untyped-def]  # DDP checks a real annotation
        calls[0] += 1
        tensor = bucket.buffer().div_(WORLD)
        return dist.all_reduce(tensor, async_op=True).get_future().then(lambda f: f.value()[0])

    model.register_comm_hook(None, counting_allreduce)
    generator = torch.Generator().manual_seed(100 + rank)  # each rank its own shard of the data
    x, y = torch.randn(48, 8, generator=generator), torch.randint(0, 3, (48,), generator=generator)
    data = Dataset("shard", "classification", x, y, x[:8], y[:8], x[:8], y[:8], num_classes=3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    trainer = Trainer(model, optimizer, data, epochs=1, batch_size=16, accumulate=accumulate, seed=rank)
    trainer.fit(max_steps=STEPS)
    weights = torch.cat([p.detach().flatten() for p in model.parameters()]).tolist()
    Path(out, f"{accumulate}-{rank}.json").write_text(json.dumps({"calls": calls[0], "weights": weights}))


def test_ddp_synchronizes_once_per_optimizer_step_and_steps_as_without_accumulation(tmp_path: Path) -> None:
    run_world(train_rank, (free_port(), str(tmp_path)), timeout_s=120)
    plain, accumulated = ([json.loads((tmp_path / f"{k}-{r}.json").read_text()) for r in range(WORLD)] for k in (1, 4))
    assert [r["calls"] for r in plain] == [STEPS, STEPS]  # one bucket, one all-reduce per step
    assert [r["calls"] for r in accumulated] == [STEPS, STEPS]  # not 4 per step: no_sync() held the first three
    assert accumulated[0]["weights"] == accumulated[1]["weights"]  # the ranks agree
    difference = max(abs(a - b) for a, b in zip(plain[0]["weights"], accumulated[0]["weights"], strict=True))
    assert difference < 1e-6  # the same steps, to float rounding
