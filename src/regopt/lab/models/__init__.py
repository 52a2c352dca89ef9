"""Model builders: the ``[model]`` section of a run config -> an ``nn.Module``.

Built-in models are flat ``nn.Sequential`` networks of standard torch modules with named children (``fc1``,
``bn1``, ``act1``, ``dropout1``, ..., ``head``), so parameter selectors, noise layers and hooks can address
hidden layers by name or module type; the GRU is a small module with ``gru`` and ``head`` children.

Example::

    from regopt.lab.config import Cnn1dConfig
    from regopt.lab.models import build_model, count_parameters

    model = build_model(Cnn1dConfig(name="cnn1d"), input_shape=(40,), output_dim=10)
    count_parameters(model)  # 5210, as in the MNIST-1D paper
"""

from regopt.lab.models.base import ACTIVATIONS, ModelError, count_parameters
from regopt.lab.models.registry import MODELS, build_model

__all__ = ["ACTIVATIONS", "MODELS", "ModelError", "build_model", "count_parameters"]
