"""regopt: regularization and optimization for training deep models, for PyTorch.

The techniques of Goodfellow, Bengio & Courville, *Deep Learning* (2016), chapters 7-8, as building blocks that
drop into any PyTorch loop, a small lab (``regopt.lab``) that trains and compares models from a TOML config, and
a command line (``regopt``).
"""

from regopt.monitor import Monitor

__version__ = "0.1.0"

__all__ = ["Monitor", "__version__"]
