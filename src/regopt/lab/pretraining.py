"""Wire ``[pretraining]`` into a run: greedy supervised pretraining (sec. 8.7.4) as stages of one Trainer.

Stage 0 trains the MLP of ``[model]`` with only its first hidden width; stage s (1 <= s < len(widths)) grows it
by the next width (:func:`regopt.pretraining.grow_mlp`: a new hidden layer and a fresh output layer) and trains
again; with ``finetune`` a last stage unfreezes everything. Every stage lasts ``epochs_per_stage`` epochs and has
a fresh optimizer over the parameters that train, built from ``[optimizer]``; the position, history, batch order
and RNGs carry on through :meth:`~regopt.lab.trainer.Trainer.use_model`, so the run is one run directory and one
metrics curve.

Which stage a checkpoint holds follows from its position alone (the stage that took the last optimizer step),
so ``--resume`` rebuilds that network (growing a fresh one; the checkpoint then overwrites its weights and the
RNG states) and its optimizer before loading anything, and goes on growing exactly as the uninterrupted run.
Hooks that keep the model's parameters from the start (averaging, early stopping, activation penalties, noise
layers, the gradient, curvature and plateau monitors, a learning-rate schedule) are refused with pretraining.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from regopt.diagnostics import NonFiniteGuard
from regopt.lab.config import ConfigError, MlpConfig, RunConfig
from regopt.lab.models import ACTIVATIONS, build_model
from regopt.lab.registry import build_optimizer
from regopt.lab.trainer import Trainer
from regopt.pretraining import grow_mlp, unfreeze

_REFUSED = {
    "averaging": "averaging",
    "regularize.early_stopping": "early stopping",
    "regularize.activation_l1": "activation_l1",
    "regularize.hidden_noise": "hidden_noise",
    "regularize.weight_noise": "weight_noise",
    "diagnostics.gradient_norms": "the gradient-norm monitor",
    "diagnostics.ill_conditioning": "the ill-conditioning monitor",
    "diagnostics.plateau": "the plateau monitor",
    "multitask": "multitask",
}


class GreedyPretraining:
    """The stages of a ``[pretraining]`` run: which network and optimizer each trains, and the loop over them."""

    def __init__(self, config: RunConfig, input_shape: tuple[int, ...], output_dim: int) -> None:
        pretraining = config.pretraining
        assert pretraining is not None
        check_pretraining(config)
        assert isinstance(config.model, MlpConfig)
        self.config, self.options, self.model_config = config, pretraining, config.model
        self.input_shape, self.output_dim = input_shape, output_dim
        self.widths = list(config.model.widths)
        self.stages = len(self.widths) + int(pretraining.finetune)
        self.epochs_per_stage = pretraining.epochs_per_stage
        self.stage = 0
        """The stage of the network the trainer holds."""

    def first_model(self) -> nn.Sequential:
        """Stage 0's network: the configured MLP with its first hidden width only."""
        first = self.model_config.model_copy(update={"widths": self.widths[:1]})
        model = build_model(first, self.input_shape, self.output_dim)
        assert isinstance(model, nn.Sequential)
        return model

    def grow(self, model: nn.Sequential, stage: int) -> nn.Sequential:
        """The network of ``stage`` from that of ``stage - 1``: one more hidden layer, or everything unfrozen."""
        if stage < len(self.widths):
            activation = ACTIVATIONS[self.model_config.activation]
            return grow_mlp(model, self.widths[stage], activation, freeze_existing=self.options.freeze_existing)
        return unfreeze(model)

    def optimizer_for(self, model: nn.Module) -> Any:
        """A fresh optimizer of ``[optimizer]`` over the parameters of ``model`` that train."""
        return build_optimizer(self.config.optimizer, model, [p for p in model.parameters() if p.requires_grad])

    def stage_of(self, epoch: int, batch: int) -> int:
        """The stage that took the last optimizer step at ``epoch`` completed epochs and ``batch`` batches."""
        epochs_begun = epoch + (batch > 0)
        return min(max(epochs_begun - 1, 0) // self.epochs_per_stage, self.stages - 1)

    def enter(self, trainer: Trainer, model: nn.Sequential) -> None:
        """Train ``model`` with a fresh optimizer from here on; the guard watches its parameters."""
        optimizer = self.optimizer_for(model)
        views = [optimizer.evaluation_view] if hasattr(optimizer, "evaluation_view") else []
        trainer.use_model(model, optimizer, views)
        for monitor in trainer.monitors:
            if isinstance(monitor, NonFiniteGuard):
                monitor.watch(model)

    def prepare_resume(self, trainer: Trainer, state: dict[str, Any]) -> None:
        """Rebuild the network and optimizer of the stage ``state`` was saved in, before it is loaded."""
        position = state.get("position")
        if not isinstance(position, dict) or not all(isinstance(position.get(k), int) for k in ("epoch", "batch")):
            return  # the checkpoint check names what is wrong
        self.stage = self.stage_of(position["epoch"], position["batch"])
        model = trainer.model
        assert isinstance(model, nn.Sequential)
        for stage in range(1, self.stage + 1):
            model = self.grow(model, stage)
        if self.stage > 0:
            self.enter(trainer, model)

    def fit(self, trainer: Trainer) -> list[dict[str, float]]:
        """Train the remaining stages: each to its last epoch, then grow (or unfreeze) and go on."""
        total = self.config.train.epochs  # at most all stages; fewer ends the run early (--resume goes on)
        while True:
            end = min((self.stage + 1) * self.epochs_per_stage, total)
            trainer.fit(max_epochs=end)
            stopped = bool(trainer.stop_reason) and not trainer.stopped_at_limits()
            if stopped or end >= total or self.stage + 1 >= self.stages:
                return trainer.history
            model = trainer.model
            assert isinstance(model, nn.Sequential)
            self.stage += 1
            self.enter(trainer, self.grow(model, self.stage))


def check_pretraining(config: RunConfig) -> None:
    """Refuse what greedy pretraining cannot run with, in one line naming it."""
    options = config.pretraining
    assert options is not None
    if not isinstance(config.model, MlpConfig):
        raise ConfigError(f"pretraining: grows an mlp one layer at a time; model.name is {config.model.name!r}")
    if config.model.share_hidden or config.model.batch_norm:
        raise ConfigError("pretraining: the mlp must not share hidden layers or use batch norm (layers are added)")
    stages = len(config.model.widths) + int(options.finetune)
    if config.train.epochs > stages * options.epochs_per_stage:
        raise ConfigError(
            f"pretraining: train.epochs is at most {stages * options.epochs_per_stage} ({stages} stages of "
            f"{options.epochs_per_stage} epochs), got {config.train.epochs}"
        )
    if config.schedule.name != "constant":
        raise ConfigError("pretraining: each stage has a fresh optimizer; a learning-rate schedule is not supported")
    if config.optimizer.name == "coordinate":
        raise ConfigError("pretraining: coordinate descent's blocks are fixed at the start; use another optimizer")
    if config.train.keep_best:
        raise ConfigError("pretraining: train.keep_best would keep a network of an earlier stage; not supported")
    for key, what in _REFUSED.items():
        section: Any = config
        for part in key.split("."):
            section = getattr(section, part)
        if section is not None:
            raise ConfigError(f"pretraining: {what} ({key}) holds the first network's parameters; not supported")
