"""Long-term dependencies: gradients through time vanish for recurrent weights a*I with a < 1, explode for a > 1."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from regopt.diagnostics.long_term import hidden_state_gradient_norms, plot_hidden_gradient_norms


def recurrent(a: float, *, nonlinearity: str = "tanh", hidden: int = 5, orthogonal: bool = False) -> nn.RNN:
    """A one-layer RNN with W_hh = a * I (or a * a random orthogonal matrix), positive W_ih and zero biases."""
    torch.manual_seed(0)
    rnn = nn.RNN(3, hidden, nonlinearity=nonlinearity).double()
    with torch.no_grad():
        w = (
            torch.linalg.qr(torch.randn(hidden, hidden, dtype=torch.float64))[0]
            if orthogonal
            else torch.eye(hidden, dtype=torch.float64)
        )
        rnn.weight_hh_l0.copy_(a * w)
        rnn.weight_ih_l0.uniform_(0.1, 1.0)
        rnn.bias_hh_l0.zero_()
        rnn.bias_ih_l0.zero_()
    return rnn


def positive_inputs(steps: int = 12, batch: int = 4, scale: float = 1.0) -> torch.Tensor:
    return scale * torch.rand(steps, batch, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


@pytest.mark.parametrize("a", [0.5, 0.9, 1.5])
def test_linear_recurrence_ratio_of_consecutive_norms_is_a(a: float) -> None:
    # ReLU on a positive state is the identity: h_t = a h_{t-1} + W x_t exactly, so dL/dh_t = a^(T-t) h_T
    rnn, x = recurrent(a, nonlinearity="relu"), positive_inputs()
    norms = hidden_state_gradient_norms(rnn, x)
    assert norms.shape == (12,)
    torch.testing.assert_close(norms[:-1] / norms[1:], torch.full((11,), a, dtype=norms.dtype), rtol=1e-10, atol=0)
    _, h_last = rnn(x)
    assert norms[-1].item() == pytest.approx(h_last[0].norm(dim=1).mean().item(), rel=1e-12)  # dL/dh_T = h_T


@pytest.mark.parametrize(("a", "orthogonal"), [(0.5, False), (0.5, True), (1.5, False), (1.5, True)])
def test_tanh_rnn_with_small_states_vanishes_or_explodes_geometrically(a: float, orthogonal: bool) -> None:
    rnn, x = recurrent(a, orthogonal=orthogonal), positive_inputs(steps=16, scale=1e-6)
    norms = hidden_state_gradient_norms(rnn, x)
    ratios = norms[:-1] / norms[1:]
    torch.testing.assert_close(ratios, torch.full_like(ratios, a), rtol=1e-3, atol=0)
    if a < 1:
        assert norms[0] < 1e-4 * norms[-1]  # 0.5^15: vanishing going back in time
    else:
        assert norms[0] > 400 * norms[-1]  # 1.5^15 = 438: exploding


def reference_norms(rnn: nn.RNNBase, x: torch.Tensor, loss_fn) -> torch.Tensor:
    """dL/d state_t by re-running the rest of the sequence from state_t as a leaf (batch_first inputs)."""
    lstm = isinstance(rnn, nn.LSTM)
    norms, state = [], None
    steps = x.shape[1]
    for t in range(steps):
        with torch.no_grad():
            _, state = rnn(x[:, t : t + 1], state)
        leaf = tuple(s.clone().requires_grad_(True) for s in (state if lstm else (state,)))
        if t + 1 < steps:
            _, final = rnn(x[:, t + 1 :], leaf if lstm else leaf[0])
        else:
            final = leaf if lstm else leaf[0]
        last = (final[0] if lstm else final)[-1]
        grads = torch.autograd.grad(loss_fn(last), leaf, allow_unused=True, materialize_grads=True)
        norms.append(sum(g.square().sum(dim=(0, 2)) for g in grads).sqrt().mean())
    return torch.stack(norms)


@pytest.mark.parametrize("kind", [nn.GRU, nn.LSTM, nn.RNN])
def test_gru_lstm_and_stacked_layers_match_a_rerun_from_each_state(kind: type[nn.RNNBase]) -> None:
    torch.manual_seed(0)
    rnn = kind(3, 4, num_layers=2, batch_first=True).double()
    x = torch.randn(5, 7, 3, dtype=torch.float64)

    def loss_fn(last: torch.Tensor) -> torch.Tensor:
        return (last.sum(dim=1) - 1.0).square().sum()

    norms = hidden_state_gradient_norms(rnn, x, loss_fn)
    assert norms.shape == (7,) and torch.isfinite(norms).all() and (norms > 0).all()
    torch.testing.assert_close(norms, reference_norms(rnn, x, loss_fn), rtol=1e-10, atol=1e-14)
    assert all(p.grad is None for p in rnn.parameters())  # parameter gradients untouched


def test_unbatched_input_initial_state_and_bad_layers() -> None:
    rnn = recurrent(0.5, nonlinearity="relu")
    x = positive_inputs(steps=6, batch=1)
    batched = hidden_state_gradient_norms(rnn, x, h0=torch.ones(1, 1, 5, dtype=torch.float64))
    unbatched = hidden_state_gradient_norms(rnn, x[:, 0], h0=torch.ones(1, 5, dtype=torch.float64))
    torch.testing.assert_close(batched, unbatched, rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match="unidirectional"):
        hidden_state_gradient_norms(nn.GRU(3, 4, bidirectional=True), torch.randn(5, 2, 3))
    with pytest.raises(ValueError, match=r"nn\.RNN, nn\.GRU or nn\.LSTM"):
        hidden_state_gradient_norms(nn.Linear(3, 4), torch.randn(5, 2, 3))  # type: ignore[arg-type]


def test_plot_hidden_gradient_norms_writes_a_png(tmp_path) -> None:
    x = positive_inputs(steps=20, scale=1e-4)
    curves = {f"W_hh = {a} I": hidden_state_gradient_norms(recurrent(a), x) for a in (0.5, 1.0, 1.5)}
    path = tmp_path / "bptt.png"
    plot_hidden_gradient_norms(curves, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["bptt.png"]
