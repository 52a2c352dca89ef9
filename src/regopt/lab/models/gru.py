"""The MNIST-1D paper's recurrent baseline: a GRU over the features read as a sequence."""

from __future__ import annotations

import torch
from torch import nn

from regopt.lab.config import GruConfig
from regopt.lab.models.base import sequence_shape


class GruClassifier(nn.Module):
    """``nn.GRU`` over ``(n, L, F)`` sequences and a ``Linear`` head on the final hidden state.

    Inputs of shape ``(n, L)`` are read as L scalars, ``(n, L, 1)``. The head sees the last layer's hidden
    state after the whole sequence: for a bidirectional GRU, the forward direction's state after step L
    concatenated with the backward direction's state after step 1 (``2 * hidden_size`` features).

    Args:
        length: sequence length L.
        features: features per step F.
        hidden_size: GRU hidden units per direction.
        output_dim: number of outputs.
        num_layers: stacked GRU layers. Default: 1.
        bidirectional: also run the sequence backwards. Default: True.

    Example:
        >>> model = GruClassifier(40, 1, hidden_size=6, output_dim=10)
        >>> model(torch.zeros(3, 40)).shape
        torch.Size([3, 10])

    Note:
        The paper's GRU (github.com/greydanus/mnist1d) feeds the outputs of *all* time steps to its linear
        head; this one classifies from the final states only, so its head does not grow with L.

    References:
        Cho et al. (2014), GRU; Greydanus (2020), "Scaling down deep learning".
    """

    def __init__(
        self,
        length: int,
        features: int,
        hidden_size: int,
        output_dim: int,
        *,
        num_layers: int = 1,
        bidirectional: bool = True,
    ) -> None:
        super().__init__()
        self.length = length
        self.features = features
        self.directions = 2 if bidirectional else 1
        self.gru = nn.GRU(features, hidden_size, num_layers=num_layers, batch_first=True, bidirectional=bidirectional)
        self.head = nn.Linear(self.directions * hidden_size, output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        _, h_n = self.gru(x.reshape(n, self.length, self.features))
        # h_n: (num_layers * directions, n, hidden); the last `directions` rows belong to the top layer.
        final = h_n[-self.directions :].transpose(0, 1).reshape(n, -1)
        return self.head(final)


def build_gru(cfg: GruConfig, input_shape: tuple[int, ...], output_dim: int) -> GruClassifier:
    """A :class:`GruClassifier` for inputs of shape ``(L,)`` or ``(L, F)``.

    Raises:
        ModelError: when ``input_shape`` has more than two axes.
    """
    length, features = sequence_shape("gru", input_shape)
    return GruClassifier(
        length,
        features,
        cfg.hidden_size,
        output_dim,
        num_layers=cfg.num_layers,
        bidirectional=cfg.bidirectional,
    )
