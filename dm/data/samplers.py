"""Which examples each iteration trains on, as a function of the seed and the position alone.

Randomness depends on the seed and the position in training (`seed_at`), never on a generator's
history, so a resumed run draws the same batches without saved generator states."""

from __future__ import annotations

from typing import Callable

import torch

__all__ = ["seed_at", "epoch_batches", "IMAGES_PER_CLASS", "class_batches"]


def seed_at(seed: int, position: int, stream: int = 0) -> int:
    """The seed of the generator used at ``position`` (an epoch or an iteration) of a run.

    ``seed * 1_000_003 + position + stream * 2**48``: ``stream`` keeps two kinds of randomness drawn
    at the same position apart (2**48 is beyond any ``seed * 1_000_003 + position`` of a real run).
    """
    return seed * 1_000_003 + position + stream * 2 ** 48


def epoch_batches(seed: int, n: int, batch_size: int, device) -> Callable[[int], torch.Tensor]:
    """The uniform sampler the trainers share: ``batch(it)``, iteration ``it``'s indices.

    ``batch(it)`` is the int64 index tensor ``[batch_size]`` on ``device``: the ``k``-th slice of
    epoch ``e``'s permutation of ``range(n)``, where ``e, k = divmod(it, n // batch_size)`` and the
    permutation comes from a generator seeded with ``seed_at(seed, e)``, so a resumed run draws the
    same batches. One permutation is kept at a time."""
    per_epoch = n // batch_size
    generator = torch.Generator()
    order = {"epoch": -1, "indices": None}

    def batch(it: int) -> torch.Tensor:
        epoch, k = divmod(it, per_epoch)
        if epoch != order["epoch"]:
            generator.manual_seed(seed_at(seed, epoch))
            order["indices"] = torch.randperm(n, generator=generator).to(device)
            order["epoch"] = epoch
        return order["indices"][k * batch_size:(k + 1) * batch_size]

    return batch


IMAGES_PER_CLASS = 8  # the "classes" sampler's K: 256 = 32 classes x 8 images


def class_batches(y_train: torch.Tensor, num_classes: int, batch_size: int, device):
    """The authors' "classes" sampler: each batch is P = batch_size / 8 classes of 8 images.

    Classes are those of the (noisy) labels ``y_train`` (int64 ``[N]`` on ``device``). The classes
    present are walked in windows of P through a permutation of ``floor(C / P) * P`` of them (for
    CIFAR-100, 96 of 100: three batches, then a new permutation), so each comes once per sweep; the
    8 images of a class are drawn without replacement (a class with fewer than 8 cycles through a
    random order of them). Returns ``draw(it, seed, generator)`` -> int64 image indices ``[P * 8]``
    on ``device``: sweep ``e``'s permutation comes from a generator seeded with
    ``seed_at(seed, e, stream=1)``, the images from ``generator``. Raises ValueError when the labels
    hold fewer than P classes. The authors' Matlab code: chapter 8, section "dm.data and the
    authors' Matlab code"."""
    by_class = torch.argsort(y_train, stable=True)
    counts = torch.bincount(y_train, minlength=num_classes)
    starts = torch.cumsum(counts, 0) - counts
    present = torch.nonzero(counts).flatten()
    per_batch = batch_size // IMAGES_PER_CLASS
    if len(present) < per_batch:
        raise ValueError(f"sampler 'classes' needs {per_batch} classes, the labels have {len(present)}")
    windows = len(present) // per_batch       # batches per sweep
    largest = max(int(counts.max()), IMAGES_PER_CLASS)
    columns = torch.arange(largest, device=device)
    sweep = {"index": -1, "classes": None}

    def draw(it: int, seed: int, generator: torch.Generator) -> torch.Tensor:
        index, window = divmod(it, windows)
        if index != sweep["index"]:
            order = torch.Generator().manual_seed(seed_at(seed, index, stream=1))
            chosen = torch.randperm(len(present), generator=order)[:windows * per_batch]
            sweep["index"], sweep["classes"] = index, present[chosen.to(device)]
        classes = sweep["classes"][window * per_batch:(window + 1) * per_batch]
        n = counts[classes][:, None]                                          # [P, 1]
        # Without replacement: the 8 smallest of uniform keys over each class's images.
        keys = torch.rand((per_batch, largest), device=device, generator=generator)
        keys = torch.where(columns[None, :] < n, keys, 2.0)
        offsets = torch.argsort(keys, dim=1)[:, :IMAGES_PER_CLASS]
        # A class with fewer than 8 images: a random order of 0..7, modulo its size.
        few = torch.argsort(torch.rand((per_batch, IMAGES_PER_CLASS), device=device, generator=generator),
                            dim=1) % n
        offsets = torch.where(n >= IMAGES_PER_CLASS, offsets, few)
        return by_class[(starts[classes][:, None] + offsets).flatten()]

    return draw
