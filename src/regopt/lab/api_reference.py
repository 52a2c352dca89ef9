"""Where every public name of regopt lives: one table per package, generated from the packages' ``__all__``.

``docs/python.md`` is :func:`markdown`'s output (``python -m regopt.lab.docs`` regenerates it; a test compares
it with a fresh generation and checks that every name of every ``__all__`` below is listed).
"""

from __future__ import annotations

import importlib
import inspect

from regopt.lab.schema.reference import REGENERATE

PACKAGES: dict[str, str] = {
    "regopt": "the flat API: optimizers, initialization, curriculum, pretraining, the Monitor protocol",
    "regopt.optim": "optimizers (sec. 8.3-8.7) and their helpers",
    "regopt.regularize": "penalties, constraints, noise, augmentation, early stopping, multitask, tangents (ch. 7)",
    "regopt.diagnostics": "monitors and measurements of the optimization challenges (sec. 8.2)",
    "regopt.ensemble": "bagging and model averaging (sec. 7.11)",
    "regopt.adversarial": "adversarial examples and training (sec. 7.13)",
    "regopt.lab": "a trained run's model in Python: load_run (regopt predict on the command line)",
    "regopt.lab.runs": "the lab in Python: train a config into a run directory, read one back",
    "regopt.lab.trainer": "the one training loop, its phases and limits, for your own model and data",
    "regopt.lab.objective": "terms of the objective the Trainer minimizes: penalty(model) and term(batch)",
    "regopt.lab.lr_find": "Smith's range test and the stable rates 2 g'g / g'Hg, 2 / lambda_max (regopt lr-find)",
    "regopt.lab.lr_find_report": "which of lr-find's three rates to pick and why; its table, figure and csv",
    "regopt.lab.html_report": "report.html: one self-contained page of a run, or of several compared (regopt report)",
}
"""Module -> what it holds, in the order of the page."""


def summary(obj: object) -> str:
    """The first paragraph of a regopt object's docstring (classes and functions; "" for constants)."""
    if not (inspect.isclass(obj) or inspect.isroutine(obj)) or not getattr(obj, "__module__", "").startswith("regopt"):
        return ""
    return " ".join((inspect.getdoc(obj) or "").split("\n\n")[0].split())


def kind(obj: object) -> str:
    if inspect.isclass(obj):
        return "class"
    return "function" if inspect.isroutine(obj) else "constant"


def markdown() -> str:
    """The page: for each package, a table of its ``__all__`` (name, kind, import line, summary)."""
    lines = [
        "# Where each name lives",
        "",
        "Every public class and function of regopt, by the module to import it from, e.g.",
        "`from regopt.diagnostics import IllConditioningMonitor`. After a plain `import regopt`, every subpackage",
        "is an attribute too (`regopt.diagnostics.IllConditioningMonitor`), imported on first use.",
        "The config keys of the lab are in [config.md](config.md).",
        "",
        f"Generated from the packages' `__all__` by `{REGENERATE}`; do not edit by hand.",
        "",
    ]
    for name, what in PACKAGES.items():
        module = importlib.import_module(name)
        lines += [f"## `{name}`: {what}", "", "| name | kind | summary |", "| --- | --- | --- |"]
        for public in sorted(module.__all__, key=str.lower):
            obj = getattr(module, public)
            text = summary(obj).replace("|", "\\|")
            lines.append(f"| `{name}.{public}` | {kind(obj)} | {text} |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
