"""The UCI handwritten digits (1,797 real 8x8 images, 10 classes), shipped
inside scikit-learn, so they work offline: a small real problem for checking
training behaviour on a CPU. `load` splits them (stratified, seeded),
standardises the pixels with the training split's statistics and corrupts
the training labels with `dm.noise.symmetric`."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from .. import noise

__all__ = ["NUM_CLASSES", "Digits", "load"]


NUM_CLASSES = 10


class Digits(NamedTuple):
    x_train: torch.Tensor        # [N, 64] float32, standardised
    y_train: torch.Tensor        # [N] int64, noisy labels (the ones to train on)
    y_train_clean: torch.Tensor  # [N] int64, the true labels
    x_val: torch.Tensor          # clean validation split (may be empty)
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def load(noise_rate: float = 0.0, seed: int = 0, test_fraction: float = 0.3,
         val_fraction: float = 0.0) -> Digits:
    """Digits split into train / clean validation / test, with symmetric noise
    at ``noise_rate`` on the training labels only."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x_rest, x_test, y_rest, y_test = train_test_split(
        x, y, test_size=test_fraction, random_state=seed, stratify=y)
    if val_fraction > 0:
        x_train, x_val, y_train, y_val = train_test_split(
            x_rest, y_rest, test_size=val_fraction / (1 - test_fraction),
            random_state=seed, stratify=y_rest)
    else:
        x_train, y_train = x_rest, y_rest
        x_val, y_val = x_rest[:0], y_rest[:0]
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6

    def features(a):
        return torch.as_tensor((a - mean) / std, dtype=torch.float32)

    def labels(a):
        return torch.as_tensor(a, dtype=torch.int64)

    y_noisy = noise.symmetric(y_train.astype(np.int64), noise_rate, NUM_CLASSES, seed)
    return Digits(features(x_train), labels(y_noisy), labels(y_train),
                  features(x_val), labels(y_val), features(x_test), labels(y_test))
