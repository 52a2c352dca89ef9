"""Each of regopt's optimizers in a plain PyTorch loop: zero_grad, loss, backward, step.

    python examples/optimizers.py

A small MLP learns scikit-learn's bundled 8x8 digits from the same initialization and the same minibatches with
SGD, momentum, Nesterov momentum, AdaGrad, RMSProp, RMSProp with Nesterov momentum, Adam, AdamW and
delta-bar-delta, then with SGD plus Polyak averaging and SGD plus the linear learning-rate decay of
Algorithm 8.1 (a torch ``LambdaLR``). Each line printed is the final training loss (and test accuracy) of one.

regopt's optimizers are ``torch.optim.Optimizer`` subclasses: nothing in the loop is specific to regopt. The one
thing to know is Nesterov momentum, which regopt writes as the book does: the gradient is taken at the interim
point theta + alpha v, so between steps the parameters *hold* that point, and ``optimizer.evaluation_view()``
swaps theta itself in for evaluation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler

from regopt.optim import SGD, AdaGrad, Adam, AdamW, DeltaBarDelta, PolyakAveraging, RMSProp, linear_decay

BATCH_SIZE = 64

OPTIMIZERS: dict[str, Callable[[Iterable[nn.Parameter]], Optimizer]] = {
    "sgd": lambda params: SGD(params, lr=0.3),
    "momentum": lambda params: SGD(params, lr=0.02, momentum=0.9),
    "nesterov": lambda params: SGD(params, lr=0.02, momentum=0.9, nesterov=True),
    "adagrad": lambda params: AdaGrad(params, lr=0.05),
    "rmsprop": lambda params: RMSProp(params, lr=1e-3),
    "rmsprop_nesterov": lambda params: RMSProp(params, lr=3e-4, momentum=0.9, nesterov=True),
    "adam": lambda params: Adam(params, lr=3e-3),
    "adamw": lambda params: AdamW(params, lr=3e-3, weight_decay=1e-2),
    "delta_bar_delta": lambda params: DeltaBarDelta(params, lr=0.1, kappa=1e-3, phi=0.1),
}


def load_data() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Standardized digits: 1437 training and 360 test images as 64-vectors, labels 0-9."""
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32)
    y = torch.tensor(digits.target)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    x, y = x[order], y[order]
    split = int(0.8 * len(x))
    mean, std = x[:split].mean(0), x[:split].std(0) + 1e-6
    x = (x - mean) / std
    return x[:split], y[:split], x[split:], y[split:]


def make_model() -> nn.Module:
    """The same MLP, with the same initial weights, every time."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


def train(
    model: nn.Module,
    optimizer: Optimizer,
    x: Tensor,
    y: Tensor,
    steps: int,
    *,
    scheduler: LRScheduler | None = None,
    averaging: PolyakAveraging | None = None,
) -> None:
    """The textbook loop, on minibatches drawn by a seeded generator (the same batches for every optimizer)."""
    batches = torch.Generator().manual_seed(1)
    for _ in range(steps):
        index = torch.randint(len(x), (BATCH_SIZE,), generator=batches)
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x[index]), y[index])
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()  # per step, as Algorithm 8.1 decays eps_k with k
        if averaging is not None:
            averaging.update()  # fold the new iterate into the running average


@torch.no_grad()
def evaluate(model: nn.Module, x: Tensor, y: Tensor) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on ``(x, y)``."""
    output = model(x)
    return F.cross_entropy(output, y).item(), (output.argmax(1) == y).float().mean().item()


def main(steps: int = 300) -> dict[str, float]:
    """Train a fresh copy of the model with each optimizer; return the final training loss of each."""
    x, y, x_test, y_test = load_data()
    print(f"{'start':<18} loss {evaluate(make_model(), x, y)[0]:.4f}")
    final: dict[str, float] = {}

    def report(name: str, model: nn.Module) -> None:
        loss, _ = evaluate(model, x, y)
        _, accuracy = evaluate(model, x_test, y_test)
        final[name] = loss
        print(f"{name:<18} loss {loss:.4f}   test accuracy {accuracy:.3f}")

    for name, make_optimizer in OPTIMIZERS.items():
        model = make_model()
        optimizer = make_optimizer(model.parameters())
        train(model, optimizer, x, y, steps)
        # Nesterov (SGD and RMSProp) leaves theta + alpha v in the parameters; evaluate at theta. For the others
        # evaluation_view() is a no-op, and AdaGrad, Adam and delta-bar-delta have nothing to swap.
        view = optimizer.evaluation_view() if isinstance(optimizer, (SGD, RMSProp)) else contextlib.nullcontext()
        with view:
            report(name, model)

    # Polyak averaging (sec. 8.7.3): average the iterates of the second half of training, evaluate the average.
    # While the loss still falls the average lags a little behind; it pays off once SGD bounces around a minimum.
    model = make_model()
    optimizer = SGD(model.parameters(), lr=0.3)
    averaging = PolyakAveraging(model, start_step=steps // 2)
    train(model, optimizer, x, y, steps, averaging=averaging)
    with averaging.averaged():
        report("sgd + polyak", model)

    # Algorithm 8.1's learning-rate decay: eps_k falls linearly from eps_0 to eps_0 / 100 at k = tau.
    model = make_model()
    optimizer = SGD(model.parameters(), lr=0.3)
    scheduler = LambdaLR(optimizer, linear_decay(tau=steps, final_fraction=0.01))
    train(model, optimizer, x, y, steps, scheduler=scheduler)
    report("sgd + linear decay", model)
    return final


if __name__ == "__main__":
    main()
