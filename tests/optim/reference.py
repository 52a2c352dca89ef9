"""Literal float64 transcriptions of the chapter's pseudo-code (Algorithms 8.1-8.7) and Jacobs' delta-bar-delta.

Plain and slow on purpose: one flat vector theta, one line per line of the pseudo-code, no vectorization
tricks, so a reader can hold each beside the slide. ``grad(theta)`` returns the gradient at theta; ``lr(k)``
the learning rate at step k (so schedules are covered). Each returns the trajectory's final parameters as the
optimizer under test should hold them.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

Grad = Callable[[Tensor], Tensor]
Rate = Callable[[int], float]


def sgd(theta: Tensor, grad: Grad, lr: Rate, steps: int, weight_decay: float = 0.0) -> Tensor:
    """Algorithm 8.1."""
    for k in range(steps):
        g = grad(theta) + weight_decay * theta  # compute gradient estimate (+ alpha W)
        theta = theta - lr(k) * g  # apply update
    return theta


def momentum(theta: Tensor, grad: Grad, lr: Rate, steps: int, alpha: float, weight_decay: float = 0.0) -> Tensor:
    """Algorithm 8.2."""
    v = torch.zeros_like(theta)
    for k in range(steps):
        g = grad(theta) + weight_decay * theta  # compute gradient estimate
        v = alpha * v - lr(k) * g  # compute velocity update
        theta = theta + v  # apply update
    return theta


def nesterov(theta: Tensor, grad: Grad, lr: Rate, steps: int, alpha: float, weight_decay: float = 0.0) -> Tensor:
    """Algorithm 8.3; returns the interim point theta + alpha v, which the optimizer's parameters hold."""
    v = torch.zeros_like(theta)
    for k in range(steps):
        theta_tilde = theta + alpha * v  # apply interim update
        g = grad(theta_tilde) + weight_decay * theta_tilde  # compute gradient (at interim point)
        v = alpha * v - lr(k) * g  # compute velocity update
        theta = theta + v  # apply update
    return theta + alpha * v


def adagrad(theta: Tensor, grad: Grad, lr: Rate, steps: int, delta: float = 1e-7) -> Tensor:
    """Algorithm 8.4."""
    r = torch.zeros_like(theta)  # initialize gradient accumulation variable r = 0
    for k in range(steps):
        g = grad(theta)  # compute gradient
        r = r + g * g  # accumulate squared gradient
        delta_theta = -lr(k) * g / (delta + torch.sqrt(r))  # compute update
        theta = theta + delta_theta  # apply update
    return theta


def rmsprop(theta: Tensor, grad: Grad, lr: Rate, steps: int, rho: float, delta: float = 1e-6) -> Tensor:
    """Algorithm 8.5."""
    r = torch.zeros_like(theta)  # initialize accumulation variables r = 0
    for k in range(steps):
        g = grad(theta)  # compute gradient
        r = rho * r + (1 - rho) * g * g  # accumulate squared gradient
        delta_theta = -lr(k) * g / torch.sqrt(delta + r)  # compute parameter update
        theta = theta + delta_theta  # apply update
    return theta


def rmsprop_nesterov(
    theta: Tensor, grad: Grad, lr: Rate, steps: int, rho: float, alpha: float, delta: float = 1e-6
) -> Tensor:
    """Algorithm 8.6 (with delta inside the root, as in 8.5); returns the interim point theta + alpha v."""
    v = torch.zeros_like(theta)
    r = torch.zeros_like(theta)  # initialize accumulation variable r = 0
    for k in range(steps):
        theta_tilde = theta + alpha * v  # compute interim update
        g = grad(theta_tilde)  # compute gradient
        r = rho * r + (1 - rho) * g * g  # accumulate gradient
        v = alpha * v - lr(k) * g / torch.sqrt(delta + r)  # compute velocity update
        theta = theta + v  # apply update
    return theta + alpha * v


def adam(
    theta: Tensor,
    grad: Grad,
    lr: Rate,
    steps: int,
    rho1: float = 0.9,
    rho2: float = 0.999,
    delta: float = 1e-8,
    weight_decay: float = 0.0,
    decoupled: bool = False,
) -> Tensor:
    """Algorithm 8.7 (delta inside the root, as the slide writes it); decoupled decay is AdamW's."""
    s = torch.zeros_like(theta)  # initialize 1st and 2nd moment variables
    r = torch.zeros_like(theta)
    t = 0  # initialize time step
    for k in range(steps):
        g = grad(theta)  # compute gradient
        if decoupled:
            theta = theta - lr(k) * weight_decay * theta
        else:
            g = g + weight_decay * theta
        t = t + 1
        s = rho1 * s + (1 - rho1) * g  # update biased first moment estimate
        r = rho2 * r + (1 - rho2) * g * g  # update biased second moment estimate
        s_hat = s / (1 - rho1**t)  # correct bias in first moment
        r_hat = r / (1 - rho2**t)  # correct bias in second moment
        delta_theta = -lr(k) * s_hat / torch.sqrt(r_hat + delta)  # compute update
        theta = theta + delta_theta  # apply update
    return theta


def delta_bar_delta(
    theta: Tensor,
    grad: Grad,
    lr: Rate,
    steps: int,
    kappa: float,
    phi: float,
    bar_weight: float,
    max_rate: float = math.inf,
) -> Tensor:
    """Jacobs (1988), element by element, with the rates scaled by lr(k) / lr(0) and bounded by max_rate."""
    rates = torch.full_like(theta, lr(0))
    bar = torch.zeros_like(theta)
    for k in range(steps):
        g = grad(theta)
        for i in range(len(theta)):
            if bar[i] * g[i] > 0:
                rates[i] = min(rates[i] + kappa, max_rate)
            elif bar[i] * g[i] < 0:
                rates[i] = rates[i] - phi * rates[i]
        theta = theta - (lr(k) / lr(0)) * rates * g
        bar = (1 - bar_weight) * g + bar_weight * bar
    return theta
