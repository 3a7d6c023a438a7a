r"""Several losses at once, on the logits of K models stacked as ``[K, B, C]``.

`Stacked` evaluates K loss modules in one pass for K models trained side by
side (`dm.experiments.digits.train_pack`), where calling them one after another would cost K
times each module's fixed overhead per step; model k's gradient is the one
``losses[k](logits[k], targets[k])`` gives, to float rounding. Members it
cannot vectorise (a class weight, ``distributed=True``, a module from
elsewhere) are called one by one, so any list of losses works. A pack's state
follows one rule (`split_state`, `join_states`): each tensor is its K members'
tensors concatenated along dim 0. `dm.models.resnet.PackedResNet` and the trainers'
checkpoints (`dm.training.loop.fit`) keep to it, so a packed model's or
optimizer's state cuts into K states of runs of their own. How `Stacked`
vectorises: chapter 6, section "Inside dm.losses".
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Sequence

import torch
from torch import nn

from . import losses as _losses

__all__ = ["Stacked", "split_state", "join_states"]


def _vectorised(loss: nn.Module) -> bool:
    if getattr(loss, "distributed", False):  # normalised over all processes: one by one
        return False
    if isinstance(loss, _losses.DN):
        return _vectorised(loss.loss) and loss.reduction == "mean"
    if not isinstance(loss, (_losses._LogitLoss, _losses.DMLoss)) or loss.weight is not None:
        return False
    return isinstance(loss, _losses.DMLoss) or loss.reduction in ("mean", "sum")


def _group_key(loss: nn.Module):
    if isinstance(loss, _losses.DN):
        return (_losses.DN, type(loss.loss))
    return (type(loss), loss.reduction)


def _hyperparameters(modules: Sequence[nn.Module], dtype, device) -> SimpleNamespace:
    """The modules' hyper-parameters (their class's ``hyperparameters``) as
    ``[K_g, 1]`` tensors, as attributes of a stand-in for ``self``, so that
    the class's own formula methods compute all K_g losses at once."""
    return SimpleNamespace(**{
        name: torch.tensor([getattr(m, name) for m in modules], dtype=dtype, device=device)[:, None]
        for name in type(modules[0]).hyperparameters})


class Stacked(nn.Module):
    """K losses evaluated on stacked logits.

    ``Stacked(losses)(logits, targets)`` with ``logits`` of shape
    ``[K, B, C]`` and ``targets`` of shape ``[K, B]`` (or ``[B]``, shared)
    returns a ``[K]`` tensor whose entry k is ``losses[k](logits[k],
    targets[k])``; the backward pass of its sum gives each model its own
    loss's designed gradient. Input checks are the members' own
    (``check_inputs``), done once for the whole stack; a distributed member
    all-reduces its own normaliser, as it does alone. Raises ValueError for a
    member with ``reduction="none"``, TypeError or ValueError in forward for
    logits or targets of the wrong shape, dtype or values.
    """

    def __init__(self, losses: Sequence[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(losses)
        for k, loss in enumerate(self.members):
            if getattr(loss, "reduction", "mean") == "none":
                raise ValueError(f"Stacked needs one value per model, but loss {k} ({loss}) has reduction='none'")
        groups: dict = {}
        for k, loss in enumerate(self.members):
            key = _group_key(loss) if _vectorised(loss) else ("one by one", k)
            groups.setdefault(key, []).append(k)
        self.groups = list(groups.values())
        self.vectorised = [_vectorised(self.members[group[0]]) for group in self.groups]
        # the value checks run once for the whole stack if any member asks for them
        self.check_inputs = any(getattr(m.loss if isinstance(m, _losses.DN) else m, "check_inputs", False)
                                for m in self.members)
        self._cache: dict = {}
        # The vectorised members' values come first (group by group), then the others'.
        self._stacked = [k for group, v in zip(self.groups, self.vectorised) if v for k in group]
        order = self._stacked + [k for group, v in zip(self.groups, self.vectorised) if not v for k in group]
        self._in_order = order == list(range(len(order)))  # then the values need no reordering
        self.register_buffer("_inverse", torch.argsort(torch.tensor(order, dtype=torch.long)),
                             persistent=False)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The K losses' values ([K]) for ``logits`` [K, B, C] and ``targets``
        [K, B] or [B]; the backward pass of their sum gives each model its own
        designed gradient."""
        if logits.dim() != 3 or logits.shape[0] != len(self.members):
            raise ValueError(f"logits must have shape [K={len(self.members)}, B, C], "
                             f"got {tuple(logits.shape)}")
        K, B, C = logits.shape
        if targets.shape == (B,):
            targets = targets.expand(K, B)
        if targets.shape != (K, B):
            raise ValueError(f"targets must have shape [{K}, {B}] or [{B}], got {tuple(targets.shape)}")
        _losses._checks.logits_and_targets(logits.reshape(K * B, C), targets.reshape(K * B), self.check_inputs)
        values = [self._vectorised_values(logits, targets)] if self._stacked else []
        for group, vectorised in zip(self.groups, self.vectorised):
            if not vectorised:
                (k,) = group
                values.append(self.members[k](logits[k], targets[k]).reshape(1))
        values = values[0] if len(values) == 1 else torch.cat(values)
        return values if self._in_order else values[self._inverse]

    def _vectorised_values(self, logits, targets):
        """The vectorised members' values, group after group, with their
        designed gradient: the terms of their logits at once, then each
        group's values and magnitudes (`_group`), then one `_DesignedGradient`."""
        n = len(self._stacked)  # their logits, in group order: all, the first n, or gathered
        if self._stacked != list(range(n)):
            key = ("index", logits.device)
            if key not in self._cache:
                self._cache[key] = torch.tensor(self._stacked, device=logits.device)
            logits, targets = logits.index_select(0, self._cache[key]), targets.index_select(0, self._cache[key])
        elif n < len(logits):
            logits, targets = logits[:n], targets[:n]
        t = _losses._terms(logits, targets)  # [K', B] terms, [K', B, C] direction
        parts, start = [], 0
        for group, vectorised in zip(self.groups, self.vectorised):
            if vectorised:
                parts.append(self._group(group, _losses._Terms(*(x[start:start + len(group)] for x in t))))
                start += len(group)
        values, magnitudes = (torch.cat(x) if len(x) > 1 else x[0] for x in zip(*parts))
        return _losses._DesignedGradient.apply(logits, values, magnitudes, t.direction)

    def _stacked_hyperparameters(self, group, modules, dtype, device) -> SimpleNamespace:
        """`_hyperparameters` of a group, made once per dtype and device
        (the modules' hyper-parameters are read when first used)."""
        key = (group, dtype, device)
        if key not in self._cache:
            self._cache[key] = _hyperparameters(modules, dtype, device)
        return self._cache[key]

    def _group(self, group, t):
        """One group's values ([K_g]) and gradient magnitudes ([K_g, B]) from
        its terms ``t`` ([K_g, B])."""
        B = t.p.shape[1]
        first = self.members[group[0]]
        wrapped = isinstance(first, _losses.DN)
        modules = [self.members[k].loss if wrapped else self.members[k] for k in group]
        cls, h = type(modules[0]), self._stacked_hyperparameters(tuple(group), modules, t.p.dtype, t.p.device)
        if cls is _losses.DMLoss:  # as DMLoss.forward, normalised over each batch
            normalised = torch.softmax(cls.log_weight(h, t.p, t.pbar), dim=1)
            return (normalised * -t.log_p).sum(1), normalised * cls.fade(h, t.pbar)
        w = cls.example_weight(h, t.p, t.pbar)
        value = cls.value(h, t)
        if wrapped:  # as DN.forward: the weights over their batch total, the mean value
            return value.mean(1), w / _losses._total(w, dim=1)
        if first.reduction == "mean":
            return value.mean(1), w / B
        return value.sum(1), w


# --- the packing rule of a pack's states ----------------------------------------

def split_state(state, size: int) -> list:
    """A packed state (a model's or an optimizer's ``state_dict``, nested
    dicts and lists) as ``size`` members' states. The packing rule: every
    tensor with at least one dimension is its members' tensors concatenated
    along dim 0, so it is cut into ``size`` equal chunks there (copied, so
    that saving one member does not save the whole pack); everything else
    (0-d tensors such as batch norm's ``num_batches_tracked``, numbers,
    strings) is the members' common value, given to each."""
    if isinstance(state, torch.Tensor) and state.dim() > 0:
        if state.shape[0] % size:
            raise ValueError(f"a packed tensor of shape {tuple(state.shape)} does not split into {size} members")
        return [chunk.clone() for chunk in state.chunk(size, 0)]
    if isinstance(state, dict):
        parts = {key: split_state(value, size) for key, value in state.items()}
        return [type(state)((key, parts[key][k]) for key in state) for k in range(size)]
    if isinstance(state, (list, tuple)):
        parts = [split_state(value, size) for value in state]
        return [type(state)(part[k] for part in parts) for k in range(size)]
    return [state] * size


def join_states(states: list):
    """The inverse of `split_state`: members' states packed into one (tensors
    with a dimension concatenated along dim 0, the rest taken from the first
    member, where the members agree)."""
    first = states[0]
    if isinstance(first, torch.Tensor) and first.dim() > 0:
        return torch.cat(states, 0)
    if isinstance(first, dict):
        return type(first)((key, join_states([s[key] for s in states])) for key in first)
    if isinstance(first, (list, tuple)):
        return type(first)(join_states([s[i] for s in states]) for i in range(len(first)))
    return first
