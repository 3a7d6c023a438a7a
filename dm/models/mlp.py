"""Small fully connected networks: the digits models (`mlp`, with an optional
`Bounded` last layer), the IMDB network (`mlp` with 8 hidden units), and K
of them packed into one module (`PackedMLP`) that trains a grid at once."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

__all__ = ["Bounded", "mlp", "PackedMLP"]


class Bounded(nn.Module):
    """A non-linear last layer: ``bound * tanh(z / bound)``, elementwise. Close
    to the identity for small ``z``, it keeps every logit in ``(-bound,
    bound)``; it has no parameters."""

    def __init__(self, bound: float):
        super().__init__()
        self.bound = _check_bound(bound)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``bound * tanh(z / bound)`` of the logits ``z``, elementwise."""
        return self.bound * torch.tanh(z / self.bound)

    def extra_repr(self) -> str:
        return f"bound={self.bound:g}"


def _check_bound(bound):
    if bound is None:
        return None
    if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not np.isfinite(bound) or bound <= 0:
        raise ValueError(f"bound must be a finite number > 0 or None, got {bound!r}")
    return float(bound)


def mlp(inputs: int, hidden: int, classes: int, seed: int | None = None,
        bound: float | None = None) -> nn.Sequential:
    """``Linear(inputs, hidden)``, ReLU, ``Linear(hidden, classes)``; with
    ``hidden=0`` one ``Linear(inputs, classes)`` (softmax regression). With
    ``seed``, initialised from it without touching the global generator.
    With ``bound``, the logits then pass through `Bounded`; it changes no
    parameter and no initialisation. Raises ValueError for a negative
    ``hidden`` or a bad ``bound``."""
    if isinstance(hidden, bool) or not isinstance(hidden, (int, np.integer)) or hidden < 0:
        raise ValueError(f"hidden must be an integer >= 0, got {hidden!r}")
    bound = _check_bound(bound)
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        if hidden == 0:
            layers = [nn.Linear(inputs, classes)]
        else:
            layers = [nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, classes)]
    return nn.Sequential(*layers, *([Bounded(bound)] if bound is not None else []))


class PackedMLP(nn.Module):
    """K `mlp` models of one shape as one module: each parameter is the K
    models' parameters stacked along a first dimension (`dm.packed`'s rule),
    and the K forward passes are batched matrix products. ``forward``
    takes ``[B, inputs]`` (one batch for all) or ``[K, B, inputs]`` and
    returns ``[K, B, classes]``. The models share no parameter, so each one's
    gradient is its own loss's. `unstack` gives the K models back."""

    def __init__(self, models: Sequence[nn.Sequential]):
        super().__init__()
        self.hidden = len(models[0]) > 1 and isinstance(models[0][1], nn.ReLU)
        last = models[0][-1]
        self.bound = last.bound if isinstance(last, Bounded) else None
        self.template = [models[0]]  # a list: not a submodule, not in the state
        names = [name for name, _ in models[0].named_parameters()]
        self.weights = nn.ParameterList(
            torch.stack([dict(m.named_parameters())[name].detach() for m in models]) for name in names)
        self.names = names

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """``[B, inputs]`` or ``[K, B, inputs]`` -> the K models' logits ``[K, B, classes]``."""
        w = self.weights
        logits = torch.matmul(inputs, w[0].mT) + w[1][:, None]
        if self.hidden:
            logits = torch.matmul(torch.relu(logits), w[2].mT) + w[3][:, None]
        return logits if self.bound is None else self.bound * torch.tanh(logits / self.bound)

    def unstack(self) -> list:
        """The K models, as independent `mlp` modules with their trained weights."""
        import copy

        models = []
        for k in range(len(self.weights[0])):
            model = copy.deepcopy(self.template[0])
            with torch.no_grad():
                for name, parameter in model.named_parameters():
                    parameter.copy_(self.weights[self.names.index(name)][k])
            models.append(model)
        return models
