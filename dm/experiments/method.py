"""What every experiment's ``Config`` shares: the method fields (``method``,
``lam``, ``beta``, ``gce_q``), from which `make_loss` builds the loss and
`method_tag` names it in a run's name, and `changes_tag`, the hash of the
fields a configuration changes beyond what its readable name shows."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Optional

import torch

from .. import losses

__all__ = ["make_loss", "short_hash", "method_tag", "changes_tag"]


def make_loss(config, *, weight: Optional[torch.Tensor] = None, distributed: bool = False) -> torch.nn.Module:
    """The loss module of ``config.method`` (`dm.losses.make`) with
    ``config``'s ``lam``, ``beta`` and ``gce_q``; its input checks are off
    (a run checks its labels once, up front). ``weight``: class weights;
    ``distributed``: normalise over the global batch of all processes (a
    data-parallel run)."""
    return losses.make(config.method, lam=config.lam, beta=config.beta, q=config.gce_q, weight=weight,
                       check_inputs=False, distributed=distributed)


def short_hash(obj) -> str:
    """Eight hex digits identifying a JSON-able object (for unique names)."""
    return hashlib.sha1(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:8]


def method_tag(config) -> str:
    """The method part of a run's name: ``"CCE"``, ``"GCE-DN-q0.7"``, ``"DM-lam0.5-beta8"``.

    From ``config.method``, ``lam``, ``beta`` and ``gce_q``."""
    if config.method == "DM":
        return f"DM-lam{config.lam:g}-beta{config.beta:g}"
    if config.method.startswith("GCE"):
        return f"{config.method}-q{config.gce_q:g}"
    return config.method


def changes_tag(config, named) -> list:
    """``["x<hash>"]`` if ``config`` differs from ``named``, else ``[]``.

    ``named``: the same class built from only the fields its name shows. Two configs whose readable
    names agree so still get different folder names."""
    if config == named:
        return []
    changed = {k: v for k, v in dataclasses.asdict(config).items() if v != getattr(named, k)}
    return ["x" + short_hash(changed)]
