"""Run names: the part that names the method, and a hash of the fields a
configuration changes beyond what its readable name shows. Both experiments'
``Config.name`` use them."""

from __future__ import annotations

import dataclasses
import hashlib
import json

__all__ = ["short_hash", "method_tag", "changes_tag"]


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
