"""Gallery entry ``initialization`` (sec. 8.4): the scale of activations and gradients through depth.

The std of each hidden layer's activations and of the loss gradient with respect to them, through 20-layer
ReLU and tanh MLPs (width 256, MNIST-1D inputs), for every policy of :mod:`regopt.init` and a too-small
N(0, 0.01^2) beside them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from regopt.lab.gallery.base import GalleryResult, single_threaded, write_table
from regopt.lab.gallery.meta_runs import mlp, mnist1d

INIT_DEPTH, INIT_WIDTH, INIT_EXAMPLES = 20, 256, 512
SMALL = "N(0, 0.01^2)"  # a too-small initialization, beside the policies


@single_threaded
def initialization(out: Path, progress: bool) -> GalleryResult:
    """Activation and gradient std through 20-layer ReLU and tanh MLPs for each initialization policy."""
    from regopt.init import POLICIES, activation_statistics, initialize
    from regopt.lab.gallery.figures.meta_algorithms import plot_depth_profiles

    data = mnist1d()
    x, y = data.x_train[:INIT_EXAMPLES], data.y_train[:INIT_EXAMPLES]
    profiles: dict[str, dict[str, list[dict[str, Any]]]] = {}
    rows = []
    for net, activation, nonlinearity in (("ReLU", nn.ReLU, "relu"), ("tanh", nn.Tanh, "tanh")):
        profiles[net] = {}
        for policy in [*POLICIES, SMALL]:
            torch.manual_seed(0)
            model = mlp([INIT_WIDTH] * INIT_DEPTH, activation=activation)
            if policy == SMALL:
                initialize(model, "lecun_normal", gain=0.01 * math.sqrt(INIT_WIDTH))  # std 0.01 at width 256
            else:
                initialize(model, policy, nonlinearity=nonlinearity)  # type: ignore[arg-type]
            stats: list[dict[str, Any]] = activation_statistics(model, x, y)
            profiles[net][policy] = stats
            first, last = stats[0], stats[-1]
            rows.append(
                (
                    net,
                    policy,
                    last["activation_std"],
                    last["activation_std"] / first["activation_std"],
                    first["gradient_std"] / last["gradient_std"],
                )
            )
    folder = Path(out) / "initialization"
    figure = folder / "depth_profiles.png"
    plot_depth_profiles(profiles, figure, title=f"{INIT_DEPTH}-layer MLPs (width {INIT_WIDTH}) on MNIST-1D inputs")
    headers = ("network", "policy", "activation std, layer 20", "activation std 20 / 1", "gradient std 1 / 20")
    note = (
        "\nBiases are zero. He uses gain sqrt(2) in the ReLU network and 5/3 (torch's tanh gain) in the tanh one; "
        "the other policies use their published gain of 1. Ratios far below 1 mean vanishing signals (forward) "
        "or gradients (backward), far above 1 exploding ones.\n"
    )
    shown = [(net, policy, *(f"{v:.3g}" for v in values)) for net, policy, *values in rows]  # 3 significant digits
    table = write_table(folder / "table.md", headers, shown, title="scale through depth", append=note)
    ratio = {(r[0], r[1]): r[3] for r in rows}
    return GalleryResult(
        entry="initialization",
        files=[figure, table],
        numbers={
            "ReLU activation std ratio 20/1, He": f"{ratio['ReLU', 'he_normal']:.3g}",
            "ReLU activation std ratio 20/1, Xavier": f"{ratio['ReLU', 'xavier_uniform']:.3g}",
            "ReLU activation std ratio 20/1, torch default": f"{ratio['ReLU', 'default']:.3g}",
            "tanh activation std ratio 20/1, Xavier": f"{ratio['tanh', 'xavier_uniform']:.3g}",
        },
    )
