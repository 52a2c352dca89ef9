"""Wire ``[curriculum]`` into a run (sec. 8.7.6): a reference MLP scores each training example's difficulty,
and the Trainer's batch order takes the easiest fraction of the examples each epoch (:class:`CurriculumOrder`).

The reference is trained here, when the run is built, on the same training split with the same batch size,
Adam at its default rate and a seed of its own (``reference_seed``), so a resumed run scores the examples exactly
as the first one did; torch's global RNG is reseeded for the run's own model afterwards.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from regopt.curriculum import Curriculum, difficulty_by_loss
from regopt.lab.batch_order import BatchOrder, has_batch_norm
from regopt.lab.config import ConfigError, CurriculumConfig, MlpConfig, RunConfig
from regopt.lab.data import Dataset
from regopt.lab.models import build_model
from regopt.lab.trainer import Trainer
from regopt.optim import Adam


class CurriculumOrder(BatchOrder):
    """Each epoch's examples are the curriculum's: the easiest ``size(epoch)``, shuffled from the generator;
    with ``same_steps`` they are cycled (reshuffled each pass) up to the training set's size."""

    def __init__(self, curriculum: Curriculum, batch_size: int, *, same_steps: bool, seed: int, drop_single: bool):
        super().__init__(len(curriculum), batch_size, shuffle=True, seed=seed, drop_single=drop_single)
        self.curriculum, self.same_steps = curriculum, same_steps

    def order(self, epoch: int) -> Tensor:
        if not self.same_steps:
            return self.curriculum.indices(epoch, self.generator)
        passes = math.ceil(self.examples / self.curriculum.size(epoch))
        cycled = torch.cat([self.curriculum.indices(epoch, self.generator) for _ in range(passes)])
        return cycled[: self.examples]

    def length(self, epoch: int) -> int:
        return self.examples if self.same_steps else self.curriculum.size(epoch)


def check_curriculum(config: RunConfig) -> None:
    """Refuse, before the reference trains, what a curriculum cannot run with, in one line naming it."""
    if not config.train.shuffle:
        raise ConfigError("curriculum: draws each epoch's examples in a random order; train.shuffle = false conflicts")
    curriculum = config.curriculum
    if curriculum is not None and config.schedule.interval == "step" and not curriculum.same_steps:
        raise ConfigError(
            "curriculum: a per-step schedule needs as many steps every epoch; set curriculum.same_steps = true "
            "or schedule.interval = 'epoch'"
        )


def reference_difficulty(config: CurriculumConfig, data: Dataset, batch_size: int) -> Tensor:
    """Each training example's loss under a reference MLP trained briefly on the training split (negated for
    ``hard_first``). Seeds torch's global RNG: call it before seeding the run's own model."""
    if data.task != "classification":
        raise ConfigError("curriculum: difficulty is a reference classifier's loss; the data is not classification")
    torch.manual_seed(config.reference_seed)
    mlp = MlpConfig(name="mlp", widths=config.reference_widths)
    reference = build_model(mlp, data.input_shape, data.output_dim).to(data.x_train.device)
    optimizer = Adam([p for p in reference.parameters() if p.requires_grad])
    epochs, seed = config.reference_epochs, config.reference_seed
    Trainer(reference, optimizer, data, epochs=epochs, batch_size=batch_size, seed=seed).fit()
    difficulty = difficulty_by_loss(reference, None, data.x_train, data.y_train)
    return -difficulty if config.order == "hard_first" else difficulty


def curriculum_order(
    config: CurriculumConfig, difficulty: Tensor, batch_size: int, model: nn.Module, seed: int
) -> CurriculumOrder:
    """The run's batch order: the curriculum over ``difficulty`` (from :func:`reference_difficulty`)."""
    curriculum = Curriculum(
        difficulty, start_fraction=config.start_fraction, epochs_to_full=config.epochs_to_full, pacing=config.pacing
    )
    drop_single = has_batch_norm(model)
    return CurriculumOrder(curriculum, batch_size, same_steps=config.same_steps, seed=seed, drop_single=drop_single)
