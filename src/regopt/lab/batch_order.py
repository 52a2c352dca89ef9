"""Which training examples each optimizer step sees: every epoch's order of the examples, cut into batches.

With ``shuffle`` each epoch draws a fresh permutation from a seeded generator of its own (torch's global RNG is
left to dropout and the like); without it every epoch takes consecutive slices of the data's own order, as the
MNIST-1D paper's loop does. The last batch of an epoch may be smaller; it is dropped when it holds a single
example and the model has BatchNorm, which cannot normalize one example by its own statistics (torch's
``drop_last`` for that one case: the same batch every epoch and run, so resumed runs still match).

The generator's state at the start of the epoch is all the state there is: an epoch resumed after ``b`` batches
draws the same permutation and skips ``b`` batches.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn


def has_batch_norm(model: nn.Module) -> bool:
    """Whether ``model`` holds a BatchNorm layer (which normalizes each batch by its own statistics)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def steps_per_epoch(examples: int, batch_size: int, model: nn.Module) -> int:
    """Optimizer steps in one epoch of ``examples`` in batches of ``batch_size``: the last batch may be smaller,
    and is dropped when it holds a single example and ``model`` has BatchNorm (which cannot normalize one)."""
    return _steps(examples, batch_size, drop_single=has_batch_norm(model))


def _steps(length: int, batch_size: int, *, drop_single: bool) -> int:
    """Batches of ``batch_size`` in ``length`` examples, less a last batch of one when ``drop_single``."""
    return -(-length // batch_size) - int(drop_single and length % batch_size == 1)


def micro_batches(x: Tensor, y: Tensor, parts: int, *, at_least: int = 1) -> list[tuple[Tensor, Tensor]]:
    """``(x, y)`` split into ``parts`` consecutive micro-batches of nearly equal size (fewer when the batch is too
    small for each to hold ``at_least`` examples, as BatchNorm needs 2); views, no copies."""
    parts = max(1, min(parts, len(x) // at_least))
    if parts == 1:
        return [(x, y)]
    return list(zip(torch.tensor_split(x, parts), torch.tensor_split(y, parts), strict=True))


class BatchOrder:
    """The batches of ``examples`` training examples, ``batch_size`` at a time, epoch after epoch.

    Subclasses choose another order of the examples for an epoch (:meth:`order`), e.g. a curriculum's easiest
    examples first (:class:`regopt.lab.curriculum.CurriculumOrder`), drawing only from :attr:`generator`.
    """

    def __init__(self, examples: int, batch_size: int, *, shuffle: bool, seed: int, drop_single: bool) -> None:
        self.examples, self.batch_size = examples, batch_size
        self.shuffle, self.drop_single = shuffle, drop_single
        self.generator = torch.Generator().manual_seed(seed)
        self.epoch_state = self.generator.get_state()
        """The generator's state when the current epoch began (checkpointed as ``rng.epoch_shuffle``)."""

    def order(self, epoch: int) -> Tensor:
        """The examples of ``epoch`` (from 0) in the order they are taken: a permutation of all of them drawn
        from :attr:`generator` (or ``0 .. n-1`` without ``shuffle``)."""
        if self.shuffle:
            return torch.randperm(self.examples, generator=self.generator)
        return torch.arange(self.examples)

    def length(self, epoch: int) -> int:
        """How many examples :meth:`order` gives for ``epoch``."""
        return self.examples

    def steps(self, epoch: int) -> int:
        """Optimizer steps in ``epoch``."""
        return _steps(self.length(epoch), self.batch_size, drop_single=self.drop_single)

    def _drops_last_batch(self, length: int) -> bool:
        return self.drop_single and length % self.batch_size == 1

    def indices(self, epoch: int, skip: int, device: torch.device) -> Iterator[Tensor]:
        """The batches of example indices of ``epoch``, after the first ``skip`` (those already taken)."""
        self.generator.set_state(self.epoch_state)
        order = self.order(epoch).to(device)
        end = len(order) - 1 if self._drops_last_batch(len(order)) else len(order)
        for start in range(skip * self.batch_size, end, self.batch_size):
            yield order[start : start + self.batch_size]

    def next_epoch(self) -> None:
        """The epoch is over: the next one starts from the generator's state now."""
        self.epoch_state = self.generator.get_state()
