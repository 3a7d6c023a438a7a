"""Label noise: corrupt a label vector reproducibly, and measure what was done.

Functions take labels as a 1-D integer NumPy array or torch tensor and return
the same kind (a torch result on the input's device). They never modify their
input. Randomness comes only from ``seed``, through NumPy's ``default_rng``, so
the same call gives the same labels on every machine.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch

from . import _checks

__all__ = ["symmetric", "transition_matrix", "realised_rate"]


def _labels_to_numpy(labels, num_classes: int, name: str = "labels") -> np.ndarray:
    if isinstance(labels, torch.Tensor):
        if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
            raise TypeError(f"{name} must be integer class indices, got dtype {labels.dtype}")
        array = labels.detach().cpu().numpy()
    elif isinstance(labels, np.ndarray):
        array = labels
        if array.dtype.kind not in "iu":
            raise TypeError(f"{name} must be integer class indices, got dtype {array.dtype}")
    else:
        raise TypeError(f"{name} must be a NumPy array or a torch tensor, got {type(labels).__name__}")
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
    if array.size and (array.min() < 0 or array.max() >= num_classes):
        bad = array.min() if array.min() < 0 else array.max()
        raise ValueError(f"{name} must lie in [0, {num_classes - 1}], found {bad}")
    return array.astype(np.int64)


def _like(array: np.ndarray, labels):
    if isinstance(labels, torch.Tensor):
        return torch.from_numpy(array).to(device=labels.device, dtype=labels.dtype)
    return array.astype(labels.dtype)


def _num_classes(num_classes) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral):
        raise TypeError(f"num_classes must be an integer, got {num_classes!r}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    return int(num_classes)


def _rate(rate) -> float:
    rate = _checks.real("rate", rate)
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"rate must lie in [0, 1), got {rate!r}")
    return rate


def symmetric(labels, rate: float, num_classes: int, seed: int):
    """Symmetric label noise as the paper defines it: exactly
    ``round(rate * N)`` labels, chosen uniformly at random without
    replacement, are each changed to one of the *other* ``num_classes - 1``
    classes, uniformly.

    So the realised noise rate is ``round(rate * N) / N`` exactly. Two common
    variants differ: flipping each label independently with probability
    ``rate`` (the authors' Matlab script; the realised rate is then only close
    to ``rate``), and redrawing the label from *all* classes (some "flips" keep
    the label, so the real rate is ``rate * (C - 1) / C``). With two classes
    "another class" is the opposite label.
    """
    num_classes = _num_classes(num_classes)
    rate = _rate(rate)
    clean = _labels_to_numpy(labels, num_classes)
    rng = np.random.default_rng(seed)
    flipped = rng.choice(clean.size, size=int(round(rate * clean.size)), replace=False)
    noisy = clean.copy()
    shift = rng.integers(1, num_classes, size=flipped.size)
    noisy[flipped] = (clean[flipped] + shift) % num_classes
    return _like(noisy, labels)


def transition_matrix(clean, noisy, num_classes: int) -> np.ndarray:
    """The realised noise transition matrix ``T[i, j]``: the fraction of
    examples of clean class ``i`` whose noisy label is ``j`` (rows sum to one;
    a class with no examples gets a row of zeros)."""
    num_classes = _num_classes(num_classes)
    clean = _labels_to_numpy(clean, num_classes, "clean")
    noisy = _labels_to_numpy(noisy, num_classes, "noisy")
    if clean.shape != noisy.shape:
        raise ValueError(f"clean and noisy must have the same shape, got {clean.shape} and {noisy.shape}")
    counts = np.zeros((num_classes, num_classes))
    np.add.at(counts, (clean, noisy), 1)
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def realised_rate(clean, noisy) -> float:
    """The fraction of labels that differ between ``clean`` and ``noisy``."""
    a = np.asarray(clean.cpu() if isinstance(clean, torch.Tensor) else clean)
    b = np.asarray(noisy.cpu() if isinstance(noisy, torch.Tensor) else noisy)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"clean and noisy must be non-empty 1-D and of one shape, got {a.shape} and {b.shape}")
    return float(np.mean(a != b))
