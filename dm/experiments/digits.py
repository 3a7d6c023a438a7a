"""The digits experiments (`dm.data.digits`): small MLPs trained with SGD and
momentum on noisy labels, through `dm.training.loop.fit` like every run.

`train` fits one model and records what the chapters plot (`HISTORY`);
`train_pack` trains K models at once (`dm.models.mlp.PackedMLP`), each with
its own loss, data and seed, which makes a grid of settings over many seeds
affordable on a CPU; `label_probabilities` records each example's p on the
way. `select_and_retrain_many` runs the paper's model-selection protocol:
fit every candidate on 80 % of the noisy training data, pick the best on the
other 20 % with their labels kept clean, retrain it on all the noisy
training data and measure it on the test split.
"""

from __future__ import annotations

from typing import Mapping, NamedTuple, Sequence

import numpy as np
import torch
from torch import nn

from .. import _checks, losses, packed
from .. import weights as _weights
from ..data.digits import NUM_CLASSES, Digits, load
from ..data.samplers import epoch_batches
from ..models.mlp import Bounded, PackedMLP, mlp as _mlp
from ..training.loop import Member, fit
from ..training.measures import TRAIN_MEASURES, train_measures
from ..training.runs import map_processes
from ..training.step import Step

__all__ = ["Digits", "load", "mlp", "Bounded", "accuracy", "fit_measures", "measure", "HISTORY", "train",
           "Setting", "Learner", "train_pack", "train_many", "label_probabilities",
           "selection_split", "select_and_retrain", "select_and_retrain_many"]

HISTORY = ("test_accuracy", "val_accuracy", "max_abs_logit", *TRAIN_MEASURES)
"""What `train` records at each recorded step, besides the step itself."""


def mlp(hidden: int = 64, seed: int = 0, bound: float | None = None) -> nn.Sequential:
    """The digits model: `dm.models.mlp.mlp` from 64 pixels to 10 classes
    through ``hidden`` ReLU units (0: a linear model), initialised from
    ``seed``, with a `Bounded` last layer when ``bound`` is given."""
    return _mlp(64, hidden, NUM_CLASSES, seed, bound)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """The share of ``x`` that ``model`` classifies as ``y``."""
    return float((model(x).argmax(1) == y).float().mean())


@torch.no_grad()
def fit_measures(model: nn.Module, data: Digits) -> dict:
    """The `dm.training.measures.TRAIN_MEASURES` of ``model`` on ``data``'s
    training set (``train_accuracy_corrupted``: memorised noise)."""
    return _fit_measures(model(data.x_train), data)


def _fit_measures(logits: torch.Tensor, data: Digits) -> dict:
    # `fit_measures` from the training set's logits, which `measure` also reads.
    p = torch.softmax(logits, 1).gather(1, data.y_train[:, None])[:, 0]
    return train_measures(logits.argmax(1)[None], data.y_train, data.y_train_clean, p[None])[0]


@torch.no_grad()
def measure(model: nn.Module, data: Digits) -> dict:
    """The measures named in `HISTORY`: test and validation accuracy (NaN
    without a validation split), the largest absolute logit over the training
    set, and `fit_measures` (one forward pass over the training set serves both)."""
    logits = model(data.x_train)
    return {
        "test_accuracy": accuracy(model, data.x_test, data.y_test),
        "val_accuracy": accuracy(model, data.x_val, data.y_val) if len(data.y_val) else float("nan"),
        "max_abs_logit": float(logits.abs().max()),
        **_fit_measures(logits, data),
    }


def _sgd(parameters, lr: float, momentum: float, weight_decay: float) -> torch.optim.SGD:
    # weight decay: SGD's L2 penalty on every parameter, biases included, as Caffe applies it
    return torch.optim.SGD(parameters, lr=lr, momentum=momentum, weight_decay=weight_decay)


def train(loss: nn.Module, data: Digits, steps: int = 3000, lr: float = 0.1,
          momentum: float = 0.9, weight_decay: float = 0.0, batch_size: int = 128,
          hidden: int = 64, seed: int = 0, record_every: int = 100, bound: float | None = None) -> dict:
    """Train ``mlp(hidden, seed, bound)`` on ``data``'s noisy labels with SGD
    (constant ``lr``; batches: `dm.data.samplers.epoch_batches` of ``seed``).

    Returns ``{"model": ..., "step": [...], <each of HISTORY>: [...]}``, one
    entry per ``record_every`` steps and at the end (`measure`). A run that
    diverges is recorded, not stopped: chapter 5 measures divergence."""
    model = mlp(hidden, seed, bound)
    step = Step(model, _sgd(model.parameters(), lr, momentum, weight_decay), loss)
    batch = epoch_batches(seed, len(data.y_train), batch_size, "cpu")

    def examples(it: int) -> tuple:
        index = batch(it)
        return data.x_train[index], data.y_train[index]

    (trained,) = fit(step, [Member(f"digits {loss}", {})], batch=examples, lr=lambda it: lr,
                     evaluate=lambda done: [measure(model, data)], iterations=steps,
                     eval_every=record_every, measures=HISTORY, check_finite=False)
    return {"model": model, "step": trained.history["iteration"],
            **{name: trained.history[name] for name in HISTORY}}


class Setting(NamedTuple):
    """One method and its hyper-parameters (the field names of every
    experiment's ``Config``), e.g. ``Setting("CCE")``, ``Setting("GCE",
    gce_q=0.7)`` or ``Setting("DM", lam=0.5, beta=8.0)``. Hashable, so equal
    settings are trained once."""
    method: str
    lam: float | None = None
    beta: float | None = None
    gce_q: float | None = None

    def make(self) -> nn.Module:
        """The `dm.losses` module (`dm.losses.make`), with input checks off
        (the data are validated once)."""
        if self.method not in ("CCE", "GCE", "DM"):
            raise ValueError(f"unknown method {self.method!r}; expected 'CCE', 'GCE' or 'DM'")
        return losses.make(self.method, lam=self.lam or 0.0, beta=self.beta or 0.0,
                           q=0.7 if self.gce_q is None else self.gce_q, check_inputs=False)

    @property
    def psi(self) -> float | None:
        """DM's emphasis mode ``lam / (lam + 1)`` (`dm.weights.emphasis_mode`); None otherwise."""
        return _weights.emphasis_mode(self.lam) if self.method == "DM" else None

    def __str__(self) -> str:
        if self.method == "DM":
            return f"DM(lam={self.lam:g}, beta={self.beta:g})"
        if self.method == "GCE":
            return f"GCE(q={self.gce_q:g})"
        return self.method


class Learner(NamedTuple):
    """One model of a `train_pack`: its loss, its training data (``x`` [N,
    64], ``y`` [N]) and the seed of its initialisation and its batches."""
    loss: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    seed: int = 0




def train_pack(learners: Sequence[Learner], steps: int = 1000, lr: float = 0.01, momentum: float = 0.9,
               weight_decay: float = 0.0, batch_size: int = 128, hidden: int = 64,
               bound: float | None = None) -> list[nn.Sequential]:
    """Train one ``mlp(hidden, learner.seed, bound)`` per learner, all at once, and
    return the K trained models.

    Model k is ``train(learners[k].loss, ...)`` with the same settings, to float
    rounding: it starts from ``mlp(hidden, learner.seed)`` and draws its batches
    from its own data as `train` does. The K models are one
    `dm.models.mlp.PackedMLP`, their losses one `dm.packed.Stacked`, and
    SGD acts elementwise, so each update is the one the model would get
    alone. All learners need the same number of examples (ValueError)."""
    return _train_pack(learners, steps, lr, momentum, weight_decay, batch_size, hidden, bound)[0]


def label_probabilities(learners: Sequence[Learner], record_at: Sequence[int], steps: int | None = None,
                        **train_kwargs) -> tuple[list[nn.Sequential], torch.Tensor]:
    """Train ``learners`` as `train_pack` does, recording after each step in
    ``record_at`` (0: the initialisation) every learner's softmax probability
    of each of its training labels (``learner.y`` on ``learner.x``), from which
    `dm.weights` gives each example's weight. Recording does not change
    the training.

    Returns the trained models and a float64 tensor ``[len(record_at), K, N]``."""
    record_at = [int(s) for s in record_at]
    steps = max(record_at) if steps is None else steps
    if not record_at or min(record_at) < 0 or max(record_at) > steps:
        raise ValueError(f"record_at must lie in [0, steps={steps}], got {record_at}")
    models, records = _train_pack(learners, steps, record_at=record_at, **train_kwargs)
    return models, torch.stack([records[s] for s in record_at]) if learners else torch.empty(len(record_at), 0, 0)


class _Grid(NamedTuple):
    """The learners' data, once per distinct data set, and their batch streams,
    once per seed: what `_train_pack` draws each step from."""
    x: torch.Tensor          # [D, N, 64]
    y: torch.Tensor          # [D, N]
    data_of: torch.Tensor    # [K, 1]: each learner's data set
    stream_of: torch.Tensor  # [K]: each learner's seed's stream
    streams: list            # one `epoch_batches` per seed
    shared: bool             # one data set and one seed for all

    def batch(self, it: int) -> tuple:
        index = torch.stack([stream(it) for stream in self.streams])  # [S, B]
        if self.shared:
            return self.x[0, index[0]], self.y[0, index[0]]
        index = index[self.stream_of]  # [K, B]
        return self.x[self.data_of, index], self.y[self.data_of, index]


def _grid(learners: list, batch_size: int) -> _Grid:
    sizes = {len(learner.y) for learner in learners}
    if len(sizes) != 1 or any(len(learner.x) != len(learner.y) for learner in learners):
        raise ValueError(f"every learner needs the same number of examples in x and y, got {sorted(sizes)}")
    datasets = list({(id(learner.x), id(learner.y)): (learner.x, learner.y) for learner in learners}.items())
    data_index = {key: i for i, (key, _) in enumerate(datasets)}
    seeds = list(dict.fromkeys(learner.seed for learner in learners))
    (n,) = sizes
    return _Grid(torch.stack([x for _, (x, _) in datasets]), torch.stack([y for _, (_, y) in datasets]),
                 torch.tensor([data_index[id(learner.x), id(learner.y)] for learner in learners])[:, None],
                 torch.tensor([seeds.index(learner.seed) for learner in learners]),
                 [epoch_batches(seed, n, batch_size, "cpu") for seed in seeds],
                 len(datasets) == 1 and len(seeds) == 1)


def _train_pack(learners, steps=1000, lr=0.01, momentum=0.9, weight_decay=0.0, batch_size=128, hidden=64,
                bound=None, record_at=()):
    """`train_pack`, and the probabilities `label_probabilities` records:
    ``(models, {step: [K, N] float64})``."""
    learners = [Learner(*learner) for learner in learners]
    if len(learners) == 0:
        return [], {}
    grid = _grid(learners, batch_size)
    model = PackedMLP([mlp(hidden, learner.seed, bound) for learner in learners])
    records, record_at = {}, set(record_at)

    @torch.no_grad()
    def record(done: int) -> list:
        if done in record_at:
            x, y = grid.x[grid.data_of[:, 0]], grid.y[grid.data_of[:, 0]]  # [K, N, 64], [K, N]
            records[done] = torch.softmax(model(x).double(), -1).gather(-1, y[..., None])[..., 0]
        return [{}] * len(learners)

    record(0)
    step = Step(model, _sgd(model.parameters(), lr, momentum, weight_decay),
                packed.Stacked([learner.loss for learner in learners]), members=len(learners))
    members = [Member(f"learner {k}", {}) for k in range(len(learners))]
    fit(step, members, batch=grid.batch, lr=lambda it: lr, evaluate=record, iterations=steps,
        eval_every=steps, eval_at=record_at, measures=(), check_finite=False)
    return model.unstack(), records


def train_many(loss_modules: Sequence[nn.Module], x: torch.Tensor, y: torch.Tensor,
               steps: int = 1000, lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 0.0,
               batch_size: int = 128, hidden: int = 64, seed: int = 0) -> list[nn.Sequential]:
    """`train_pack` with one learner per loss, all on ``(x, y)`` and ``seed``
    (one initialisation, the same batches). Returns the K trained models."""
    return train_pack([Learner(loss, x, y, seed) for loss in loss_modules], steps=steps, lr=lr,
                      momentum=momentum, weight_decay=weight_decay, batch_size=batch_size, hidden=hidden)


def select_and_retrain_many(tasks: Mapping, methods: Mapping[str, Sequence[Setting]],
                            val_fraction: float = 0.2, workers: int = 1, **train_kwargs) -> dict:
    """The paper's protocol on several noisy training sets at once, for
    several methods.

    ``tasks`` maps a key (e.g. ``(noise_rate, seed)``) to ``(data, seed)``: a
    `Digits` and the seed of its 80/20 split (`selection_split`),
    initialisation and batches. A method's candidates are trained on the
    noisy ``1 - val_fraction`` and scored on the rest with the clean labels;
    the first best is retrained on all the noisy training data and measured
    on the test split (a single candidate skips selection). All selection
    learners train in one `train_pack`, all retraining learners in another;
    ``train_kwargs`` go there. ``workers`` > 1: the tasks are dealt out to
    that many processes (`dm.training.runs.map_processes`).

    Returns, per task key and method: ``candidates``, their ``val_accuracy``
    (None without selection), the ``selected`` setting, and the retrained
    model's ``test_accuracy`` and `fit_measures`."""
    methods = {name: list(candidates) for name, candidates in methods.items()}
    if any(len(c) == 0 for c in methods.values()):
        raise ValueError("every method needs at least one candidate setting")
    if _checks.positive_integer("workers", workers) > 1 and len(tasks) > 1:
        return _in_processes(tasks, methods, val_fraction, workers, train_kwargs)
    val_accuracy = _validation_scores(tasks, methods, val_fraction, train_kwargs)
    selected = {key: {name: candidates[int(np.argmax([val_accuracy[key][s] for s in candidates]))]
                      if len(candidates) > 1 else candidates[0]
                      for name, candidates in methods.items()} for key in tasks}
    reports = _retrained(tasks, selected, train_kwargs)
    return {
        key: {name: {"candidates": candidates,
                     "val_accuracy": [val_accuracy[key][s] for s in candidates] if len(candidates) > 1 else None,
                     "selected": selected[key][name],
                     **reports[key][selected[key][name]]}
              for name, candidates in methods.items()}
        for key in tasks
    }


def _validation_scores(tasks: Mapping, methods: dict, val_fraction: float, train_kwargs: dict) -> dict:
    """Per task, each candidate's accuracy on the clean held-out part after
    training on the noisy rest (only methods with several candidates)."""
    to_select = list(dict.fromkeys(s for c in methods.values() if len(c) > 1 for s in c))
    scores = {key: {} for key in tasks}
    if not to_select:
        return scores
    learners, scored = [], []
    for key, (data, seed) in tasks.items():
        fit_part, val = selection_split(len(data.y_train), val_fraction, seed)
        learners += [Learner(s.make(), data.x_train[fit_part], data.y_train[fit_part], seed) for s in to_select]
        scored += [(key, s, data.x_train[val], data.y_train_clean[val]) for s in to_select]
    for (key, s, x_val, y_val), model in zip(scored, train_pack(learners, **train_kwargs)):
        scores[key][s] = accuracy(model, x_val, y_val)
    return scores


def _retrained(tasks: Mapping, selected: dict, train_kwargs: dict) -> dict:
    """Per task, each selected setting retrained on all the noisy training
    data: its test accuracy and `fit_measures`."""
    learners, trained = [], []
    for key, (data, seed) in tasks.items():
        for s in dict.fromkeys(selected[key].values()):
            learners.append(Learner(s.make(), data.x_train, data.y_train, seed))
            trained.append((key, s))
    reports = {key: {} for key in tasks}
    for (key, s), model in zip(trained, train_pack(learners, **train_kwargs)):
        data = tasks[key][0]
        reports[key][s] = {"test_accuracy": accuracy(model, data.x_test, data.y_test), **fit_measures(model, data)}
    return reports


def selection_split(n: int, val_fraction: float = 0.2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices ``(fit, val)`` splitting ``range(n)`` at random (seeded):
    ``round(val_fraction * n)`` examples for validation, the rest to fit."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction!r}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = int(round(val_fraction * n))
    return order[n_val:].sort().values, order[:n_val].sort().values


def select_and_retrain(data: Digits, methods: Mapping[str, Sequence[Setting]], seed: int = 0,
                       val_fraction: float = 0.2, **train_kwargs) -> dict[str, dict]:
    """The paper's protocol on one noisy training set: `select_and_retrain_many`
    with the single task ``(data, seed)``. Returns its result per method."""
    return select_and_retrain_many({None: (data, seed)}, methods, val_fraction, **train_kwargs)[None]


def _in_processes(tasks, methods, val_fraction, workers, train_kwargs) -> dict:
    """`select_and_retrain_many` with its tasks dealt out to ``workers``
    processes (`dm.training.runs.map_processes`); the results in the order of
    ``tasks``."""
    keys = list(tasks)
    shares = [{key: tasks[key] for key in keys[i::workers]} for i in range(workers)]
    calls = [dict(tasks=share, methods=methods, val_fraction=val_fraction, **train_kwargs)
             for share in shares if share]
    merged = {key: value for part in map_processes(select_and_retrain_many, calls, workers)
              for key, value in part.items()}
    return {key: merged[key] for key in keys}
