"""Argument checks shared by `dm.weights`, `dm.losses` and `dm.noise`.

Every check raises a ``ValueError`` or ``TypeError`` whose message names the
offending argument and value, so that bad input fails loudly instead of
producing silently wrong numbers.
"""

from __future__ import annotations

import math
import numbers

import torch


def real(name: str, value) -> float:
    """A finite real number (bools are rejected: ``lam=True`` is a mistake)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return value


def nonnegative(name: str, value) -> float:
    value = real(name, value)
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return value


def positive(name: str, value) -> float:
    value = real(name, value)
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return value


def gce_q(value) -> float:
    value = real("q", value)
    if not 0.0 < value <= 1.0:
        raise ValueError(f"q must lie in (0, 1], got {value!r}")
    return value


def log_zero(value) -> float:
    """SL's constant A, the value given to log 0; it must be negative."""
    value = real("A", value)
    if value >= 0:
        raise ValueError(f"A (the value of log 0 in SL) must be < 0, got {value!r}")
    return value


def reduction(value, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"reduction must be one of {allowed}, got {value!r}")
    return value


def class_weight(weight) -> torch.Tensor | None:
    """A per-class weight as ``torch.nn.CrossEntropyLoss(weight=...)`` takes it:
    a 1-D tensor, NumPy array or sequence with one finite entry >= 0 per class,
    at least one of them > 0. Returns a copy (on the tensor's device) that
    keeps the given precision, or None. A floating tensor or NumPy array keeps
    its dtype (a float32 tensor stays float32, a float64 one float64);
    anything else (a list of Python floats, which are doubles; integers of any
    kind) becomes float64, where every integer up to 2^53 is exact. The
    losses cast it to their compute dtype in ``forward``; `float32_compatible`
    checks that cast."""
    if weight is None:
        return None
    try:
        w = torch.as_tensor(weight).detach()
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"weight must be a 1-D tensor or sequence of floats, got {weight!r}") from None
    if w.dtype == torch.bool or w.is_complex():
        raise TypeError(f"weight must hold real numbers, got dtype {w.dtype}")
    keeps_dtype = w.is_floating_point() and hasattr(weight, "dtype")  # a tensor or an array
    w = w.clone() if keeps_dtype else torch.as_tensor(weight, dtype=torch.float64, device=w.device).clone()
    if w.dim() != 1 or len(w) < 2:
        raise ValueError(f"weight must be 1-D with one entry per class (at least 2), got shape {tuple(w.shape)}")
    w64 = w.to(torch.float64)
    for bad, rule in ((~torch.isfinite(w64), "finite"), (w64 < 0, ">= 0")):
        if bool(bad.any()):
            i = int(bad.nonzero()[0])
            raise ValueError(f"weight must be {rule}, got {w64[i].item()!r} for class {i}")
    if not bool((w64 > 0).any()):
        raise ValueError(f"weight must have an entry > 0, its largest is {w64.max().item()!r}")
    return w


def float32_compatible(weight: torch.Tensor, logits_dtype) -> None:
    """A float64 class weight used with logits computed in float32 (every
    floating dtype but float64) is cast to float32 there: it must then stay
    finite and keep an entry > 0 (entries below float32's range become 0
    there, like any tiny weight rounded). Reads the weight's values (one
    device sync); `logits_and_targets` calls it with its value checks."""
    if weight.dtype != torch.float64 or logits_dtype == torch.float64:
        return
    w = weight.to(torch.float32)
    if bool(torch.isfinite(w).all() & (w > 0).any()):
        return
    largest = weight.max().item()
    if not bool(torch.isfinite(w).all()):
        raise ValueError(f"weight must fit in float32 to be used with {logits_dtype} logits (computed in "
                         f"float32), got {largest!r}; use float64 logits or smaller weights")
    raise ValueError(f"weight must have an entry > 0 in float32 to be used with {logits_dtype} logits "
                     f"(computed in float32), its largest is {largest!r}; use float64 logits or larger weights")


def logits_and_targets(logits, targets, check_values: bool, weight=None) -> None:
    """Shape and dtype checks always run (they are free); value checks
    (finite logits, targets in range) read the tensors' values, which costs a
    device synchronisation, and run only when ``check_values`` is true.
    ``weight``, a loss's per-class weight buffer, must match the logits'
    number of classes and device (also free); with the value checks, a
    float64 weight must also survive the cast to float32 where the logits
    are computed in float32 (`float32_compatible`)."""
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"logits must be a torch.Tensor, got {type(logits).__name__}")
    if not isinstance(targets, torch.Tensor):
        raise TypeError(f"targets must be a torch.Tensor, got {type(targets).__name__}")
    if logits.dim() != 2:
        raise ValueError(f"logits must be 2-D [batch, classes], got shape {tuple(logits.shape)}")
    if not logits.is_floating_point():
        raise TypeError(f"logits must be a floating-point tensor, got dtype {logits.dtype}")
    batch, classes = logits.shape
    if batch == 0:
        raise ValueError("empty batch: logits has shape (0, C)")
    if classes < 2:
        raise ValueError(f"need at least 2 classes, got logits of shape {tuple(logits.shape)}")
    if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
        raise TypeError(f"targets must be an integer tensor of class indices, got dtype {targets.dtype}")
    if targets.dim() != 1 or targets.shape[0] != batch:
        raise ValueError(
            f"targets must have shape ({batch},) to match logits {tuple(logits.shape)}, "
            f"got {tuple(targets.shape)}"
        )
    if weight is not None:
        if len(weight) != classes:
            raise ValueError(f"weight has {len(weight)} entries but the logits have {classes} classes")
        if weight.device != logits.device:
            raise ValueError(f"weight is on {weight.device} but the logits are on {logits.device}; "
                             "move the loss with .to(device)")
    if check_values:
        if weight is not None:
            float32_compatible(weight, logits.dtype)
        if not bool(torch.isfinite(logits).all()):
            bad = logits[~torch.isfinite(logits)][0].item()
            raise ValueError(f"logits must be finite, found {bad}")
        low, high = int(targets.min()), int(targets.max())
        if low < 0 or high >= classes:
            bad = low if low < 0 else high
            raise ValueError(f"targets must lie in [0, {classes - 1}], found {bad}")


def fraction(name: str, value) -> float:
    """A real number in [0, 1) (a noise rate, a held-out fraction)."""
    value = real(name, value)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must lie in [0, 1), got {value!r}")
    return value


def positive_integer(name: str, value) -> int:
    """An int >= 1 (bools rejected)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def positive_integers(config, fields) -> None:
    """Each of ``config``'s ``fields`` is an int >= 1 (bools rejected)."""
    for field in fields:
        positive_integer(field, getattr(config, field))


def method_settings(method, methods, lam, beta, q) -> None:
    """A loss method named in ``methods`` and valid DM (lam, beta) and GCE
    (q) settings."""
    if method not in methods:
        raise ValueError(f"method must be one of {methods}, got {method!r}")
    nonnegative("lam", lam)
    real("beta", beta)
    gce_q(q)
