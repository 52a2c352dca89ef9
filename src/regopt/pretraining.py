"""Greedy supervised pretraining (sec. 8.7.4): train a shallow network, add a layer, train again, ...

The book: "greedy algorithms break a problem into many components, then solve for the optimal version of each
component in isolation"; greedy *supervised* pretraining (Bengio et al. 2007) trains a network with one hidden
layer, then adds a hidden layer on top of the trained ones and trains again, optionally keeping the earlier
layers fixed, and may end with a joint *fine-tuning* of the whole network. Simonyan & Zisserman (2015) grew
their deep VGG networks from shallow trained ones in the same spirit.

The building blocks work on flat ``nn.Sequential`` networks whose last child is the linear output layer
(``head``), such as the lab's MLP (``flatten, fc1, act1, ..., head``):

- :func:`freeze` / :func:`unfreeze`: ``requires_grad`` off / on for every parameter of a module.
- :func:`grow_mlp`: insert ``Linear + activation`` before the head, with a fresh head.
- :func:`greedy_supervised_pretraining`: the whole procedure around a training function of yours.

Example::

    import torch
    from torch import nn
    from regopt.pretraining import greedy_supervised_pretraining

    def make_first():
        return nn.Sequential(nn.Linear(40, 64), nn.ReLU(), nn.Linear(64, 10))

    def train(model):  # any loop; build the optimizer over the trainable parameters
        opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
        ...

    model = greedy_supervised_pretraining(make_first, [64, 64], train, freeze_existing=True)
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TypeVar

from torch import nn

__all__ = ["freeze", "greedy_supervised_pretraining", "grow_mlp", "unfreeze"]

M = TypeVar("M", bound=nn.Module)


def freeze(module: M) -> M:
    """Stop training ``module``: ``requires_grad = False`` and ``grad = None`` for all its parameters.

    Frozen parameters receive no gradient, and torch's and regopt's optimizers skip a parameter whose ``grad``
    is ``None``, so an optimizer built over all parameters leaves them unchanged (momentum or Adam state
    included). Clearing ``grad`` makes that true even when the caller zeroes gradients with
    ``set_to_none=False``. Batch normalization layers in train mode still update their running statistics
    (buffers, not parameters); call ``module.eval()`` too to fix those.

    Returns:
        ``module`` itself.
    """
    for parameter in module.parameters():
        parameter.requires_grad_(False)
        parameter.grad = None
    return module


def unfreeze(module: M) -> M:
    """Train ``module`` again: ``requires_grad = True`` for all its parameters. Returns ``module``."""
    for parameter in module.parameters():
        parameter.requires_grad_(True)
    return module


def _free_name(names: set[str], stem: str, number: int) -> str:
    while f"{stem}{number}" in names:
        number += 1
    return f"{stem}{number}"


def grow_mlp(
    model: nn.Sequential,
    width: int,
    activation: Callable[[], nn.Module] = nn.ReLU,
    *,
    freeze_existing: bool = False,
) -> nn.Sequential:
    """A deeper network: ``model`` without its head, a new ``Linear(h, width)`` and activation, a new head.

    The network returned holds the *same module objects* as ``model`` for every child but the head, so their
    trained weights carry over exactly (and ``model`` itself still works, with its old head). The head is
    always replaced by a fresh ``Linear(width, out_features)``, even when ``width`` equals the old head's input
    size: the old head was trained to read the old top layer, and the new randomly initialized layer's
    features mean nothing to it (greedy supervised pretraining discards the output layer at each stage,
    Bengio et al. 2007). New layers are named ``fc<k>`` and ``act<k>`` (k = the new layer's depth, or the next
    free number), the head keeps its name, and all are created on the head's device and dtype with torch's
    default initialization under the global RNG (seed it, or call :func:`regopt.init.initialize` afterwards).

    Args:
        model: a flat ``nn.Sequential`` whose last child is the ``nn.Linear`` output layer.
        width: units of the new hidden layer.
        activation: factory of the new layer's activation module (a class such as ``nn.ReLU``).
        freeze_existing: :func:`freeze` the layers that were already there (the old head excepted, it is
            dropped), so only the new layer and head train.

    Raises:
        ValueError: when the last child of ``model`` is not an ``nn.Linear`` or ``width`` < 1.

    Example:
        >>> net = nn.Sequential(OrderedDict(fc1=nn.Linear(40, 32), act1=nn.ReLU(), head=nn.Linear(32, 10)))
        >>> deeper = grow_mlp(net, 16)
        >>> [name for name, _ in deeper.named_children()], deeper.fc1 is net.fc1
        (['fc1', 'act1', 'fc2', 'act2', 'head'], True)
    """
    if width < 1:
        raise ValueError(f"width: must be >= 1, got {width}")
    children = list(model.named_children())
    if not children or not isinstance(children[-1][1], nn.Linear):
        last = type(children[-1][1]).__name__ if children else "nothing"
        raise ValueError(f"model: the last child must be the nn.Linear output layer, got {last}")
    head_name, head = children[-1]
    assert isinstance(head, nn.Linear)  # checked above; narrows the type
    body = children[:-1]
    if freeze_existing:
        for _, child in body:
            freeze(child)
    names = {name for name, _ in body}
    depth = 1 + sum(isinstance(child, nn.Linear) for _, child in body)
    device, dtype = head.weight.device, head.weight.dtype
    layers: OrderedDict[str, nn.Module] = OrderedDict(body)
    layers[_free_name(names, "fc", depth)] = nn.Linear(head.in_features, width, device=device, dtype=dtype)
    layers[_free_name(names, "act", depth)] = activation()
    layers[head_name] = nn.Linear(width, head.out_features, bias=head.bias is not None, device=device, dtype=dtype)
    return nn.Sequential(layers)


def greedy_supervised_pretraining(
    make_first: Callable[[], nn.Sequential],
    widths: Sequence[int],
    train_fn: Callable[[nn.Module], None],
    *,
    freeze_existing: bool = False,
    finetune: bool = True,
    activation: Callable[[], nn.Module] = nn.ReLU,
) -> nn.Sequential:
    """Train ``make_first()``, then for each width grow it by one hidden layer and train again; fine-tune.

    Stages, each one call of ``train_fn``::

        model = make_first();  train_fn(model)                       # stage 0: the shallow network
        for width in widths:                                         # stages 1 .. len(widths)
            model = grow_mlp(model, width, activation, freeze_existing=freeze_existing);  train_fn(model)
        if finetune:  unfreeze(model);  train_fn(model)              # joint fine-tuning of all layers

    ``train_fn`` gets ``len(widths) + 1`` calls, plus one when ``finetune``; it should build a fresh optimizer
    over the model's parameters each time (the model is a new ``nn.Sequential`` with new parameters at each
    stage); with ``freeze_existing`` the frozen ones have ``requires_grad = False`` and may be left out.
    Without freezing, fine-tuning is just one more stage of training the whole network.

    Args:
        make_first: builds the shallow network, a flat ``nn.Sequential`` ending in its ``nn.Linear`` head.
        widths: widths of the hidden layers added one by one, input side first.
        train_fn: trains a model in place (any loop, budget and optimizer).
        freeze_existing: at each stage train only the new layer and head (classic greedy layer-wise training).
        finetune: after the last stage, unfreeze everything and train once more.
        activation: factory of each new layer's activation.

    Returns:
        The deep network, ``len(widths)`` hidden layers deeper than ``make_first()`` (with ``freeze_existing``
        and no ``finetune``, all but its last hidden layer and head are still frozen).

    References:
        Bengio, Lamblin, Popovici & Larochelle (2007), "Greedy layer-wise training of deep networks";
        Simonyan & Zisserman (2015); Goodfellow, Bengio & Courville (2016), sec. 8.7.4.
    """
    model = make_first()
    train_fn(model)
    for width in widths:
        model = grow_mlp(model, width, activation, freeze_existing=freeze_existing)
        train_fn(model)
    if finetune:
        unfreeze(model)
        train_fn(model)
    return model
