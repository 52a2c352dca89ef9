"""One argument order for every function that scores a model's loss on data: ``(model, loss_fn, x, y, ...)``.

Issue 14, 3.7: ``difficulty_by_loss(model, x, y, loss_fn)`` and ``smoothed_loss(model, loss_fn, x, y)`` were
siblings with different orders. The package's majority order (the attacks, ``adversarial_loss``,
``per_example_gradients``, ``gradient_noise``, ``HessianOperator``) is ``(model, loss_fn, x, y)``; this test
finds every public function and method of the techniques that takes all four and checks their order, so a new
one cannot drift.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable, Iterator

import regopt

ORDER = ("model", "loss_fn", "x", "y")


def _public_callables() -> Iterator[tuple[str, Callable]]:
    for info in pkgutil.walk_packages(regopt.__path__, "regopt."):
        if info.name.startswith(("regopt.lab", "regopt.cli", "regopt.__main__")):
            continue  # the lab and CLI wire techniques together; the family lives in the techniques
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue
            if inspect.isclass(obj):
                for attr, member in vars(obj).items():
                    if callable(member) and (attr in ("__init__", "__call__") or not attr.startswith("_")):
                        yield f"{info.name}.{name}.{attr}", member
            elif callable(obj):
                yield f"{info.name}.{name}", obj


def _family() -> dict[str, list[str]]:
    found = {}
    for name, fn in _public_callables():
        try:
            parameters = inspect.signature(fn).parameters.values()
        except (TypeError, ValueError):
            continue
        positional = [p.name for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        positional = [p for p in positional if p != "self"]
        if set(ORDER) <= set(positional):
            found[name] = positional
    return found


def test_the_family_is_found() -> None:
    family = _family()
    for name in (
        "regopt.curriculum.difficulty_by_loss",
        "regopt.curriculum.smoothed_loss",
        "regopt.adversarial.attacks.fgsm",
        "regopt.adversarial.training.adversarial_loss",
        "regopt.diagnostics.noise.gradient_noise",
    ):
        assert name in family


def test_every_function_of_the_family_takes_model_loss_fn_x_y_first() -> None:
    wrong = {name: params[:4] for name, params in _family().items() if tuple(params[:4]) != ORDER}
    assert not wrong, f"expected (model, loss_fn, x, y, ...), got {wrong}"


def test_curriculum_siblings_have_the_same_leading_signature() -> None:
    from regopt.curriculum import difficulty_by_loss, smoothed_loss

    def leading(fn: Callable) -> list[str]:
        return list(inspect.signature(fn).parameters)[:4]

    assert leading(difficulty_by_loss) == leading(smoothed_loss) == list(ORDER)
