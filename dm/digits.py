"""A small real problem for checking training behaviour on a CPU.

scikit-learn ships the UCI handwritten digits (1,797 real 8x8 images, 10
classes) inside the package, so this works offline. `load` splits them
(stratified, seeded), standardises the pixels with the training split's
statistics and corrupts the training labels with `dm.noise.symmetric`; `train`
fits a small MLP with SGD and momentum and records what the book's chapters
plot: test accuracy and the size of the logits over the steps.

`select_and_retrain` runs the paper's model-selection protocol on one noisy
training set: fit every candidate setting on 80 % of the noisy training data,
pick the one with the best accuracy on the other 20 % with their labels kept
clean, retrain it on all the noisy training data and measure it on the test
split. `train_many` trains several copies of the MLP at once (one per loss),
which is what makes a grid of settings affordable on a CPU.
"""

from __future__ import annotations

import copy
from typing import Mapping, NamedTuple, Sequence

import numpy as np
import torch
from torch import nn

from . import losses, noise
from . import weights as _weights

__all__ = ["Digits", "load", "mlp", "train", "Setting", "train_many", "selection_split",
           "select_and_retrain"]

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


def _batches(n: int, batch_size: int, seed: int):
    """Mini-batch indices without end, as `train` and `train_many` draw them:
    a seeded permutation of ``range(n)`` per epoch, cut into batches; a
    remainder too short for a batch is skipped."""
    generator = torch.Generator().manual_seed(seed)
    order, position = torch.randperm(n, generator=generator), 0
    while True:
        if position + batch_size > n:
            order, position = torch.randperm(n, generator=generator), 0
        yield order[position:position + batch_size]
        position += batch_size


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
    batches = _batches(len(data.y_train), batch_size, seed)
    history = {"step": [], "test_accuracy": [], "val_accuracy": [], "max_abs_logit": []}
    for step in range(1, steps + 1):
        batch = next(batches)
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


class Setting(NamedTuple):
    """One loss and its hyper-parameters, e.g. ``Setting("CCE")``,
    ``Setting("GCE", q=0.7)`` or ``Setting("DM", lam=0.5, beta=8.0)``.

    Hashable, so equal settings are trained once."""
    loss: str
    lam: float | None = None
    beta: float | None = None
    q: float | None = None

    def make(self) -> nn.Module:
        """The `dm.losses` module (`dm.losses.make`), with input checks off
        (the data are validated once)."""
        if self.loss not in ("CCE", "GCE", "DM"):
            raise ValueError(f"unknown loss {self.loss!r}; expected 'CCE', 'GCE' or 'DM'")
        return losses.make(self.loss, lam=self.lam or 0.0, beta=self.beta or 0.0,
                           q=0.7 if self.q is None else self.q, check_inputs=False)

    @property
    def psi(self) -> float | None:
        """DM's emphasis mode ``lam / (lam + 1)`` (`dm.weights.emphasis_mode`); None otherwise."""
        return _weights.emphasis_mode(self.lam) if self.loss == "DM" else None

    def __str__(self) -> str:
        if self.loss == "DM":
            return f"DM(lam={self.lam:g}, beta={self.beta:g})"
        if self.loss == "GCE":
            return f"GCE(q={self.q:g})"
        return self.loss


def train_many(loss_modules: Sequence[nn.Module], x: torch.Tensor, y: torch.Tensor,
               steps: int = 1000, lr: float = 0.01, momentum: float = 0.9,
               batch_size: int = 128, hidden: int = 64, seed: int = 0) -> list[nn.Sequential]:
    """Train one ``mlp(hidden, seed)`` per loss on ``(x, y)``, all at once.

    Every model starts from the same initialisation and sees the same
    mini-batches, drawn exactly as `train` draws them (`_batches`: a seeded
    permutation per epoch), so model k is `train` with ``loss_modules[k]`` up to float
    rounding. The K models' parameters are stacked and run with
    ``torch.func.vmap``; the losses are summed, and since the models share no
    parameter each one's gradient is its own loss's. SGD with momentum acts
    elementwise, so the update is the one each model would get alone.

    Returns K independent trained copies of the MLP.
    """
    from torch.func import functional_call, stack_module_state, vmap

    if len(loss_modules) == 0:
        return []
    models = [mlp(hidden, seed) for _ in loss_modules]
    params, buffers = stack_module_state(models)
    skeleton = copy.deepcopy(models[0]).to("meta")
    forward = vmap(lambda p, b, inputs: functional_call(skeleton, (p, b), (inputs,)),
                   in_dims=(0, 0, None))
    optimiser = torch.optim.SGD(params.values(), lr=lr, momentum=momentum)
    batches = _batches(len(y), batch_size, seed)
    for _ in range(steps):
        batch = next(batches)
        optimiser.zero_grad(set_to_none=True)
        logits = forward(params, buffers, x[batch])  # [K, B, classes]
        targets = y[batch]
        sum(loss(logits[k], targets) for k, loss in enumerate(loss_modules)).backward()
        optimiser.step()
    with torch.no_grad():
        for k, model in enumerate(models):
            for name, parameter in model.named_parameters():
                parameter.copy_(params[name][k])
    return models


def selection_split(n: int, val_fraction: float = 0.2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices ``(fit, val)`` splitting ``range(n)`` at random (seeded):
    ``round(val_fraction * n)`` examples for validation, the rest to fit."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction!r}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = int(round(val_fraction * n))
    return order[n_val:].sort().values, order[:n_val].sort().values


def _fit_report(model: nn.Module, data: Digits) -> dict:
    with torch.no_grad():
        predicted = model(data.x_train).argmax(1)
    corrupted = data.y_train != data.y_train_clean
    return {
        "test_accuracy": accuracy(model, data.x_test, data.y_test),
        # how much of the noise the model has memorised, and how much of the rest it fits
        "corrupted_fit": float((predicted == data.y_train)[corrupted].float().mean())
        if corrupted.any() else float("nan"),
        "intact_fit": float((predicted == data.y_train)[~corrupted].float().mean()),
    }


def select_and_retrain(data: Digits, methods: Mapping[str, Sequence[Setting]], seed: int = 0,
                       val_fraction: float = 0.2, **train_kwargs) -> dict[str, dict]:
    """The paper's protocol on one noisy training set, for several methods.

    For each method, its candidate settings are trained (`train_many`) on
    ``1 - val_fraction`` of ``data``'s noisy training examples and scored on
    the other ``val_fraction``, whose labels are the clean ones
    (``data.y_train_clean``). The selected setting is the first one, in the
    method's own order, with the highest validation accuracy. It is then
    retrained on *all* the noisy training examples and measured on the test
    split. A method with a single candidate skips the selection runs.

    Only ``x_train``, ``y_train`` and ``y_train_clean`` are used for selection;
    the test split is read only to measure the retrained models. Settings
    shared between methods are trained once. ``train_kwargs`` go to
    `train_many` (``steps``, ``lr``, ...; ``seed`` is this function's).

    Returns, per method: ``candidates``, their ``val_accuracy`` (None without
    selection), the ``selected`` setting, and for the retrained model its
    ``test_accuracy``, ``corrupted_fit`` (the fraction of training examples
    with a corrupted label that it predicts *as labelled*, i.e. memorised
    noise) and ``intact_fit`` (the same on the uncorrupted ones).
    """
    methods = {name: list(candidates) for name, candidates in methods.items()}
    if any(len(c) == 0 for c in methods.values()):
        raise ValueError("every method needs at least one candidate setting")

    # 1. Selection: fit on the noisy 80 %, score on the clean 20 %.
    to_select = list(dict.fromkeys(s for c in methods.values() if len(c) > 1 for s in c))
    val_accuracy = {}
    if to_select:
        fit, val = selection_split(len(data.y_train), val_fraction, seed)
        models = train_many([s.make() for s in to_select], data.x_train[fit], data.y_train[fit],
                            seed=seed, **train_kwargs)
        x_val, y_val = data.x_train[val], data.y_train_clean[val]
        val_accuracy = {s: accuracy(m, x_val, y_val) for s, m in zip(to_select, models)}
    selected = {}
    for name, candidates in methods.items():
        scores = [val_accuracy[s] for s in candidates] if len(candidates) > 1 else None
        selected[name] = candidates[int(np.argmax(scores))] if scores else candidates[0]

    # 2. Retrain each selected setting on all the noisy training data; test it.
    to_train = list(dict.fromkeys(selected.values()))
    models = train_many([s.make() for s in to_train], data.x_train, data.y_train,
                        seed=seed, **train_kwargs)
    reports = {s: _fit_report(m, data) for s, m in zip(to_train, models)}
    return {
        name: {"candidates": candidates,
               "val_accuracy": [val_accuracy[s] for s in candidates] if len(candidates) > 1 else None,
               "selected": selected[name],
               **reports[selected[name]]}
        for name, candidates in methods.items()
    }
