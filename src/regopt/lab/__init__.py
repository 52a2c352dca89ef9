"""The lab: configs, run directories and the one training loop (see ``docs/python.md`` for its modules).

:func:`load_run` gives a trained run directory's ``(model, preprocess, config)``.
"""

from regopt.lab.load_run import load_run

__all__ = ["load_run"]
