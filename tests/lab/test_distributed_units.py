"""The pieces of a torchrun run that need no processes: slicing a batch, the size check, the refusals that come
before a process group is used, and the silenced writes of the ranks other than 0."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from regopt.lab.atomic import silenced, write_text, writes_here
from regopt.lab.config import ConfigError, RunConfig
from regopt.lab.distributed import World, backend_for, check_slices, launched, rank_seed
from regopt.lab.experiment import sync_batch_norm
from regopt.lab.models.base import ModelError


@pytest.mark.parametrize("n", [1, 5, 6, 7, 32])
def test_the_ranks_slices_are_the_batch_in_order(n: int) -> None:
    batch = torch.arange(n)
    slices = [World(rank, 3).shard(batch) for rank in range(3)]
    assert torch.equal(torch.cat(slices), batch)
    assert max(map(len, slices)) - min(map(len, slices)) <= 1


def test_a_batch_too_small_for_the_ranks_names_the_batch_and_the_minimum() -> None:
    check_slices(World(0, 2), examples=66, batch_size=32, accumulate=1, batch_norm=False)  # last batch 2: 1 + 1
    with pytest.raises(ModelError, match=r"a batch of 1 examples cannot be cut into 2 ranks.*at least 2"):
        check_slices(World(0, 2), examples=65, batch_size=32, accumulate=1, batch_norm=False)
    with pytest.raises(ModelError, match=r"batch of 8 examples cannot be cut into 4 ranks x 2 micro-batches.*16"):
        check_slices(World(0, 4), examples=64, batch_size=8, accumulate=2, batch_norm=True)
    # BatchNorm drops an epoch's last batch of one example (as in one process), so it is not judged
    check_slices(World(0, 2), examples=65, batch_size=32, accumulate=1, batch_norm=True)


def test_rank_zero_keeps_the_run_seed_and_the_others_get_their_own() -> None:
    assert rank_seed(7, 0) == 7
    assert len({rank_seed(7, r) for r in range(8)}) == 8


def test_backend_follows_the_device_unless_named() -> None:
    assert backend_for("auto", "cpu") == "gloo"
    assert backend_for("auto", "cuda") == "nccl"
    assert backend_for("gloo", "cuda") == "gloo"


def test_launched_reads_torchruns_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert not launched()
    monkeypatch.setenv("RANK", "1")
    assert launched()
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert not launched()
    assert World.current() is None  # no process group in this process


def test_sync_batchnorm_on_the_cpu_is_refused_with_the_reason() -> None:
    config = RunConfig.model_validate({"distributed": {"sync_batchnorm": True}})
    model = nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4))
    with pytest.raises(ConfigError, match=r"distributed.sync_batchnorm: .*CUDA only.*cpu"):
        sync_batch_norm(config, model, torch.device("cpu"), World(0, 2))
    assert sync_batch_norm(config, model, torch.device("cpu"), None) is model  # one process: nothing to sync


def test_silenced_ranks_write_nothing(tmp_path: Path) -> None:
    with silenced():
        assert not writes_here()
        write_text(tmp_path / "sub" / "a.txt", "rank 1")
    assert writes_here()
    assert not (tmp_path / "sub").exists()
    with silenced(False):
        write_text(tmp_path / "b.txt", "rank 0")
    assert (tmp_path / "b.txt").read_text() == "rank 0"
