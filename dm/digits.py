"""A small real problem for checking training behaviour on a CPU.

scikit-learn ships the UCI handwritten digits (1,797 real 8x8 images, 10
classes) inside the package, so this works offline. `load` splits them
(stratified, seeded), standardises the pixels with the training split's
statistics and corrupts the training labels with `dm.noise.symmetric`; `train`
fits a small MLP with SGD and momentum and records what the book's chapters
plot: test accuracy and the size of the logits over the steps.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from . import noise

__all__ = ["Digits", "load", "mlp", "train"]

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


def mlp(hidden: int = 64, seed: int = 0) -> nn.Sequential:
    """A 64-``hidden``-10 ReLU network, initialised from ``seed``."""
    with torch.random.fork_rng(devices=[]):  # seed the init without touching the global RNG
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, NUM_CLASSES))


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((model(x).argmax(1) == y).float().mean())


def train(loss: nn.Module, data: Digits, steps: int = 3000, lr: float = 0.1,
          momentum: float = 0.9, batch_size: int = 128, hidden: int = 64,
          seed: int = 0, record_every: int = 100) -> dict:
    """Train ``mlp(hidden, seed)`` on ``data``'s noisy labels with SGD.

    Returns the trained model and a history: at each recorded step, the test
    and validation accuracy and the largest absolute logit over the training
    set. Batches are drawn by a seeded permutation per epoch.
    """
    model = mlp(hidden, seed)
    optimiser = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    generator = torch.Generator().manual_seed(seed)
    n = len(data.y_train)
    order, position = torch.randperm(n, generator=generator), 0
    history = {"step": [], "test_accuracy": [], "val_accuracy": [], "max_abs_logit": []}
    for step in range(1, steps + 1):
        if position + batch_size > n:
            order, position = torch.randperm(n, generator=generator), 0
        batch = order[position:position + batch_size]
        position += batch_size
        optimiser.zero_grad(set_to_none=True)
        loss(model(data.x_train[batch]), data.y_train[batch]).backward()
        optimiser.step()
        if step % record_every == 0 or step == steps:
            with torch.no_grad():
                history["step"].append(step)
                history["test_accuracy"].append(accuracy(model, data.x_test, data.y_test))
                history["val_accuracy"].append(
                    accuracy(model, data.x_val, data.y_val) if len(data.y_val) else float("nan"))
                history["max_abs_logit"].append(float(model(data.x_train).abs().max()))
    return {"model": model, **history}
