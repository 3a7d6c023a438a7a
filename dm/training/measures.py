"""How a model fits its noisy training set: one function for every
experiment, and the one list of its names."""

from __future__ import annotations

from typing import Optional

import torch

__all__ = ["TRAIN_MEASURES", "train_measures", "mean"]

TRAIN_MEASURES = ("train_accuracy_noisy_labels", "train_accuracy_clean_labels",
                  "train_accuracy_corrupted", "train_accuracy_intact",
                  "mean_p_corrupted", "mean_p_intact")
"""`train_measures`' names: the whole training set's accuracy against the
labels trained on and against the true ones (the paper's Table 9
"corrupted" / "intact" columns); the share of the corrupted part predicted
as labelled (memorised noise) and of the intact part; the mean softmax
probability of the labelled class on each part (Figure 2a)."""


def mean(values: torch.Tensor, decimals: Optional[int] = None) -> list:
    """``[K, n]`` -> K means (rounded to ``decimals``: 6 keeps a result's
    JSON free of float32 noise); K Nones when ``n`` is 0."""
    if not values.shape[-1]:
        return [None] * values.shape[0]
    return [_round(v, decimals) for v in values.float().mean(-1).tolist()]


def _round(value: float, decimals: Optional[int]) -> float:
    return value if decimals is None else round(value, decimals)


def train_measures(predicted: torch.Tensor, labels: torch.Tensor, clean: torch.Tensor,
                   p: Optional[torch.Tensor] = None, decimals: Optional[int] = None) -> list:
    """The `TRAIN_MEASURES` of K models, one dict each.

    ``predicted``: ``[K, N]`` predicted classes; ``labels``: the ``[N]``
    (or ``[K, N]``) labels trained on, ``clean``: the true ones, same
    shape; ``p``: ``[K, N]`` softmax probabilities of ``labels`` (the
    ``mean_p_*`` measures are None without it). A part with no example
    (no corrupted label at noise 0) measures None. ``decimals``: as for
    `mean`."""
    labels, clean = labels.expand_as(predicted), clean.expand_as(predicted)
    as_labelled = predicted == labels
    corrupted = labels != clean
    k = len(predicted)
    columns = {"train_accuracy_noisy_labels": mean(as_labelled, decimals),
               "train_accuracy_clean_labels": mean(predicted == clean, decimals)}
    for part, mask in (("corrupted", corrupted), ("intact", ~corrupted)):
        columns[f"train_accuracy_{part}"] = _masked_mean(as_labelled, mask, decimals)
        columns[f"mean_p_{part}"] = [None] * k if p is None else _masked_mean(p, mask, decimals)
    return [{name: columns[name][i] for name in TRAIN_MEASURES} for i in range(k)]


def _masked_mean(values: torch.Tensor, mask: torch.Tensor, decimals: Optional[int]) -> list:
    """Each row's mean over its masked entries (None where it has none)."""
    counts = mask.sum(-1)
    sums = torch.where(mask, values.float(), 0.0).sum(-1)
    return [None if int(n) == 0 else _round(float(s / n), decimals) for s, n in zip(sums, counts)]
