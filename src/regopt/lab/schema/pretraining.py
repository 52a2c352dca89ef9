"""Config section ``[pretraining]``: greedy supervised pretraining (sec. 8.7.4)."""

from __future__ import annotations

from pydantic import PositiveInt

from regopt.lab.schema.base import Strict


class PretrainingConfig(Strict):
    """Grow the MLP of ``[model]`` one hidden layer at a time: train it with the first of ``model.widths`` for
    ``epochs_per_stage`` epochs, then add each further width as a new hidden layer (with a fresh output layer)
    and train again, each stage with a fresh optimizer; then fine-tune all layers. ``train.epochs`` is at most
    ``epochs_per_stage`` times the number of stages (``len(widths)``, plus one with ``finetune``); fewer ends the
    run early, and ``--resume`` with more goes on from there."""

    epochs_per_stage: PositiveInt
    """Epochs of each stage."""
    freeze_existing: bool = False
    """Train only the new layer and the output layer at each stage (classic greedy layer-wise training)."""
    finetune: bool = True
    """After the last layer is added, unfreeze everything and train one more stage."""
