"""Assemble a Trainer from a validated config: data, model, optimizer, schedule, gradient transforms.

Everything that can be wrong with a config is found here, before a run directory is touched: a bad data file,
an optimizer option that does not exist, a model that does not fit the data.
"""

from __future__ import annotations

import random
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from regopt.diagnostics import clip_by_norm, clip_by_value
from regopt.init import initialize
from regopt.lab.batch_order import has_batch_norm
from regopt.lab.closure_config import check_closure_config
from regopt.lab.config import ConfigError, RunConfig
from regopt.lab.curriculum import check_curriculum, curriculum_order, reference_difficulty
from regopt.lab.data import DataError, Dataset, load_dataset
from regopt.lab.diagnosis import Diagnostics, diagnostic_monitors
from regopt.lab.distributed import World, rank_seed, shard_parameters
from regopt.lab.fsdp_config import check_fsdp
from regopt.lab.models import ModelError, build_model, count_parameters
from regopt.lab.multitask import digit_output, multitask_loss, multitask_model
from regopt.lab.pretraining import GreedyPretraining
from regopt.lab.registry import build_optimizer, build_scheduler
from regopt.lab.regularization import regularization_hooks, regularize_model
from regopt.lab.trainer import EvalView, ModelAction, Trainer, default_loss, steps_per_epoch
from regopt.optim import PolyakAveraging
from regopt.regularize import EarlyStopping


@dataclass
class Experiment:
    """A ready-to-fit trainer and what it was built from."""

    config: RunConfig
    data: Dataset
    trainer: Trainer
    device: torch.device
    early_stopping: EarlyStopping | None = None
    diagnostics: Diagnostics | None = None
    pretraining: GreedyPretraining | None = None

    @property
    def model(self) -> nn.Module:
        """The model being trained (greedy pretraining replaces it at each stage)."""
        return self.trainer.model

    @property
    def parameter_count(self) -> int:
        """Number of trainable parameters of the model."""
        return count_parameters(self.model)

    def fit(self) -> list[dict[str, float]]:
        """Train: the Trainer's fit, or the stages of greedy pretraining."""
        return self.pretraining.fit(self.trainer) if self.pretraining is not None else self.trainer.fit()


def resolve_device(name: str, world: World | None = None) -> torch.device:
    """``auto`` picks CUDA, then MPS, then CPU; an unavailable device is a config error. Each rank of a
    ``world`` takes the CUDA device of its local rank."""
    if world is not None and (name == "cuda" or (name == "auto" and torch.cuda.is_available())):
        if torch.cuda.device_count() <= world.local_rank:
            raise ConfigError(f"device: local rank {world.local_rank} has no CUDA device of its own")
        return torch.device("cuda", world.local_rank)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: 'cuda' requested but torch sees no CUDA device")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device: 'mps' requested but torch sees no MPS device")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed torch, numpy and Python's ``random`` (model init, dropout masks, anything else global)."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def gradient_transforms(config: RunConfig) -> list[ModelAction]:
    """Clipping by norm and/or value (torch.nn.utils), as the Trainer's gradient-transform phase."""
    transforms: list[ModelAction] = []
    if config.train.clip_grad_norm is not None:
        transforms.append(clip_by_norm(config.train.clip_grad_norm))
    if config.train.clip_grad_value is not None:
        transforms.append(clip_by_value(config.train.clip_grad_value))
    return transforms


def evaluation_hooks(
    config: RunConfig, model: nn.Module, optimizer: torch.optim.Optimizer, data: Dataset
) -> tuple[list[ModelAction], list[EvalView]]:
    """Post-step actions and evaluation views: Polyak averages (with BatchNorm statistics recomputed for the
    averaged weights) and an optimizer's own view (Nesterov's theta instead of the interim point)."""
    post_step: list[ModelAction] = []
    views: list[EvalView] = []
    if hasattr(optimizer, "evaluation_view"):
        views.append(optimizer.evaluation_view)
    if config.averaging is not None:
        averaging = PolyakAveraging(model, config.averaging.decay, start_step=config.averaging.start_step)
        post_step.append(averaging)
        batch_norm = has_batch_norm(model)
        batch = config.train.batch_size

        def averaged_view() -> AbstractContextManager[Any]:
            if batch_norm and averaging.num_averaged:
                averaging.update_bn(data.x_train[i : i + batch] for i in range(0, len(data.x_train), batch))
            return averaging.evaluation_view()

        views.append(averaged_view)
    return post_step, views


def check_backward_sharing(config: RunConfig, world: World | None = None) -> None:
    """The ill-conditioning check without a probe batch measures g'Hg on the graph of the step's own backward
    pass, which gradient accumulation splits into micro-batches, float16's loss scale changes, and
    DistributedDataParallel's backward hooks average over ranks."""
    check = config.diagnostics.ill_conditioning
    if check is None or check.probe_size is not None:
        return
    if world is not None:
        raise ConfigError(
            "diagnostics.ill_conditioning: under torchrun each rank's backward pass holds only its slice of the "
            "batch; set diagnostics.ill_conditioning.probe_size (e.g. to train.batch_size)"
        )
    if config.train.accumulate > 1:
        raise ConfigError(
            "diagnostics.ill_conditioning: with train.accumulate > 1 no single backward pass holds the step's "
            "gradient; set diagnostics.ill_conditioning.probe_size (e.g. to train.batch_size)"
        )
    if config.train.precision == "fp16":
        raise ConfigError(
            'diagnostics.ill_conditioning: train.precision = "fp16" scales the backward pass; set '
            "diagnostics.ill_conditioning.probe_size (e.g. to train.batch_size)"
        )


def build_run_model(
    config: RunConfig, data: Dataset, device: torch.device, pretraining: GreedyPretraining | None = None
) -> nn.Module:
    """The run's model on ``device``, in order: the configured network (greedy pretraining's first stage), the
    multi-task heads, the ``[init]`` policy over all of it, then noise layers (which change the model itself)."""
    if pretraining is not None:
        model: nn.Module = pretraining.first_model().to(device)
    else:
        model = build_model(config.model, data.input_shape, data.output_dim).to(device)
    if config.multitask is not None:
        model = multitask_model(config.multitask, model, data)
    if config.init is not None:
        activation = getattr(config.model, "activation", "relu")
        nonlinearity = activation if activation in ("relu", "tanh", "sigmoid", "leaky_relu") else "relu"
        initialize(model, config.init.policy, bias=config.init.bias, nonlinearity=nonlinearity)
    return regularize_model(config.regularize, model, data)


def sync_batch_norm(config: RunConfig, model: nn.Module, device: torch.device, world: World | None) -> nn.Module:
    """``[distributed] sync_batchnorm``: BatchNorm layers as ``SyncBatchNorm`` (same parameters) under a world."""
    if world is None or not config.distributed.sync_batchnorm or not has_batch_norm(model):
        return model
    if device.type != "cuda":
        raise ConfigError(
            f"distributed.sync_batchnorm: torch's SyncBatchNorm runs on CUDA only, and this run's device is "
            f"{device.type}; set it to false (each rank then normalizes its own slice)"
        )
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


def build_experiment(
    config: RunConfig,
    *,
    checkpoint_path: str | Path | None = None,
    progress: bool = False,
    data: Dataset | None = None,
) -> Experiment:
    """Build data (unless given), model, optimizer, schedule and Trainer; raises ConfigError, DataError or
    ModelError."""
    world = World.current()
    device = resolve_device(config.device, world)
    data = (data if data is not None else load_dataset(config.data)).to(device)
    difficulty = None
    if config.curriculum is not None:  # its reference model seeds torch itself, before the run's model
        check_curriculum(config)
        difficulty = reference_difficulty(config.curriculum, data, config.train.batch_size)
    seed_everything(config.seed)
    pretraining = GreedyPretraining(config, data.input_shape, data.output_dim) if config.pretraining else None
    model = sync_batch_norm(config, build_run_model(config, data, device, pretraining), device, world)
    if world is not None and config.distributed.strategy == "fsdp":  # before anything holds the parameters
        check_fsdp(config)
        model = shard_parameters(model, device)
    optimizer = build_optimizer(config.optimizer, model)
    check_closure_config(config, optimizer, world)
    output = digit_output if config.multitask is not None else None
    regularization = regularization_hooks(config.regularize, model, optimizer, data, output=output)
    steps = steps_per_epoch(len(data.x_train), config.train.batch_size, model)  # as the Trainer will take them
    batch_order = None
    if config.curriculum is not None and difficulty is not None:
        batch_order = curriculum_order(config.curriculum, difficulty, config.train.batch_size, model, config.seed)
    scheduler = build_scheduler(config.schedule, optimizer, epochs=config.train.epochs, steps_per_epoch=steps)
    post_step, eval_views = evaluation_hooks(config, model, optimizer, data)
    loss_fn = regularization.loss_fn or default_loss(data.task)
    if config.multitask is not None:
        if regularization.loss_fn is not None:
            raise ConfigError("multitask: label smoothing is not combined with the multi-task loss")
        loss_fn = multitask_loss(config.multitask)
    check_backward_sharing(config, world)
    diagnostics = diagnostic_monitors(config.diagnostics, model, optimizer, data, loss_fn, config.train.batch_size)
    if world is not None and world.rank > 0:  # the same initial weights; dropout and noise streams of its own
        seed_everything(rank_seed(config.seed, world.rank))
    trainer = Trainer(
        model,
        optimizer,
        data,
        epochs=config.train.epochs,
        batch_size=config.train.batch_size,
        shuffle=config.train.shuffle,
        loss_fn=loss_fn,
        scheduler=scheduler,
        scheduler_interval=config.schedule.interval,
        scheduler_metric=getattr(config.schedule, "monitor", None),
        batch_transforms=regularization.batch_transforms,
        penalties=regularization.penalties,
        terms=regularization.terms,
        grad_transforms=gradient_transforms(config),
        post_step=[*regularization.post_step, *post_step],
        monitors=[*diagnostics.all, *regularization.monitors],
        eval_views=eval_views,
        seed=config.seed,
        checkpoint_path=checkpoint_path,
        checkpoint_every=config.train.checkpoint_every,
        progress=progress and (world is None or world.main),
        prediction=output,
        batch_order=batch_order,
        accumulate=config.train.accumulate,
        precision=config.train.precision,
        compile_model=config.train.compile,
        world=world,
    )
    return Experiment(
        config=config,
        data=data,
        trainer=trainer,
        device=device,
        early_stopping=regularization.early_stopping,
        diagnostics=diagnostics,
        pretraining=pretraining,
    )


BUILD_ERRORS = (ConfigError, DataError, ModelError)
"""What :func:`build_experiment` raises for a config that cannot be used (all ``ValueError`` subclasses)."""

__all__ = ["BUILD_ERRORS", "Experiment", "build_experiment", "resolve_device", "seed_everything"]
