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

__all__ = [
    "symmetric",
    "asymmetric_cifar10",
    "asymmetric_cifar100",
    "transition_matrix",
    "realised_rate",
    "CIFAR10_CLASSES",
    "CIFAR100_FINE",
    "CIFAR100_COARSE",
    "CIFAR100_FINE_TO_COARSE",
]

# CIFAR-10's class names in label order (the data set's batches.meta).
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)

# CIFAR-100's fine and coarse class names in label order (the data set's `meta`
# file: fine labels are alphabetical, coarse labels too).
CIFAR100_FINE = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
    "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
    "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup",
    "dinosaur", "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house",
    "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man",
    "maple_tree", "motorcycle", "mountain", "mouse", "mushroom", "oak_tree", "orange", "orchid",
    "otter", "palm_tree", "pear", "pickup_truck", "pine_tree", "plain", "plate", "poppy",
    "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket", "rose", "sea", "seal",
    "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider", "squirrel", "streetcar",
    "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor",
    "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
)
CIFAR100_COARSE = (
    "aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables",
    "household_electrical_devices", "household_furniture", "insects", "large_carnivores",
    "large_man-made_outdoor_things", "large_natural_outdoor_scenes",
    "large_omnivores_and_herbivores", "medium_mammals", "non-insect_invertebrates", "people",
    "reptiles", "small_mammals", "trees", "vehicles_1", "vehicles_2",
)
# The superclass (coarse label) of each fine label, as in the CIFAR-100 pickles'
# `coarse_labels`. `dm.data.cifar` checks it against the real data when it loads
# CIFAR-100; tests check it against the class names above.
CIFAR100_FINE_TO_COARSE = (
    4, 1, 14, 8, 0, 6, 7, 7, 18, 3, 3, 14, 9, 18, 7, 11, 3, 9, 7, 11,
    6, 11, 5, 10, 7, 6, 13, 15, 3, 15, 0, 11, 1, 10, 12, 14, 16, 9, 11, 5,
    5, 19, 8, 8, 15, 13, 14, 17, 18, 10, 16, 4, 17, 4, 2, 0, 17, 4, 18, 17,
    10, 3, 2, 12, 12, 16, 12, 1, 9, 19, 2, 10, 0, 1, 16, 12, 9, 13, 15, 13,
    16, 19, 2, 4, 6, 19, 5, 5, 8, 19, 18, 1, 2, 15, 6, 0, 17, 8, 14, 13,
)

# The common asymmetric CIFAR-10 rule: truck -> automobile, bird -> airplane,
# deer -> horse, cat <-> dog (source class: target class).
CIFAR10_ASYMMETRIC_MAP = {9: 1, 2: 0, 4: 7, 3: 5, 5: 3}


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


def symmetric(labels, rate: float, num_classes: int, seed: int, exact: bool = True):
    """Symmetric label noise at rate ``rate`` (the paper's r), for labels in
    [0, ``num_classes``).

    ``exact=True``: exactly ``round(rate * N)`` labels, chosen uniformly at
    random without replacement, are each changed to one of the *other*
    ``num_classes - 1`` classes, uniformly (with two classes, the opposite
    label), so the realised noise rate is ``round(rate * N) / N`` exactly.
    ``exact=False``: each label is changed in that way independently, with
    probability ``rate``; the realised rate is only close to ``rate``. Raises
    TypeError or ValueError for labels that are not 1-D integer class indices
    in range, a ``rate`` outside [0, 1) or ``num_classes`` < 2. The two
    variants against the authors' generators: chapter 8, section "dm.noise and
    the authors' noise scripts".
    """
    num_classes = _num_classes(num_classes)
    rate = _rate(rate)
    clean = _labels_to_numpy(labels, num_classes)
    rng = np.random.default_rng(seed)
    if exact:
        flipped = rng.choice(clean.size, size=int(round(rate * clean.size)), replace=False)
    else:
        flipped = np.flatnonzero(rng.random(clean.size) < rate)
    noisy = clean.copy()
    shift = rng.integers(1, num_classes, size=flipped.size)
    noisy[flipped] = (clean[flipped] + shift) % num_classes
    return _like(noisy, labels)


def _flip(clean: np.ndarray, mapping: dict, rate: float, rng, exact: bool) -> np.ndarray:
    """Relabel examples of each source class ``s`` in ``mapping`` as
    ``mapping[s]``: exactly ``round(rate * n_s)`` of them (chosen uniformly
    without replacement) when ``exact``, else each one independently with
    probability ``rate``. Sources are visited in sorted order so the draw is
    deterministic."""
    noisy = clean.copy()
    for source in sorted(mapping):
        members = np.flatnonzero(clean == source)
        if exact:
            chosen = rng.choice(members, size=int(round(rate * members.size)), replace=False)
        else:
            chosen = members[rng.random(members.size) < rate]
        noisy[chosen] = mapping[source]
    return noisy


def asymmetric_cifar10(labels, rate: float, seed: int, exact: bool = True):
    """Asymmetric CIFAR-10 noise, the common class mapping: truck -> automobile,
    bird -> airplane, deer -> horse, cat <-> dog. Each example of those five
    classes is relabelled with probability ``rate``; the other five classes
    are untouched, so the overall realised rate is about ``rate / 2``.

    ``exact=True`` relabels exactly ``round(rate * n_c)`` examples of each
    source class ``c`` (as `symmetric` does for the whole set);
    ``exact=False`` flips each one independently (a Bernoulli draw).
    """
    rate = _rate(rate)
    clean = _labels_to_numpy(labels, 10)
    noisy = _flip(clean, CIFAR10_ASYMMETRIC_MAP, rate, np.random.default_rng(seed), exact)
    return _like(noisy, labels)


def asymmetric_cifar100(labels, rate: float, seed: int, exact: bool = True):
    """Asymmetric CIFAR-100 noise as the paper defines it (after the SL paper):
    within each of the 20 superclasses, two of its five subclasses are picked
    at random and their labels are swapped into each other with probability
    ``rate``. Only 40 of the 100 classes are touched, so the overall realised
    rate is about ``0.4 * rate``. The superclasses are CIFAR-100's own coarse
    labels (`CIFAR100_FINE_TO_COARSE`), as the paper's authors use them.

    ``exact=True`` (the default) relabels exactly ``round(rate * n_c)``
    examples of each chosen subclass ``c``; ``exact=False`` flips each of them
    independently with probability ``rate``. Raises as `symmetric` does. The
    authors' scripts: chapter 8, section "dm.noise and the authors' noise
    scripts"; public code that groups consecutive fine labels instead: chapter
    8, section "Table 1, reproduced".
    """
    rate = _rate(rate)
    clean = _labels_to_numpy(labels, 100)
    rng = np.random.default_rng(seed)
    coarse = np.asarray(CIFAR100_FINE_TO_COARSE)
    mapping = {}
    for superclass in range(20):
        a, b = rng.choice(np.flatnonzero(coarse == superclass), size=2, replace=False)
        mapping[int(a)], mapping[int(b)] = int(b), int(a)
    noisy = _flip(clean, mapping, rate, rng, exact)
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
