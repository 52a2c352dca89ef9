"""Long-term dependencies (Goodfellow et al. 2016, sec. 8.2.5): vanishing and exploding gradients through time.

A recurrent network applies the same map at every step, ``h_t = f(W h_{t-1} + U x_t + b)``, so the gradient of a
loss at the last step ``T`` with respect to an earlier state is a product of ``T - t`` Jacobians:

    dL/dh_t = (prod_{k=t+1..T} diag(f'(.)) W)^T dL/dh_T.

For a linear recurrence ``h_t = W h_{t-1}`` with ``W = V diag(lambda) V^-1`` this is ``W^(T-t)``: components along
eigenvalues with ``|lambda| < 1`` **vanish** and those with ``|lambda| > 1`` **explode** geometrically, which is why
a recurrent net struggles to learn dependencies over many steps. :func:`hidden_state_gradient_norms` measures
``||dL/dh_t||`` for every ``t`` on a real ``nn.RNN``/``nn.GRU``/``nn.LSTM``, and :func:`plot_hidden_gradient_norms`
draws the curves on a log scale, where geometric decay or growth is a straight line.

Example::

    rnn = nn.RNN(4, 16)
    with torch.no_grad():
        rnn.weight_hh_l0.copy_(0.5 * torch.eye(16))   # spectral radius 0.5: vanishing
    norms = hidden_state_gradient_norms(rnn, torch.randn(30, 8, 4))   # norms[t-1] / norms[t] <= ~0.5
    plot_hidden_gradient_norms({"radius 0.5": norms}, "bptt.png")

References:
    Bengio, Simard & Frasconi (1994), "Learning long-term dependencies with gradient descent is difficult".
    Pascanu, Mikolov & Bengio (2013), "On the difficulty of training recurrent neural networks".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from regopt.diagnostics.landscape import save_png


def hidden_state_gradient_norms(
    rnn: nn.RNN | nn.GRU | nn.LSTM,
    x: Tensor,
    loss_fn: Callable[[Tensor], Tensor] | None = None,
    *,
    h0: Tensor | tuple[Tensor, Tensor] | None = None,
) -> Tensor:
    """``||dL/dh_t||`` for ``t = 1..T``, averaged over the batch, for a loss ``L`` on the last step's output.

    The layer is run one step at a time, so that the state after each step is a tensor of the graph;
    ``dL/dh_t`` is the gradient of ``L`` with respect to that state, treating the rest of the sequence as a
    function of it. The state is the full one of all layers (``(num_layers, batch, hidden)``), and for an LSTM
    the pair ``(h_t, c_t)``: the cell state is the LSTM's path for long-term gradients. The norm is taken per
    example over the whole state, then averaged over the batch. No ``.grad`` of the layer's parameters is touched.

    Args:
        rnn: a unidirectional ``nn.RNN``, ``nn.GRU`` or ``nn.LSTM`` (any number of layers, ``batch_first`` either
            way).
        x: the input sequence, ``(T, batch, input_size)`` (or ``(batch, T, input_size)`` if ``batch_first``), or
            unbatched ``(T, input_size)``.
        loss_fn: ``loss_fn(last_output) -> scalar`` on the last step's output of the top layer, shape
            ``(batch, hidden_size)`` (``proj_size`` for a projected LSTM). Default: ``0.5 * ||h_T||^2`` summed
            over the batch (a sum, so each example's gradient is its own loss's).
        h0: initial state (default zeros), as ``rnn`` takes it.

    Returns:
        A 1-D tensor of length ``T``; entry ``t - 1`` is the mean over the batch of ``||dL/dh_t||``. Vanishing
        gradients show as entries shrinking geometrically toward ``t = 1``, exploding ones as entries growing.
    """
    if not isinstance(rnn, (nn.RNN, nn.GRU, nn.LSTM)):
        raise ValueError(f"rnn must be an nn.RNN, nn.GRU or nn.LSTM, got {type(rnn).__name__}")
    if rnn.bidirectional:
        raise ValueError("rnn must be unidirectional: a bidirectional layer's last output depends on every step")
    if x.dim() == 2:  # unbatched: a batch of one, and so the state
        x = x.unsqueeze(0 if rnn.batch_first else 1)
        if h0 is not None:
            h0 = (h0[0].unsqueeze(1), h0[1].unsqueeze(1)) if isinstance(h0, tuple) else h0.unsqueeze(1)
    if x.dim() != 3:
        raise ValueError(f"x must have 2 or 3 dimensions, got shape {tuple(x.shape)}")
    time_dim = 1 if rnn.batch_first else 0
    steps = x.shape[time_dim]
    if steps < 1:
        raise ValueError("x must hold at least one time step")
    lstm = isinstance(rnn, nn.LSTM)
    state: Any = h0  # h, or (h, c) for an LSTM
    states: list[tuple[Tensor, ...]] = []
    with torch.enable_grad():
        for t in range(steps):
            _, state = rnn(x.narrow(time_dim, t, 1), state)
            states.append(tuple(state) if lstm else (state,))
        # the last output of the top layer is the top layer's final h; take it from the state, so that the loss
        # is a function of h_T in the graph (the output sequence is a sibling of the state, not a child of it)
        last = states[-1][0][-1]
        loss = 0.5 * last.square().sum() if loss_fn is None else loss_fn(last)
        flat = [s for step in states for s in step]
        grads = torch.autograd.grad(loss, flat, allow_unused=True, materialize_grads=True)
    per_step = len(states[0])
    norms = []
    for t in range(steps):
        squares = torch.stack([g.square().sum(dim=(0, 2)) for g in grads[t * per_step : (t + 1) * per_step]]).sum(0)
        norms.append(squares.sqrt().mean())
    return torch.stack(norms).detach()


def plot_hidden_gradient_norms(norms_by_label: Mapping[str, Tensor], path: str | Path, *, title: str = "") -> None:
    """Plot ``||dL/dh_t||`` against ``t`` for each labelled curve of :func:`hidden_state_gradient_norms`, on a log
    y-axis (geometric vanishing or explosion is a straight line); save a PNG at ``path`` atomically."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 4))
    ax = fig.subplots()
    for label, norms in norms_by_label.items():
        values = torch.as_tensor(norms, dtype=torch.float64).cpu()
        ax.plot(range(1, len(values) + 1), values.numpy(), marker=".", label=label)
    ax.set_yscale("log")
    ax.set_xlabel("time step t")
    ax.set_ylabel(r"$\|\partial L / \partial h_t\|$  (loss at the last step T)")
    ax.set_title(title or "Gradients through time: vanishing and exploding")
    ax.grid(alpha=0.3, which="both")
    if norms_by_label:
        ax.legend()
    save_png(fig, path)
