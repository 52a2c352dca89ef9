"""Nesterov momentum's interim point, shared by SGD (Algorithm 8.3) and RMSProp (Algorithm 8.6).

Both algorithms take the gradient at the interim point theta~ = theta + alpha v. So that any ordinary training
loop computes that gradient, a Nesterov group's parameters *hold* theta~ between steps: an update first recovers
theta from theta~ (:func:`recover_theta_`, before v changes), applies its velocity update, and then writes the
next interim point back (:func:`interim_point_`). :func:`nesterov_theta` swaps theta itself in for evaluation.

The two in-place helpers run inside each optimizer's update, eagerly or compiled by ``torch.compile`` (which
inlines them), and allocate nothing when ``alpha`` is a Python float (see :func:`regopt.optim.flat.add_scaled_`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor

from regopt.optim.flat import Bucket, FlatOptimizer, Scalar, add_scaled_


def recover_theta_(theta: Tensor, alpha: Scalar, v: Tensor) -> None:
    """theta <- theta~ - alpha v, in place: ``theta`` holds the interim point theta~ = theta + alpha v, and ``v``
    is still the velocity that made it."""
    add_scaled_(theta, -alpha, v)


def interim_point_(theta: Tensor, alpha: Scalar, v: Tensor) -> None:
    """theta~ <- theta + alpha v, in place: the next interim point, where the caller's loop takes the next
    gradient (the algorithms' "apply interim update")."""
    add_scaled_(theta, alpha, v)


@contextlib.contextmanager
def nesterov_theta(optimizer: FlatOptimizer, velocity: str) -> Iterator[None]:
    """Swap theta = theta~ - alpha v into Nesterov groups' parameters for the duration; restore theta~ exactly."""
    saved: list[tuple[Bucket, Tensor]] = []
    if any(state for state in optimizer.state.values()):
        with torch.no_grad():
            for group, buckets in zip(optimizer.param_groups, optimizer.flat_buckets(), strict=True):
                if not (group.get("nesterov") and group["momentum"] > 0):
                    continue
                for bucket in buckets:
                    bucket.pull()
                    saved.append((bucket, bucket.theta.clone()))
                    bucket.theta.sub_(group["momentum"] * bucket.state[velocity])
                    bucket.push()
    try:
        yield
    finally:
        with torch.no_grad():
            for bucket, interim in saved:
                bucket.theta.copy_(interim)
                bucket.push()
