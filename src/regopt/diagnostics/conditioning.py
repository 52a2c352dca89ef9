r"""Ill-conditioning (Goodfellow et al. 2016, sec. 8.2.1) tracked in training: the chapter's criterion
``0.5 eps^2 g'Hg - eps g'g`` (:mod:`regopt.diagnostics.criterion`) for the steps actually taken.

:class:`IllConditioningMonitor` evaluates the criterion every few steps, for the training step just taken (its
own gradient ``g``, kept with its graph, and one Hessian-vector product ``Hg`` on it, see
:mod:`~regopt.diagnostics.hvp`) or on a fixed probe batch, and raises an alarm when the criterion stays
positive while the gradient norm grows and the loss stalls: the book's symptom of ill-conditioning.

References:
    Goodfellow, I., Bengio, Y. & Courville, A. (2016). Deep Learning, sec. 8.2.1 (ill-conditioning).
    Pearlmutter, B. A. (1994). Fast exact multiplication by the Hessian. Neural Computation 6(1).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from regopt.diagnostics.alarms import AlarmLog
from regopt.diagnostics.criterion import criterion_row, dots, step_curvature
from regopt.diagnostics.hessian_operator import HessianOperator
from regopt.diagnostics.hvp import backward_with_hvp
from regopt.monitor import Monitor, MonitorReport

__all__ = ["IllConditioningMonitor", "IllConditioningWarning", "step_curvature"]


class IllConditioningWarning(RuntimeWarning):
    """Issued by :class:`IllConditioningMonitor` with each alarm."""


class IllConditioningMonitor(Monitor):
    r"""Track ``0.5 eps^2 g'Hg - eps g'g`` during training; warn when ill-conditioning sets in.

    Every ``every`` steps a row ``{step, lr, loss, grad_norm, gg, gHg, curvature, criterion, stable_lr}`` is
    appended to :attr:`history`, measured in one of two ways:

    - **the training step's own gradient** (``batch=None``): at a check step the loop lets the monitor run the
      backward pass (:meth:`backward`; regopt's Trainer calls it in place of ``loss.backward()``), which takes
      ``g`` with ``create_graph=True``, leaves in ``p.grad`` exactly what ``loss.backward()`` would, and takes
      one Hessian-vector product ``Hg`` on that graph (:func:`~regopt.diagnostics.hvp.backward_with_hvp`).
      The row is the chapter's criterion for the step actually taken (minibatch gradient, penalties included) at
      that step's lr; ``loss`` is the mean training loss since the last check. About 2 gradients per check; no
      extra forward, so dropout masks, batch-norm statistics and the RNG are those of training.
    - **a fixed probe batch** (``batch=(x, y)``): in :meth:`after_step`, ``g`` and ``Hg`` on the probe batch
      at the current parameters (about 3 gradients on it), leaving parameters, buffers, ``.grad`` and the RNG
      as they were. Smoother across checks; the step it judges is a hypothetical one on the probe batch.

    Either way training ends with the same weights, bit for bit, as without the monitor.

    An *alarm* is raised when, at a check,

    1. the criterion has been positive for the last ``patience`` checks,
    2. the gradient norm rose over them (``|g|`` now > ``|g|`` at the check before the window), and
    3. the loss stalled: it fell by less than ``loss_tol`` (relative) over the same window, or rose,

    the three signs the book gives for ill-conditioning ("even very small steps increase the cost"; the
    gradient norm grows while the loss does not decrease). The message is appended to :attr:`alarms`, logged on
    ``"regopt.diagnostics"`` at ``WARNING`` (at most one line per ``alarm_every`` steps, see
    :mod:`~regopt.diagnostics.alarms`) and issued as an :class:`IllConditioningWarning`; one alarm per run of
    positive checks. It quotes the stable learning rate of the check, or, where ``g'Hg`` overflowed (its row's
    ``stable_lr`` is ``nan``), the last finite estimate (:meth:`last_stable_lr`). :meth:`after_epoch` returns
    ``(False, "")`` (a warning, not a stop) unless ``stop_on_alarm``, then ``(True, message)`` after an alarm.

    Args:
        model: the model being trained.
        loss_fn: ``loss_fn(output, y) -> scalar``, the training loss (e.g. ``F.cross_entropy``); needed with a
            probe ``batch`` only.
        batch: the probe batch ``(x, y)``, fixed so that changes reflect the parameters, not the data; ``None``
            (default) to reuse the training step's gradient.
        lr_fn: returns the current learning rate eps (e.g. ``lambda: optimizer.param_groups[0]["lr"]``).
        every: check every this many steps (default 10).
        patience: consecutive positive checks before an alarm (default 3).
        loss_tol: relative loss decrease over the window below which the loss counts as stalled (default 0.01).
        stop_on_alarm: ask training to stop after an alarm (default ``False``).
        params: the parameters g and H refer to (default: all of the model's with ``requires_grad``). With
            ``batch=None`` every parameter of the model with ``requires_grad`` still gets its ``.grad``.
        alarm_every: at most one logged alarm per this many steps (default ``100``).
        warn: also issue each alarm as an :class:`IllConditioningWarning` (default ``True``; ``False`` where the
            logged line is enough, as in regopt's lab: Python prints every warning of a new text, unlimited).
        distributed: under data parallelism, measure the probe batch on every rank's shard and all-reduce
            ``g``, ``Hg`` and the loss (weighted by shard size), so the row describes the global probe batch
            and is the same on every rank (:class:`~regopt.diagnostics.hessian_operator.HessianOperator` with
            ``distributed=True``; each check is then collective). Default: ``True`` when ``model`` is a
            :class:`~torch.nn.parallel.DistributedDataParallel`. Needs a probe ``batch``: the training step's
            own ``g`` would be all-reduced by DDP, but its ``Hg`` from double backward would not (DDP's hooks do
            not see ``torch.autograd.grad``), so that mode is refused under DDP.

    In a hand-written loop, training-step mode needs the backward pass routed through the monitor::

        loss = loss_fn(model(x), y)
        if not monitor.backward(step, loss):  # True at check steps: it did the backward itself
            loss.backward()
        optimizer.step()
        monitor.after_step(step, loss.detach())

    Note:
        The criterion is for a plain gradient step ``theta - eps g``. With momentum ``alpha`` the steady-state
        step is ``eps / (1 - alpha)``; pass that from ``lr_fn`` to judge momentum SGD. With ``batch=None`` the
        gradient is taken w.r.t. the model's parameters only (as ``loss.backward(inputs=...)``): a loss with
        trainable tensors outside the model needs a probe batch.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> model = nn.Linear(1, 1, bias=False)
        >>> with torch.no_grad():
        ...     _ = model.weight.fill_(3.0)
        >>> f = lambda out, y: 30 * (out**2).sum()  # f(w) = 30 w^2 with input 1
        >>> monitor = IllConditioningMonitor(model, lr_fn=lambda: 0.034, every=1)
        >>> loss = f(model(torch.ones(1, 1)), None)
        >>> monitor.backward(1, loss), model.weight.grad  # the gradient 60 w, as loss.backward() leaves it
        (True, tensor([[180.]]))
        >>> monitor.after_step(1, loss.detach())
        >>> monitor.history[0]["curvature"], monitor.history[0]["criterion"] > 0
        (60.0, True)
        >>> probe = IllConditioningMonitor(model, f, (torch.ones(1, 1), torch.zeros(1)), lambda: 0.033, every=1)
        >>> probe.after_step(1, torch.tensor(0.0))
        >>> probe.history[0]["curvature"], probe.history[0]["criterion"] > 0
        (60.0, False)
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
        batch: tuple[Tensor, Tensor] | None = None,
        lr_fn: Callable[[], float] | None = None,
        every: int = 10,
        patience: int = 3,
        *,
        loss_tol: float = 0.01,
        stop_on_alarm: bool = False,
        params: Sequence[Tensor] | None = None,
        alarm_every: int = 100,
        warn: bool = True,
        distributed: bool | None = None,
    ) -> None:
        if lr_fn is None:
            raise TypeError("IllConditioningMonitor needs lr_fn, a callable returning the current learning rate")
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience}")
        if not loss_tol >= 0:
            raise ValueError(f"loss_tol must be >= 0, got {loss_tol}")
        if batch is not None and len(batch) != 2:
            raise ValueError(f"batch must be a pair (x, y), got {len(batch)} items")
        if batch is not None and loss_fn is None:
            raise ValueError("a probe batch needs loss_fn")
        if distributed is None:
            distributed = isinstance(model, DistributedDataParallel)
        if distributed and batch is None:
            raise ValueError(
                "IllConditioningMonitor under DistributedDataParallel needs a probe batch (batch=(x, y), each "
                "rank's shard): the training step's Hg from double backward is not all-reduced by DDP"
            )
        self.distributed = distributed
        self.model, self.loss_fn, self.lr_fn = model, loss_fn, lr_fn
        self.x: Tensor | None = batch[0] if batch is not None else None
        self.y: Tensor | None = batch[1] if batch is not None else None
        self.every, self.patience, self.loss_tol, self.stop_on_alarm = every, patience, loss_tol, stop_on_alarm
        self.params = params
        self.history: list[dict[str, float]] = []
        self.alarms: list[str] = []
        self.alarm_log = AlarmLog("ill_conditioning", every=alarm_every)
        self.warn = warn
        self.streak = 0  # consecutive checks with a positive criterion
        self.alarmed = False  # an alarm was raised during the current streak
        self._measured: tuple[int, float, float, float] | None = None  # (step, g'Hg, g'g, lr) from backward()
        self._losses: list[Tensor] = []  # training losses since the last check (batch=None)

    @property
    def uses_probe(self) -> bool:
        """Whether checks run on the fixed probe batch (else on the training step's own gradient)."""
        return self.x is not None

    def backward(self, step: int, loss: Tensor) -> bool:
        """At a check step without a probe batch: ``loss.backward()`` plus ``Hg`` on its graph; returns
        whether it ran (``False``: the caller runs ``loss.backward()`` itself)."""
        if self.uses_probe or step % self.every != 0:
            return False
        model_params = [p for p in self.model.parameters() if p.requires_grad]
        chosen = None if self.params is None else [p for p in self.params if p.requires_grad]
        g, hg = backward_with_hvp(loss, model_params, chosen)
        ghg, gg = dots(g, hg)
        self._measured = (step, ghg, gg, float(self.lr_fn()))
        return True

    def after_step(self, step: int, loss: Tensor) -> None:
        if not self.uses_probe:
            self._losses.append(torch.as_tensor(loss).detach())  # no device sync: summed at the check
        if step % self.every == 0:
            self.check(step)

    def _probe(self) -> tuple[Tensor, Tensor, float]:
        """g, Hg and the loss on the probe batch, with no side effect on buffers or the RNG."""
        assert self.loss_fn is not None and self.x is not None and self.y is not None
        op = HessianOperator(self.model, self.loss_fn, self.x, self.y, self.params, distributed=self.distributed)
        buffers = [b.detach().clone() for b in self.model.buffers()]
        cuda = sorted({p.device.index or 0 for p in op.params if p.device.type == "cuda"})
        with torch.random.fork_rng(devices=cuda):
            g = op.gradient()
            hg = op.matvec(g)
            loss = op.loss()
        with torch.no_grad():
            for b, saved in zip(self.model.buffers(), buffers, strict=True):
                b.copy_(saved)
        return g, hg, loss

    def check(self, step: int) -> dict[str, float]:
        """Record the row of ``step`` and update the alarm; returns the row. With a probe batch it measures
        now (whatever ``step``); without, it uses what :meth:`backward` measured at ``step``."""
        if self.uses_probe:
            g, hg, loss = self._probe()
            lr = float(self.lr_fn())
            curvature = step_curvature(g, hg, lr)
        else:
            if self._measured is None or self._measured[0] != step:
                raise RuntimeError(
                    f"IllConditioningMonitor has no gradient of step {step}: without a probe batch the training "
                    "loop must call `if not monitor.backward(step, loss): loss.backward()` (regopt's Trainer does)"
                )
            _, ghg, gg, lr = self._measured
            losses = self._losses
            stacked = torch.stack([v.reshape(()).to(losses[-1]) for v in losses]) if losses else None
            loss = math.nan if stacked is None else float(stacked.double().mean())  # one sync per check
            self._measured, self._losses = None, []
            curvature = criterion_row(ghg, gg, lr)
        row: dict[str, float] = {"step": step, "lr": lr, "loss": loss, **curvature}
        row["grad_norm"] = math.sqrt(row["gg"])
        self.history.append(row)
        if row["criterion"] > 0:
            self.streak += 1
        else:
            self.streak, self.alarmed = 0, False
        if self.streak >= self.patience and not self.alarmed:
            self._maybe_alarm(step, row)
        return row

    def _maybe_alarm(self, step: int, row: dict[str, float]) -> None:
        ref = self.history[max(0, len(self.history) - 1 - self.patience)]
        rise = row["grad_norm"] / ref["grad_norm"] if ref["grad_norm"] > 0 else math.inf
        change = (row["loss"] - ref["loss"]) / max(abs(ref["loss"]), 1e-12)
        if not (rise > 1 and -change < self.loss_tol):
            return
        self.alarmed = True
        if math.isfinite(row["stable_lr"]) and row["stable_lr"] > 0:
            estimate = f"largest stable learning rate here ~{row['stable_lr']:.2g} (current {row['lr']:.2g})"
        else:
            last = self.last_stable_lr()
            estimate = (
                "no stable learning rate estimate here (g'Hg overflowed or is not positive)"
                + (f"; the last was ~{last[1]:.2g} at step {last[0]}" if last else "")
                + f" (current {row['lr']:.2g})"
            )
        message = (
            f"ill-conditioning at step {step}: 0.5*eps^2*g'Hg - eps*g'g = {row['criterion']:+.1e} > 0 for "
            f"{self.streak} checks; gradient norm rose {rise:.1f}x while the loss changed {change:+.1%}; "
            f"{estimate}; lower the learning rate below it"
        )
        self.alarms.append(message)
        self.alarm_log.alarm(step, message)
        if self.warn:
            warnings.warn(message, IllConditioningWarning, stacklevel=3)

    def last_stable_lr(self) -> tuple[int, float] | None:
        """``(step, stable_lr)`` of the last check with a finite, positive estimate; ``None`` if none had one.

        A check whose ``g'Hg`` overflowed (``stable_lr`` is ``nan``) says nothing about the stable rate, and one
        with ``g'Hg <= 0`` (``inf``) bounds nothing: both are skipped.
        """
        for row in reversed(self.history):
            if math.isfinite(row["stable_lr"]) and row["stable_lr"] > 0:
                return int(row["step"]), row["stable_lr"]
        return None

    def after_epoch(self, epoch: int, metrics: Mapping[str, float]) -> tuple[bool, str]:
        if self.stop_on_alarm and self.alarms:
            return True, self.alarms[-1]
        return False, ""

    def report(self) -> MonitorReport:
        """``ill_conditioning.csv``: one row per check, ``stable_lr`` empty with a ``note`` where g'Hg overflowed;
        findings: ``ill_conditioning_alarms`` and, once a check ran, ``last_stable_lr`` (``None`` if none had
        a finite estimate)."""
        rows = []
        for row in self.history:
            overflow = math.isnan(row["stable_lr"])
            note = "overflow: g'Hg or g'g is not finite (float32), no stable-lr estimate" if overflow else ""
            rows.append({**row, "stable_lr": "" if overflow else row["stable_lr"], "note": note})
        findings: dict[str, Any] = {"ill_conditioning_alarms": list(self.alarms)}
        if self.history:
            last = self.last_stable_lr()
            findings["last_stable_lr"] = last[1] if last is not None else None
        return MonitorReport({"ill_conditioning.csv": rows}, findings)

    def state_dict(self) -> dict[str, Any]:
        return {
            "history": [dict(r) for r in self.history],
            "alarms": list(self.alarms),
            "streak": self.streak,
            "alarmed": self.alarmed,
            "window_losses": [float(v) for v in self._losses],
            "alarm_log": self.alarm_log.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.history = [dict(r) for r in state["history"]]
        self.alarms = list(state["alarms"])
        self.streak, self.alarmed = int(state["streak"]), bool(state["alarmed"])
        self._losses = [torch.tensor(v, dtype=torch.float64) for v in state.get("window_losses", [])]
        if "alarm_log" in state:
            self.alarm_log.load_state_dict(state["alarm_log"])
