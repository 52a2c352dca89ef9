"""Early stopping (Algorithm 7.1) in a plain PyTorch loop, with the best weights restored.

    python examples/regularize_early_stopping.py

``EarlyStopping`` is told the validation metrics after every epoch and answers ``(stop, reason)``; it keeps a
copy of the weights of the best epoch and loads them back into the model when it stops. An over-parameterized
MLP on 200 digits over-fits quickly: its validation loss turns upward while its training loss goes on falling.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

from regopt.regularize import EarlyStopping


def load_data(train_size: int = 200, val_size: int = 300):
    """Digits as 64-vectors in [0, 1]: training, validation and test splits."""
    digits = load_digits()
    x, y = torch.tensor(digits.data / 16.0, dtype=torch.float32), torch.tensor(digits.target)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    x, y = x[order], y[order]
    val_end = train_size + val_size
    return (x[:train_size], y[:train_size]), (x[train_size:val_end], y[train_size:val_end]), (x[val_end:], y[val_end:])


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    output = model(x)
    return {"loss": F.cross_entropy(output, y).item(), "error": (output.argmax(1) != y).float().mean().item()}


def main(max_epochs: int = 200, patience: int = 10) -> dict[str, float]:
    (x, y), (x_val, y_val), (x_test, y_test) = load_data()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    stopper = EarlyStopping(model, monitor="val_loss", patience=patience, restore_best=True)
    for epoch in range(1, max_epochs + 1):
        for index in torch.randperm(len(x)).split(32):
            loss = F.cross_entropy(model(x[index]), y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        val = evaluate(model, x_val, y_val)
        stop, reason = stopper.after_epoch(epoch, {"val_loss": val["loss"], "val_error": val["error"]})
        if stop:  # the best weights are already back in the model
            print(reason)
            break
    else:
        stopper.restore()  # ran out of epochs first: still keep the best ones
    restored, test = evaluate(model, x_val, y_val), evaluate(model, x_test, y_test)
    print(f"best epoch {stopper.best_epoch}: val loss {restored['loss']:.4f}, test error {test['error']:.3f}")
    return {
        "best_epoch": float(stopper.best_epoch or 0),
        "stopped_epoch": float(stopper.stopped_epoch or 0),
        "best_val_loss": float(stopper.best_value or 0.0),
        "restored_val_loss": restored["loss"],
        "last_val_loss": val["loss"],
        "test_error": test["error"],
    }


if __name__ == "__main__":
    torch.set_num_threads(1)  # tiny model: one thread is fastest, and robust on a busy machine
    main()
