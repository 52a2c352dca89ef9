"""Block coordinate descent: each step updates one block of parameters with its own inner optimizer."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from regopt._checks import is_int

__all__ = ["CoordinateDescent"]

InnerFactory = Callable[[list[Any]], Optimizer]
_POSITION = "coordinate"  # the param_groups[0] key holding the order, the next block and the generator


class CoordinateDescent(Optimizer):
    r"""Minimize over one block of parameters at a time, the others held fixed (Goodfellow et al. 2016, 8.7.2).

    The parameters are split into blocks ``theta = (theta^(1), ..., theta^(B))``. Step ``t`` picks a block
    ``b_t`` and updates only it, with an inner optimizer of the user's choice::

        b_t = t mod B                          (order="cyclic")
        b_t ~ Uniform{0, ..., B-1}, i.i.d.     (order="random", from a torch.Generator seeded by ``seed``)
        theta^(b_t) <- inner_{b_t}.step()      (theta^(j), j != b_t, unchanged)

    Each block has its own inner optimizer (built by ``inner(block)``), so its state (momentum, second moments,
    step counts) only advances when the block is stepped. Coordinate descent pays off when the blocks are
    weakly coupled, or when one block's subproblem is much easier with the other fixed (e.g. sparse coding:
    convex in the code with the dictionary fixed, and vice versa).

    ``param_groups`` is the list of the inner optimizers' own param_group dicts (the same objects), so torch's
    LR schedulers driving this optimizer change every inner optimizer's ``lr``.

    Args:
        blocks: a sequence of blocks, each an iterable of tensors or of param-group dicts (as any torch optimizer
            accepts). Blocks must be non-empty and disjoint.
        inner: factory ``block -> torch.optim.Optimizer`` (e.g. ``lambda ps: torch.optim.SGD(ps, lr=0.1)``),
            called once per block with the block as a list.
        order: ``"cyclic"`` (default) visits blocks 0, 1, ..., B-1, 0, ...; ``"random"`` draws a block uniformly
            with replacement at each step.
        seed: seed of the generator used by ``order="random"`` (default ``0``).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from regopt.optim.coordinate import CoordinateDescent
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
        >>> opt = CoordinateDescent(CoordinateDescent.blocks_by_module(model), lambda ps: torch.optim.SGD(ps, lr=0.1))
        >>> x, y = torch.randn(16, 4), torch.randn(16, 1)
        >>> for _ in range(4):  # layer 0, layer 2, layer 0, layer 2
        ...     opt.zero_grad()
        ...     (model(x) - y).pow(2).mean().backward()
        ...     opt.step()
        >>> opt.current_block
        0

    Note:
        With one block this is the inner optimizer: same updates, same state. The gradient of the whole model is
        still computed at each step although only one block uses it; freeze the others (``requires_grad``) if
        backward cost matters.

        :meth:`state_dict` has torch's optimizer layout, so ``torch.distributed.checkpoint.state_dict``'s
        ``get_state_dict`` / ``set_state_dict`` save and load it sharded under FSDP2; before loading into a fresh
        optimizer, call :meth:`init_state` (see there).

    References:
        Goodfellow, I., Bengio, Y. & Courville, A. (2016). Deep Learning, sec. 8.7.2 (coordinate descent).
        Wright, S. J. (2015). Coordinate descent algorithms. Mathematical Programming 151(1).
    """

    def __init__(
        self,
        blocks: Sequence[Iterable[Tensor] | Iterable[dict[str, Any]]],
        inner: InnerFactory,
        *,
        order: Literal["cyclic", "random"] = "cyclic",
        seed: int = 0,
    ) -> None:
        if order not in ("cyclic", "random"):
            raise ValueError(f"order must be 'cyclic' or 'random', got {order!r}")
        if not is_int(seed):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        if not callable(inner):
            raise ValueError(f"inner must be a callable block -> Optimizer, got {inner!r}")
        if isinstance(blocks, Tensor):
            raise ValueError("blocks must be a sequence of blocks of parameters, got a single tensor")
        block_lists = [list(block) for block in blocks]
        if not block_lists:
            raise ValueError("blocks must contain at least one block, got none")
        for i, block in enumerate(block_lists):
            if not block:
                raise ValueError(f"blocks[{i}] is empty")
        inners = [inner(block) for block in block_lists]
        for i, opt in enumerate(inners):
            if not isinstance(opt, Optimizer):
                raise ValueError(f"inner must return a torch.optim.Optimizer, got {type(opt).__name__} for block {i}")
        owner: dict[Tensor, int] = {}
        for i, opt in enumerate(inners):
            for group in opt.param_groups:
                for p in group["params"]:
                    if p in owner:
                        raise ValueError(
                            f"blocks must be disjoint: a parameter of shape {tuple(p.shape)} is in blocks "
                            f"{owner[p]} and {i}"
                        )
                    owner[p] = i
        # The base class sets up hooks, ``defaults`` and ``state``; its own param_groups are then replaced.
        super().__init__(list(owner), dict(inners[0].defaults))
        self.inners: list[Optimizer] = inners
        self.order = order
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)
        self.state = _MergedState(inners)  # type: ignore[assignment]
        self._sync_param_groups()
        self._block = self._draw() if order == "random" else 0

    # ------------------------------------------------------------------------------------------ stepping
    @property
    def current_block(self) -> int:
        """Index of the block the next :meth:`step` updates."""
        return self._block

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """Step the current block's inner optimizer (passing ``closure`` on), then advance to the next block."""
        inner = self.inners[self._block]
        if closure is None:
            loss = inner.step()
        else:
            with torch.enable_grad():
                loss = inner.step(closure)
        self._block = (self._block + 1) % len(self.inners) if self.order == "cyclic" else self._draw()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Zero (or drop) the gradients of every block, not only the current one."""
        for inner in self.inners:
            inner.zero_grad(set_to_none=set_to_none)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if "inners" not in self.__dict__:  # called by Optimizer.__init__
            super().add_param_group(param_group)
            return
        raise NotImplementedError("CoordinateDescent cannot add param groups; build it with one more block instead")

    # ------------------------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:  # type: ignore[override]
        """torch's optimizer layout over all blocks, so ``torch.distributed.checkpoint`` can shard it.

        ``state`` holds every block's per-parameter state keyed by the parameter's index in
        ``self.param_groups`` (block 0's parameters first), ``param_groups`` the blocks' groups in that order,
        each with ``"block"``: its block's index. The first group also carries ``"coordinate"``: the order, the
        next block and the random-order generator's state. The position rides in a group because
        :func:`torch.distributed.checkpoint.state_dict.get_state_dict` keeps only ``state`` and ``param_groups``
        of an optimizer's state dict (it re-keys both by parameter name and drops any other key), while it
        carries every key of a group.
        """
        state: dict[Any, Any] = {}
        groups: list[dict[str, Any]] = []
        offset = 0
        for block, inner in enumerate(self.inners):
            inner_state = inner.state_dict()
            state.update({offset + index: value for index, value in inner_state["state"].items()})
            for group in inner_state["param_groups"]:
                groups.append({**group, "params": [offset + index for index in group["params"]], "block": block})
            offset += sum(len(group["params"]) for group in inner.param_groups)
        groups[0][_POSITION] = {
            "order": self.order,
            "current_block": self._block,
            "generator": self.generator.get_state(),
        }
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:  # type: ignore[override]
        """Restore what :meth:`state_dict` returned; the run then continues exactly as if uninterrupted.

        Also takes the state dict as ``torch.distributed.checkpoint.state_dict.set_state_dict`` hands it over
        (state and group ``params`` keyed by parameter name), and the layout of checkpoints written before
        issue 19: ``{"inner": [one state dict per block], "order", "current_block", "generator"}``.
        """
        position: Any = state_dict
        if "inner" in state_dict:  # the layout before torch's: one state dict per block
            inner_states = list(state_dict["inner"])
        else:
            inner_states = self._split(state_dict)  # checks that there is a group per block's group
            position = state_dict["param_groups"][0].get(_POSITION)
            if not isinstance(position, Mapping):
                raise ValueError(f"state_dict's param_groups[0] has no {_POSITION!r} entry (the block position)")
        if len(inner_states) != len(self.inners):
            raise ValueError(f"state_dict has {len(inner_states)} blocks, this optimizer has {len(self.inners)}")
        if position["order"] != self.order:
            raise ValueError(
                f"state_dict was saved with order {position['order']!r}, this optimizer uses {self.order!r}"
            )
        for inner, inner_state in zip(self.inners, inner_states, strict=True):
            inner.load_state_dict(inner_state)
        self._sync_param_groups()  # Optimizer.load_state_dict builds new group dicts
        self._block = int(position["current_block"])
        self.generator.set_state(position["generator"])

    def _split(self, state_dict: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Torch's layout over all blocks -> one torch state dict per block (its groups by their ``"block"``)."""
        groups = list(state_dict["param_groups"])
        blocks = [group.get("block") for group in groups]
        expected = [block for block, inner in enumerate(self.inners) for _ in inner.param_groups]
        if blocks != expected:
            raise ValueError(
                f"state_dict's param_groups belong to blocks {blocks}, this optimizer's to blocks {expected}"
            )
        state = state_dict["state"]
        out: list[dict[str, Any]] = []
        for block in range(len(self.inners)):
            own = [
                {k: v for k, v in group.items() if k not in ("block", _POSITION)}
                for group in groups
                if group["block"] == block
            ]
            keys = [key for group in own for key in group["params"]]
            out.append({"state": {key: state[key] for key in keys if key in state}, "param_groups": own})
        return out

    def init_state(self) -> None:
        """Give every block that has no state yet its inner optimizer's state, without moving the position.

        Each such block takes one step with zero gradients and learning rate 0, as
        ``torch.distributed.checkpoint.state_dict`` does to a plain optimizer before it builds a state dict
        (Adam then counts one step, zero moments). Needed before :func:`get_state_dict` builds the template a
        sharded checkpoint is loaded into: torch's helper steps a fresh optimizer once, which for this one
        initializes only the current block, and ``dcp.load`` fills only the entries the template has. The
        checkpoint itself must hold every block's state, i.e. be saved after each block has been stepped at
        least once (``B`` steps in cyclic order); otherwise ``dcp.load`` names the missing entry.
        """
        for inner in self.inners:
            if inner.state:
                continue
            params = [p for group in inner.param_groups for p in group["params"]]
            grads = [p.grad for p in params]
            lrs = [group.get("lr") for group in inner.param_groups]
            for p in params:
                p.grad = torch.zeros_like(p)
            for group, lr in zip(inner.param_groups, lrs, strict=True):
                if lr is not None:
                    group["lr"] = torch.zeros_like(lr) if isinstance(lr, Tensor) else 0.0
            try:
                inner.step()
            finally:
                for group, lr in zip(inner.param_groups, lrs, strict=True):
                    if lr is not None:
                        group["lr"] = lr
                for p, grad in zip(params, grads, strict=True):
                    p.grad = grad

    # ------------------------------------------------------------------------------------------ helpers
    @staticmethod
    def blocks_by_module(model: nn.Module) -> list[list[nn.Parameter]]:
        """One block per module that owns parameters directly (in practice, per leaf layer), in model order.

        A parameter shared by several modules goes to the first of them, so the blocks are always disjoint.
        """
        blocks: list[list[nn.Parameter]] = []
        seen: set[nn.Parameter] = set()
        for module in model.modules():
            params = [p for p in module.parameters(recurse=False) if p not in seen]
            seen.update(params)
            if params:
                blocks.append(params)
        return blocks

    def _draw(self) -> int:
        return int(torch.randint(len(self.inners), (1,), generator=self.generator).item())

    def _sync_param_groups(self) -> None:
        self.param_groups = [group for inner in self.inners for group in inner.param_groups]

    def __getstate__(self) -> dict[str, Any]:  # pickling and deepcopy keep the blocks and the position
        state = super().__getstate__()
        state.update(inners=self.inners, order=self.order, seed=self.seed, _block=self._block)
        state["generator_state"] = self.generator.get_state()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        generator_state = state.pop("generator_state")
        super().__setstate__(state)
        self.generator = torch.Generator()
        self.generator.set_state(generator_state)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self.inners)} blocks, order={self.order!r}, inner={self.inners[0]!r})"


class _MergedState(Mapping[Tensor, Any]):
    """Read-only view of the inner optimizers' per-parameter state, so ``opt.state[p]`` works as usual."""

    def __init__(self, inners: Sequence[Optimizer]) -> None:
        self._inners = inners

    def __getitem__(self, p: Tensor) -> Any:
        for inner in self._inners:
            if p in inner.state:
                return inner.state[p]
        raise KeyError(p)

    def __iter__(self) -> Iterator[Tensor]:
        for inner in self._inners:
            yield from inner.state

    def __len__(self) -> int:
        return sum(len(inner.state) for inner in self._inners)
