"""A trained run's model, ready to predict: ``model, preprocess, config = load_run("runs/NAME")``.

The model is rebuilt from the run's ``config.toml`` (the resolved config) and the shapes its data had, recorded in
``preprocessing.json`` (a csv/npz data file: input shape, output width, feature columns, class names,
standardization statistics); the training data is not read. A run on a built-in dataset has no
``preprocessing.json``: its data is generated again for its shapes, and its inputs are used as they are.

Which weights (``weights``):

- ``"final"``: the run's final model, ``checkpoint.pt``'s ``model`` as evaluated: the best epoch's after early
  stopping restored it, the retrained model after Algorithm 7.2 or 7.3, and through the evaluation views the
  run's figures were measured in: Nesterov's theta (not the interim point the parameters hold between steps)
  and, with ``[averaging]``, the Polyak averages (with their BatchNorm statistics).
- ``"best"``: ``best.pt``, the best validation epoch's weights as evaluated (``[train] keep_best``, or early
  stopping that restores; see :mod:`regopt.lab.best_weights`). Under early stopping that restores, the final
  model is the same epoch's, except with ``[averaging]``: early stopping restores that epoch's parameters while
  the final model is evaluated through the latest averages, and ``best.pt`` holds that epoch's averages.
- ``"auto"`` (default): ``best.pt`` if the run kept one, else the final model.

Every file is read with ``torch.load(weights_only=True)``. The model is returned in ``eval()`` mode (dropout and
noise layers off). A multi-task run's model returns a dict of outputs; its prediction is ``output["digit"]``
(:func:`prediction`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from regopt.lab.best_weights import BEST
from regopt.lab.checkpoint import load_checkpoint
from regopt.lab.checkpoint_check import check_model_state
from regopt.lab.config import RunConfig, read_toml, validate
from regopt.lab.data import PREPROCESSING, DataError, Dataset, apply_preprocessing, load_dataset
from regopt.lab.experiment import build_run_model
from regopt.lab.pretraining import GreedyPretraining
from regopt.lab.registry import build_optimizer
from regopt.lab.run_dir import CHECKPOINT, CONFIG, RunDirError
from regopt.optim import PolyakAveraging

Weights = Literal["auto", "best", "final"]


@dataclass(frozen=True)
class Preprocess:
    """Raw inputs in the layout of the run's training file (examples first) -> the model's inputs.

    Applies what training did to the file: float32, then ``(x - mean) / std`` with the training split's
    statistics when the run standardized (:func:`~regopt.lab.data.apply_preprocessing`), so the training file's
    own rows become exactly the tensors the model was trained on.

    Attributes:
        task: ``"classification"`` or ``"regression"``.
        input_shape: the shape of one example.
        output_dim: the model's output width (the class count, or the target width).
        features: the feature columns in the model's order (csv), or ``None``.
        classes: the label of each class index (output ``k`` is ``classes[k]``), or ``None`` for regression.
        standardize: ``{"mean", "std", ...}`` (example shape), or ``None``.
    """

    task: str
    input_shape: tuple[int, ...]
    output_dim: int
    features: tuple[str, ...] | None = None
    classes: tuple[Any, ...] | None = None
    standardize: dict[str, Any] | None = None

    def __call__(self, x: np.ndarray | Tensor) -> Tensor:
        """``x`` of shape ``(n, *input_shape)`` (a 1-D ``x`` for one feature) as float32 model inputs;
        :class:`DataError` naming the shapes if it has another."""
        raw = x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)
        if raw.ndim == 1 and self.input_shape == (1,):
            raw = raw[:, None]
        if raw.shape[1:] != self.input_shape:
            raise DataError(
                f"inputs have examples of shape {raw.shape[1:]}; the run was trained on examples of shape "
                f"{self.input_shape}"
            )
        prepared = apply_preprocessing(raw.astype(np.float32), {"standardize": self.standardize})
        return torch.from_numpy(prepared)


def read_preprocess(path: Path, config: RunConfig) -> Preprocess:
    """The run's :class:`Preprocess`: from ``preprocessing.json``, or the built-in dataset's shapes."""
    file = path / PREPROCESSING
    if not file.is_file():
        data = load_dataset(config.data)  # a built-in dataset: generated, not read from a file
        return Preprocess(data.task, data.input_shape, data.output_dim, classes=data.classes)
    try:
        saved = json.loads(file.read_text())
        task, shape, classes = saved["task"], tuple(saved["input_shape"]), saved["classes"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise RunDirError(f"{file}: unreadable ({type(err).__name__}: {err})") from None
    output_dim = saved.get("output_dim", len(classes) if classes else None)
    if output_dim is None:
        raise RunDirError(f"{file}: no output_dim (written before regopt recorded it); run the config again")
    features = saved.get("features")
    return Preprocess(
        task,
        shape,
        int(output_dim),
        features=tuple(features) if features is not None else None,
        classes=tuple(classes) if classes is not None else None,
        standardize=saved.get("standardize"),
    )


def _shapes_only(config: RunConfig, prep: Preprocess) -> Dataset:
    """A dataset of no examples with the run's shapes and classes: what building the model reads of the data."""
    x = torch.zeros(0, *prep.input_shape)
    if prep.task == "classification":
        y = torch.zeros(0, dtype=torch.int64)
        return Dataset(config.data.name, "classification", x, y, x, y, x, y, prep.output_dim, prep.classes)
    y = torch.zeros(0, prep.output_dim)
    return Dataset(config.data.name, "regression", x, y, x, y, x, y, None)


def _evaluated(config: RunConfig, model: nn.Module, state: dict[str, Any], where: Path) -> None:
    """Put into ``model`` the weights the run evaluated: through the optimizer's evaluation view (Nesterov) and
    the Polyak averages of ``state``'s hook states, as the Trainer's evaluation views do."""
    try:
        trained = [p for p in model.parameters() if p.requires_grad] if config.pretraining is not None else None
        optimizer = build_optimizer(config.optimizer, model, trained)  # as the run (a stage's own optimizer) built it
        view = getattr(optimizer, "evaluation_view", None)
        if view is not None:
            optimizer.load_state_dict(state["optimizer"])
            with view():
                weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
            model.load_state_dict(weights)
        if config.averaging is not None:
            averaging = PolyakAveraging(model, config.averaging.decay, start_step=config.averaging.start_step)
            found = [h for h in state.get("hook_states", []) if isinstance(h, dict) and "averages" in h]
            if found:
                averaging.load_state_dict(found[-1])
                with averaging.averaged():
                    weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
                model.load_state_dict(weights)
    except (KeyError, ValueError, RuntimeError, TypeError) as err:
        raise RunDirError(f"{where}: its optimizer or averaging state does not fit the config ({err})") from None


def load_run(
    path: str | Path, *, weights: Weights = "auto", device: str | torch.device = "cpu"
) -> tuple[nn.Module, Preprocess, RunConfig]:
    """``(model, preprocess, config)`` of a trained run directory: its model rebuilt from ``config.toml`` with the
    final or best weights, in eval mode, and the preprocessing of its training data (see the module docstring).

    ``model(preprocess(x_raw))`` is the run's output for raw inputs in its training file's layout (logits for
    classification; ``preprocess.classes[k]`` names output ``k``).

    Args:
        path: the run directory.
        weights: ``"auto"``, ``"best"`` or ``"final"``.
        device: where the model goes.

    Raises:
        RunDirError: not a run directory, no ``best.pt`` for ``weights="best"``, or files that do not fit.
        CheckpointError: a checkpoint that is missing, unreadable or not regopt's.
    """
    path = Path(path)
    if not (path / CONFIG).is_file():
        raise RunDirError(f"{path}: not a run directory (no {CONFIG})")
    if weights not in ("auto", "best", "final"):
        raise RunDirError(f"weights: {weights!r} is not one of 'auto', 'best', 'final'")
    config = validate(read_toml(path / CONFIG), str(path / CONFIG))
    prep = read_preprocess(path, config)
    best = path / BEST
    if weights == "best" and not best.is_file():
        raise RunDirError(f"{path}: no {BEST} (the run kept no best weights: set [train] keep_best = true)")
    use_best = weights == "best" or (weights == "auto" and best.is_file())
    file = best if use_best else path / CHECKPOINT
    state = load_checkpoint(file, map_location=device)
    if "model" not in state:
        raise RunDirError(f"{file}: no model weights")
    with torch.random.fork_rng(devices=[]):  # building initializes weights: leave the caller's RNG alone
        pretraining = GreedyPretraining(config, prep.input_shape, prep.output_dim) if config.pretraining else None
        model = build_run_model(config, _shapes_only(config, prep), torch.device(device), pretraining)
    if pretraining is not None and isinstance(state.get("position"), dict):  # the network of the final stage
        position = state["position"]
        assert isinstance(model, nn.Sequential)
        for stage in range(1, pretraining.stage_of(position.get("epoch", 0), position.get("batch", 0)) + 1):
            model = pretraining.grow(model, stage)
    check_model_state(state["model"], model, file)  # one line naming a misfit tensor
    model.load_state_dict(state["model"])
    if not use_best:  # best.pt holds weights as evaluated already
        _evaluated(config, model, state, file)
    return model.eval(), prep, config


def prediction(output: Any) -> Tensor:
    """The tensor a run's output is judged by: the output itself, or a multi-task model's ``"digit"`` head."""
    return output["digit"] if isinstance(output, dict) else output


__all__ = ["Preprocess", "Weights", "load_run", "prediction"]
