"""Multi-task learning (Goodfellow et al. 2016, sec. 7.7): a shared trunk regularized by several tasks' losses.

Tasks share the *generic parameters* of a trunk, which computes a common representation ``h = trunk(x)``, and
each has its own *task-specific parameters*, a head ``y_t = head_t(h)``. Training on the weighted sum of the
tasks' losses pushes the shared parameters towards values that serve every task, which improves generalization
when the tasks have something in common (the statistical strength of the shared part grows with the examples of
all tasks).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

import torch
from torch import Tensor, nn

from regopt._checks import is_finite_real

__all__ = [
    "DIGIT_TASK_CLASSES",
    "MultiTaskLoss",
    "MultiTaskModel",
    "digit_tasks",
    "stack_targets",
    "unstack_targets",
]

#: Number of classes of each task of :func:`digit_tasks`, in its order (e.g. to size the heads).
DIGIT_TASK_CLASSES: dict[str, int] = {"digit": 10, "parity": 2, "greater_than_4": 2}


class MultiTaskModel(nn.Module):
    """A shared trunk (generic parameters) followed by one head per task (task-specific parameters).

    ``forward(x)`` returns ``{task: head(trunk(x))}`` in the order of ``heads``. The trunk runs once per batch.

    Args:
        trunk: maps the input to the shared representation ``h``.
        heads: task name -> module mapping ``h`` to that task's output. Names must be non-empty and contain
            no ``"."`` (they become submodule names).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> model = MultiTaskModel(nn.Sequential(nn.Linear(64, 32), nn.ReLU()),
        ...                        {task: nn.Linear(32, k) for task, k in DIGIT_TASK_CLASSES.items()})
        >>> {task: tuple(out.shape) for task, out in model(torch.randn(5, 64)).items()}
        {'digit': (5, 10), 'parity': (5, 2), 'greater_than_4': (5, 2)}

    Parameters tied between the trunk and a head are reported by both :meth:`shared_parameters` and
    :meth:`task_parameters`.
    """

    def __init__(self, trunk: nn.Module, heads: Mapping[str, nn.Module]) -> None:
        super().__init__()
        if not isinstance(trunk, nn.Module):
            raise TypeError(f"trunk must be an nn.Module, got {type(trunk).__name__}")
        if not isinstance(heads, Mapping) or not heads:
            raise ValueError(f"heads must be a non-empty mapping of task name to module, got {heads!r}")
        for task, head in heads.items():
            if not isinstance(task, str) or not task or "." in task:
                raise ValueError(f"task names must be non-empty strings without '.', got {task!r}")
            if not isinstance(head, nn.Module):
                raise TypeError(f"head {task!r} must be an nn.Module, got {type(head).__name__}")
        self.trunk = trunk
        self.heads = nn.ModuleDict(dict(heads))

    @property
    def tasks(self) -> tuple[str, ...]:
        """The task names, in order."""
        return tuple(self.heads.keys())

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        h = self.trunk(x)  # shared representation
        return {task: head(h) for task, head in self.heads.items()}

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        """The generic parameters (the trunk's), which every task's loss trains."""
        return self.trunk.parameters()

    def task_parameters(self, task: str) -> Iterator[nn.Parameter]:
        """The parameters specific to ``task`` (its head's), trained by that task's loss only."""
        if task not in self.heads:
            raise KeyError(f"unknown task {task!r} (tasks: {', '.join(self.tasks)})")
        return self.heads[task].parameters()


class MultiTaskLoss:
    r"""Weighted sum of per-task losses: ``L = sum_t w_t * loss_t(outputs[t], targets[t])``.

    Args:
        losses: task name -> ``(output, target) -> scalar``; its order is the task order (the columns of a
            stacked target tensor).
        weights: task name -> ``w_t >= 0``; tasks not named get ``1.0`` (default: all ``1.0``). Unknown names
            are an error.

    Targets are a mapping with the same task names as ``losses``, or one ``(N, T)`` tensor whose column ``j`` is
    the target of the ``j``-th task (see :func:`stack_targets`), which suits a Trainer that batches a single
    ``y``. Columns are passed as they are: keep classification targets ``int64`` (as :func:`digit_tasks` does),
    or use a loss that casts, e.g. ``lambda out, t: F.cross_entropy(out, t.long())``.

    After each call, :attr:`last` holds the per-task (unweighted) losses as floats, for logging; they are read
    from the device only when :attr:`last` is accessed.

    Example:
        >>> import math
        >>> import torch
        >>> import torch.nn.functional as F
        >>> loss_fn = MultiTaskLoss({"digit": F.cross_entropy, "parity": F.cross_entropy}, {"parity": 0.5})
        >>> outputs = {"digit": torch.zeros(4, 10), "parity": torch.zeros(4, 2)}
        >>> y = torch.tensor([0, 3, 5, 8])
        >>> total = loss_fn(outputs, {"digit": y, "parity": y % 2})
        >>> round(total.item(), 4) == round(math.log(10) + 0.5 * math.log(2), 4)
        True
    """

    def __init__(
        self,
        losses: Mapping[str, Callable[[Tensor, Tensor], Tensor]],
        weights: Mapping[str, float] | None = None,
    ) -> None:
        if not isinstance(losses, Mapping) or not losses:
            raise ValueError(f"losses must be a non-empty mapping of task name to loss function, got {losses!r}")
        for task, fn in losses.items():
            if not callable(fn):
                raise TypeError(f"loss of task {task!r} must be callable, got {type(fn).__name__}")
        weights = dict(weights or {})
        unknown = [task for task in weights if task not in losses]
        if unknown:
            raise ValueError(f"weights name tasks {unknown} that have no loss (tasks: {list(losses)})")
        for task, w in weights.items():
            if not is_finite_real(w) or w < 0:
                raise ValueError(f"weight of task {task!r} must be a finite number >= 0, got {w!r}")
        self.losses = dict(losses)
        self.weights = {task: float(weights.get(task, 1.0)) for task in losses}
        self._last: dict[str, Tensor] = {}

    @property
    def tasks(self) -> tuple[str, ...]:
        """The task names, in order (the columns of a stacked target tensor)."""
        return tuple(self.losses)

    @property
    def last(self) -> dict[str, float]:
        """Per-task unweighted losses of the last call (empty before the first)."""
        return {task: float(value) for task, value in self._last.items()}

    def __call__(self, outputs: Mapping[str, Tensor], targets: Mapping[str, Tensor] | Tensor) -> Tensor:
        _check_tasks("outputs", outputs, self.tasks)
        if isinstance(targets, Tensor):
            targets = unstack_targets(targets, self.tasks)
        else:
            _check_tasks("targets", targets, self.tasks)
        per_task = {task: fn(outputs[task], targets[task]) for task, fn in self.losses.items()}
        self._last = {task: value.detach() for task, value in per_task.items()}
        total: Tensor | None = None
        for task, value in per_task.items():
            term = self.weights[task] * value
            total = term if total is None else total + term
        assert total is not None  # at least one task
        return total


def digit_tasks(y: Tensor) -> dict[str, Tensor]:
    """The multi-target view of digit labels: ``{"digit": y, "parity": y % 2, "greater_than_4": y > 4}``.

    Three related classification tasks on the same images (10, 2 and 2 classes, :data:`DIGIT_TASK_CLASSES`),
    all ``int64`` tensors of shape ``(N,)``: a trunk shared by the three learns features useful to all.

    Args:
        y: integer digit labels in ``0..9``, shape ``(N,)``.
    """
    if not isinstance(y, Tensor) or y.dim() != 1 or y.dtype.is_floating_point or y.dtype.is_complex:
        raise ValueError(f"y must be a 1-D integer tensor of digit labels, got {_describe(y)}")
    if y.dtype == torch.bool:
        raise ValueError("y must be a 1-D integer tensor of digit labels, got a bool tensor")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) > 9):
        raise ValueError(f"digit labels must be in 0..9, got values from {int(y.min())} to {int(y.max())}")
    y = y.long()
    return {"digit": y, "parity": y % 2, "greater_than_4": (y > 4).long()}


def stack_targets(targets: Mapping[str, Tensor], tasks: Sequence[str] | None = None) -> Tensor:
    """Stack per-task targets of shape ``(N,)`` into one ``(N, T)`` tensor, column ``j`` for ``tasks[j]``.

    ``tasks`` defaults to the mapping's order. The dtype is the promotion of the targets' dtypes (``int64`` for
    :func:`digit_tasks`). :func:`unstack_targets` is the inverse.
    """
    tasks = list(targets) if tasks is None else list(tasks)
    _check_tasks("targets", targets, tuple(tasks))
    if not tasks:
        raise ValueError("stack_targets needs at least one task")
    columns = [targets[task] for task in tasks]
    for task, column in zip(tasks, columns, strict=True):
        if not isinstance(column, Tensor) or column.dim() != 1 or len(column) != len(columns[0]):
            raise ValueError(
                f"target of task {task!r} must be a 1-D tensor of length {len(columns[0])}, got {_describe(column)}"
            )
    dtype = columns[0].dtype
    for column in columns[1:]:
        dtype = torch.promote_types(dtype, column.dtype)
    return torch.stack([column.to(dtype) for column in columns], dim=1)


def unstack_targets(y: Tensor, tasks: Sequence[str]) -> dict[str, Tensor]:
    """Split an ``(N, T)`` target tensor into ``{tasks[j]: y[:, j]}`` (views, no copy)."""
    tasks = tuple(tasks)
    if not isinstance(y, Tensor) or y.dim() != 2 or y.shape[1] != len(tasks):
        raise ValueError(
            f"stacked targets must have shape (N, {len(tasks)}) for tasks {list(tasks)}, got {_describe(y)}"
        )
    return {task: y[:, j] for j, task in enumerate(tasks)}


def _check_tasks(what: str, given: Mapping[str, object], tasks: tuple[str, ...]) -> None:
    if not isinstance(given, Mapping):
        raise TypeError(f"{what} must be a mapping of task name to tensor, got {type(given).__name__}")
    missing = [t for t in tasks if t not in given]
    extra = [t for t in given if t not in tasks]
    if missing or extra:
        raise ValueError(f"{what} do not match the tasks {list(tasks)}: missing {missing}, unexpected {extra}")


def _describe(value: object) -> str:
    if isinstance(value, Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return type(value).__name__
