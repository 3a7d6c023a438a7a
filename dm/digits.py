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
split; `select_and_retrain_many` does it for many training sets (noise rates,
seeds) at once. `train_runs` trains many copies of the MLP at once, each with
its own loss, data and seed (`train_many`: one per loss on the same data),
which is what makes a grid of settings over many seeds affordable on a CPU.
"""

from __future__ import annotations

from typing import Mapping, NamedTuple, Sequence

import numpy as np
import torch
from torch import nn

from . import _checks, losses, noise, packed
from . import weights as _weights

__all__ = ["Digits", "load", "mlp", "Bounded", "fit_measures", "measure", "train", "HISTORY", "Setting", "Run", "train_runs", "train_many",
           "label_probabilities",
           "selection_split", "select_and_retrain", "select_and_retrain_many"]

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


class Bounded(nn.Module):
    """A non-linear last layer: ``bound * tanh(z / bound)``, elementwise. Close
    to the identity for small ``z``, it keeps every logit in ``(-bound,
    bound)``; it has no parameters."""

    def __init__(self, bound: float):
        super().__init__()
        self.bound = _check_bound(bound)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``bound * tanh(z / bound)`` of the logits ``z``, elementwise."""
        return self.bound * torch.tanh(z / self.bound)

    def extra_repr(self) -> str:
        return f"bound={self.bound:g}"


def _check_bound(bound):
    if bound is None:
        return None
    if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not np.isfinite(bound) or bound <= 0:
        raise ValueError(f"bound must be a finite number > 0 or None, got {bound!r}")
    return float(bound)


def mlp(hidden: int = 64, seed: int = 0, bound: float | None = None) -> nn.Sequential:
    """A 64-``hidden``-10 ReLU network, initialised from ``seed``; with
    ``hidden=0``, a linear model (one ``Linear(64, 10)`` layer, softmax
    regression). Its last layer is linear; with ``bound``, its output then
    passes through `Bounded` (``bound * tanh(z / bound)``), a non-linear last
    layer feeding the softmax. ``bound`` changes no parameter and no
    initialisation."""
    if isinstance(hidden, bool) or not isinstance(hidden, (int, np.integer)) or hidden < 0:
        raise ValueError(f"hidden must be an integer >= 0, got {hidden!r}")
    bound = _check_bound(bound)
    with torch.random.fork_rng(devices=[]):  # seed the init without touching the global RNG
        torch.manual_seed(seed)
        if hidden == 0:
            layers = [nn.Linear(64, NUM_CLASSES)]
        else:
            layers = [nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, NUM_CLASSES)]
    return nn.Sequential(*layers, *([Bounded(bound)] if bound is not None else []))


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


def fit_measures(model: nn.Module, data: Digits) -> dict:
    """How the model fits the training set: the whole set against the labels
    it was trained on and against the true ones (the paper's Table 9
    "corrupted" / "intact" columns), and each part (corrupted, intact labels)
    against the labels trained on. ``train_accuracy_corrupted`` is the share of
    corrupted labels the model predicts as labelled: memorised noise."""
    with torch.no_grad():
        predicted = model(data.x_train).argmax(1)
    corrupted = data.y_train != data.y_train_clean
    as_labelled = predicted == data.y_train

    def mean(mask):
        return float(mask.float().mean()) if len(mask) else float("nan")

    return {
        "train_accuracy_noisy_labels": mean(as_labelled),
        "train_accuracy_clean_labels": mean(predicted == data.y_train_clean),
        "train_accuracy_corrupted": mean(as_labelled[corrupted]),
        "train_accuracy_intact": mean(as_labelled[~corrupted]),
    }


def measure(model: nn.Module, data: Digits) -> dict:
    """The measures named in `HISTORY`: test and validation accuracy (NaN
    without a validation split), the largest absolute logit over the training
    set, and `fit_measures`."""
    with torch.no_grad():
        return {
            "test_accuracy": accuracy(model, data.x_test, data.y_test),
            "val_accuracy": accuracy(model, data.x_val, data.y_val) if len(data.y_val) else float("nan"),
            "max_abs_logit": float(model(data.x_train).abs().max()),
            **fit_measures(model, data),
        }


HISTORY = ("test_accuracy", "val_accuracy", "max_abs_logit", "train_accuracy_noisy_labels",
           "train_accuracy_clean_labels", "train_accuracy_corrupted", "train_accuracy_intact")
"""What `train` records at each recorded step, besides the step itself."""


def train(loss: nn.Module, data: Digits, steps: int = 3000, lr: float = 0.1,
          momentum: float = 0.9, weight_decay: float = 0.0, batch_size: int = 128,
          hidden: int = 64, seed: int = 0, record_every: int = 100, bound: float | None = None) -> dict:
    """Train ``mlp(hidden, seed, bound)`` on ``data``'s noisy labels with SGD.

    ``weight_decay`` is SGD's L2 penalty on every parameter, biases included
    (as Caffe applies it; the paper uses 1e-4 in its text, the authors' solver
    files 5e-4). Batches are drawn by a seeded permutation per epoch.

    Returns the trained model and a history: at each recorded step, the
    measures named in `HISTORY`: the test and validation accuracy, the largest
    absolute logit over the training set and the fit of the training set
    (`fit_measures`: against the noisy and the true labels, and the shares of
    corrupted and intact labels predicted as labelled).
    """
    model = mlp(hidden, seed, bound)
    optimiser = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    batches = _batches(len(data.y_train), batch_size, seed)
    history = {"step": [], **{name: [] for name in HISTORY}}
    for step in range(1, steps + 1):
        batch = next(batches)
        optimiser.zero_grad(set_to_none=True)
        loss(model(data.x_train[batch]), data.y_train[batch]).backward()
        optimiser.step()
        if step % record_every == 0 or step == steps:
            with torch.no_grad():
                measured = measure(model, data)
            history["step"].append(step)
            for name in HISTORY:
                history[name].append(measured[name])
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


class Run(NamedTuple):
    """One model for `train_runs` to train: its loss, its training data
    (``x`` [N, 64], ``y`` [N]) and the seed of its initialisation and of its
    mini-batches."""
    loss: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    seed: int = 0


def train_runs(runs: Sequence[Run], steps: int = 1000, lr: float = 0.01, momentum: float = 0.9,
               weight_decay: float = 0.0, batch_size: int = 128, hidden: int = 64,
               bound: float | None = None) -> list[nn.Sequential]:
    """Train one ``mlp(hidden, run.seed, bound)`` per run, all at once.

    Each run starts from ``mlp(hidden, run.seed)`` and draws its mini-batches
    from its own data exactly as `train` draws them (`_batches`: a seeded
    permutation per epoch), so model k is ``train(runs[k].loss, ...)`` with
    the same settings, up to float rounding. All runs' data sets must have the
    same number of examples. The K models' parameters are stacked and their
    forward passes run as batched matrix products; their K losses are evaluated together
    (`dm.packed.Stacked`) and summed. The models share no parameter, so each
    one's gradient is its own loss's, and SGD with momentum and weight decay
    acts elementwise, so each update is the one the model would get alone.
    Runs that share their data and seed share each batch's gather.

    ``hidden=0`` trains linear models, ``bound`` models whose last layer is
    `Bounded` (`mlp`).

    Returns K independent trained copies of the MLP.
    """
    return _train_runs(runs, steps, lr, momentum, weight_decay, batch_size, hidden, bound)[0]


def label_probabilities(runs: Sequence[Run], record_at: Sequence[int], steps: int | None = None,
                        **train_kwargs) -> tuple[list[nn.Sequential], torch.Tensor]:
    """Train ``runs`` as `train_runs` does and record, after each step in
    ``record_at`` (0 is the initialisation), every run's softmax probability
    of each of its training examples' labels: ``p`` of ``run.y`` (the noisy
    labels, the ones trained on) on ``run.x``, from which `dm.weights` gives
    each example's weight (the L1 norm of the loss's derivative with respect
    to the logits).

    ``steps`` defaults to the largest of ``record_at``; ``train_kwargs`` go to
    `train_runs` (``lr``, ``hidden``, ...). Recording does not change the
    training: the models are those `train_runs` returns.

    Returns the trained models and a float64 tensor ``[len(record_at), K, N]``.
    """
    record_at = [int(s) for s in record_at]
    steps = max(record_at) if steps is None else steps
    if not record_at or min(record_at) < 0 or max(record_at) > steps:
        raise ValueError(f"record_at must lie in [0, steps={steps}], got {record_at}")
    models, records = _train_runs(runs, steps, record_at=record_at, **train_kwargs)
    return models, torch.stack([records[s] for s in record_at]) if runs else torch.empty(len(record_at), 0, 0)


def _train_runs(runs, steps=1000, lr=0.01, momentum=0.9, weight_decay=0.0, batch_size=128, hidden=64,
                bound=None, record_at=()):
    """`train_runs`, and the probabilities `label_probabilities` records:
    ``(models, {step: [K, N] float64})``."""
    runs = [Run(*run) for run in runs]
    if len(runs) == 0:
        return [], {}
    sizes = {len(run.y) for run in runs}
    if len(sizes) != 1 or any(len(run.x) != len(run.y) for run in runs):
        raise ValueError(f"every run needs the same number of examples in x and y, got {sorted(sizes)}")
    (n,) = sizes
    # One copy of each distinct data set, and one batch stream per seed.
    datasets = list({(id(run.x), id(run.y)): (run.x, run.y) for run in runs}.items())
    data_index = {key: i for i, (key, _) in enumerate(datasets)}
    x_all = torch.stack([x for _, (x, _) in datasets])  # [D, N, 64]
    y_all = torch.stack([y for _, (_, y) in datasets])  # [D, N]
    seeds = list(dict.fromkeys(run.seed for run in runs))
    streams = [_batches(n, batch_size, seed) for seed in seeds]
    run_data = torch.tensor([data_index[id(run.x), id(run.y)] for run in runs])[:, None]
    run_stream = torch.tensor([seeds.index(run.seed) for run in runs])
    shared = len(datasets) == 1 and len(seeds) == 1

    models = [mlp(hidden, run.seed, bound) for run in runs]
    bound = _check_bound(bound)
    # The K MLPs' parameters stacked along a first dimension, and the K
    # forward passes as batched matrix products (faster than vmap here).
    params = {name: torch.stack([dict(m.named_parameters())[name].detach() for m in models]).requires_grad_()
              for name, _ in models[0].named_parameters()}

    def forward(inputs):  # [B, 64] (shared) or [K, B, 64] -> [K, B, 10]
        logits = torch.matmul(inputs, params["0.weight"].mT) + params["0.bias"][:, None]
        if hidden != 0:
            logits = torch.matmul(torch.relu(logits), params["2.weight"].mT) + params["2.bias"][:, None]
        return logits if bound is None else bound * torch.tanh(logits / bound)  # Bounded

    record_at, records = set(record_at), {}

    def record(step):
        if step in record_at:
            with torch.no_grad():
                x_runs, y_runs = x_all[run_data[:, 0]], y_all[run_data[:, 0]]  # [K, N, 64], [K, N]
                p = torch.softmax(forward(x_runs).double(), -1)
                records[step] = p.gather(-1, y_runs[..., None])[..., 0]

    record(0)

    criterion = packed.Stacked([run.loss for run in runs])
    optimiser = torch.optim.SGD(params.values(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    for step in range(1, steps + 1):
        batches = torch.stack([next(stream) for stream in streams])  # [S, B]
        if shared:
            inputs, targets = x_all[0, batches[0]], y_all[0, batches[0]]
        else:
            index = batches[run_stream]  # [K, B]
            inputs, targets = x_all[run_data, index], y_all[run_data, index]
        optimiser.zero_grad(set_to_none=True)
        criterion(forward(inputs), targets).sum().backward()
        optimiser.step()
        record(step)
    with torch.no_grad():
        for k, model in enumerate(models):
            for name, parameter in model.named_parameters():
                parameter.copy_(params[name][k])
    return models, records


def train_many(loss_modules: Sequence[nn.Module], x: torch.Tensor, y: torch.Tensor,
               steps: int = 1000, lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 0.0,
               batch_size: int = 128, hidden: int = 64, seed: int = 0) -> list[nn.Sequential]:
    """Train one ``mlp(hidden, seed)`` per loss on ``(x, y)``, all at once:
    `train_runs` with one run per loss, all on the same data and seed (so all
    start from the same initialisation and see the same mini-batches).

    Returns K independent trained copies of the MLP.
    """
    return train_runs([Run(loss, x, y, seed) for loss in loss_modules], steps=steps, lr=lr,
                      momentum=momentum, weight_decay=weight_decay, batch_size=batch_size, hidden=hidden)


def selection_split(n: int, val_fraction: float = 0.2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices ``(fit, val)`` splitting ``range(n)`` at random (seeded):
    ``round(val_fraction * n)`` examples for validation, the rest to fit."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction!r}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = int(round(val_fraction * n))
    return order[n_val:].sort().values, order[:n_val].sort().values


def select_and_retrain_many(tasks: Mapping, methods: Mapping[str, Sequence[Setting]],
                            val_fraction: float = 0.2, workers: int = 1, **train_kwargs) -> dict:
    """The paper's protocol on several noisy training sets at once, for
    several methods.

    ``tasks`` maps a key (e.g. ``(noise_rate, seed)``) to ``(data, seed)``: a
    `Digits` and the seed of that task's 80/20 split, initialisation and
    mini-batches. For each task and method, the method's candidate settings
    are trained on ``1 - val_fraction`` of the task's noisy training examples
    and scored on the other ``val_fraction``, whose labels are the clean ones
    (``data.y_train_clean``). The selected setting is the first one, in the
    method's own order, with the highest validation accuracy. It is then
    retrained on *all* the task's noisy training examples and measured on its
    test split. A method with a single candidate skips the selection runs.

    Only ``x_train``, ``y_train`` and ``y_train_clean`` are used for selection;
    the test split is read only to measure the retrained models. Settings
    shared between methods are trained once per task. All selection runs of
    all tasks are trained together by one `train_runs`, then all retraining
    runs by another; a task's results do not depend on the other tasks (up
    to float rounding). ``train_kwargs`` go to `train_runs` (``steps``,
    ``lr``, ``weight_decay``, ...).

    ``workers``: with more than one, the tasks are dealt out to that many
    new Python processes, each with one torch thread (the small matrices
    here gain little from a second thread, and much from a second process).

    Returns, per task key and method: ``candidates``, their ``val_accuracy``
    (None without selection), the ``selected`` setting, and for the retrained
    model its ``test_accuracy`` and its fit of the training set
    (`fit_measures`; ``train_accuracy_corrupted`` is the share of the
    corrupted labels it predicts *as labelled*, i.e. memorised noise).
    """
    methods = {name: list(candidates) for name, candidates in methods.items()}
    if any(len(c) == 0 for c in methods.values()):
        raise ValueError("every method needs at least one candidate setting")
    if _checks.positive_integer("workers", workers) > 1 and len(tasks) > 1:
        return _in_processes(tasks, methods, val_fraction, workers, train_kwargs)
    to_select = list(dict.fromkeys(s for c in methods.values() if len(c) > 1 for s in c))

    # 1. Selection: fit on the noisy 80 %, score on the clean 20 %.
    val_accuracy = {key: {} for key in tasks}
    if to_select:
        runs, scored = [], []
        for key, (data, seed) in tasks.items():
            fit, val = selection_split(len(data.y_train), val_fraction, seed)
            x_fit, y_fit = data.x_train[fit], data.y_train[fit]
            runs += [Run(s.make(), x_fit, y_fit, seed) for s in to_select]
            scored += [(key, s, data.x_train[val], data.y_train_clean[val]) for s in to_select]
        models = train_runs(runs, **train_kwargs)
        for (key, s, x_val, y_val), model in zip(scored, models):
            val_accuracy[key][s] = accuracy(model, x_val, y_val)
    selected = {key: {} for key in tasks}
    for key in tasks:
        for name, candidates in methods.items():
            scores = [val_accuracy[key][s] for s in candidates] if len(candidates) > 1 else None
            selected[key][name] = candidates[int(np.argmax(scores))] if scores else candidates[0]

    # 2. Retrain each selected setting on all the noisy training data; test it.
    runs, trained = [], []
    for key, (data, seed) in tasks.items():
        for s in dict.fromkeys(selected[key].values()):
            runs.append(Run(s.make(), data.x_train, data.y_train, seed))
            trained.append((key, s))
    reports = {key: {} for key in tasks}
    for (key, s), model in zip(trained, train_runs(runs, **train_kwargs)):
        data = tasks[key][0]
        reports[key][s] = {"test_accuracy": accuracy(model, data.x_test, data.y_test),
                           **fit_measures(model, data)}
    return {
        key: {name: {"candidates": candidates,
                     "val_accuracy": [val_accuracy[key][s] for s in candidates] if len(candidates) > 1 else None,
                     "selected": selected[key][name],
                     **reports[key][selected[key][name]]}
              for name, candidates in methods.items()}
        for key in tasks
    }


def _in_processes(tasks, methods, val_fraction, workers, train_kwargs) -> dict:
    """`select_and_retrain_many` with its tasks dealt out to ``workers``
    processes (`dm.runs.map_processes`); the results in the order of
    ``tasks``."""
    from . import runs

    keys = list(tasks)
    shares = [{key: tasks[key] for key in keys[i::workers]} for i in range(workers)]
    calls = [dict(tasks=share, methods=methods, val_fraction=val_fraction, **train_kwargs)
             for share in shares if share]
    merged = {key: value for part in runs.map_processes(select_and_retrain_many, calls, workers)
              for key, value in part.items()}
    return {key: merged[key] for key in keys}


def select_and_retrain(data: Digits, methods: Mapping[str, Sequence[Setting]], seed: int = 0,
                       val_fraction: float = 0.2, **train_kwargs) -> dict[str, dict]:
    """The paper's protocol on one noisy training set: `select_and_retrain_many`
    with the single task ``(data, seed)``. Returns its result per method."""
    return select_and_retrain_many({None: (data, seed)}, methods, val_fraction, **train_kwargs)[None]
