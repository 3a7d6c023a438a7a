"""The paper's sentiment experiment (Table 5): one configuration in, one JSON file out.

IMDB reviews as PV-DBOW paragraph vectors (`dm.data.paragraph_vectors`), a network with one
hidden layer of 8 units, label noise and class imbalance; each run in its run folder
(`dm.training.runs`). The paper's settings (Section 4 and Table 5) are `PAPER_IMDB`; what the
paper does not give, and what was chosen instead, is marked "not in the paper" beside each
field. Command line: ``python -m dm imdb --help``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np
import torch
from torch import nn

from .. import _checks, losses, noise
from ..data import digits, imdb, paragraph_vectors
from ..data.samplers import epoch_batches
from ..models.mlp import mlp
from ..training.loop import Member, fit
from ..training.measures import TRAIN_MEASURES, mean, train_measures
from ..training.runs import finish, load_result, provenance, run_all as _run_all, timing
from ..training.step import Step
from . import notebook
from .notebook import NotebookSetup
from .method import changes_tag, make_loss, method_tag

__all__ = [
    "Config", "PAPER_IMDB", "METHODS", "CLASS_WEIGHTS", "lr_at", "Dataset", "dataset", "digits_standin",
    "DIGITS_STANDIN", "class_weights", "training_labels", "run", "smoke_config",
    "notebook_setup", "run_all",
]

METHODS = losses.METHODS  # CCE, GCE, MAE, MSE, their -DN variants, DM
CLASS_WEIGHTS = ("none", "balanced")


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything that determines an IMDB run's numbers; the defaults are the paper's (`PAPER_IMDB`).

    Raises ValueError or TypeError for an invalid field."""

    method: str = "CCE"            # one of METHODS
    lam: float = 0.0               # DM's lambda (method "DM" only)
    beta: float = 0.0              # DM's beta; negative favours easy examples
    gce_q: float = 0.7             # not in the paper for IMDB: GCE's usual q (Zhang and Sabuncu 2018)
    class_weight: str = "none"     # "balanced": class k weighs n / (2 n_k), n_k counted on the training labels
    noise_rate: float = 0.0        # symmetric: each flipped label becomes the other class
    imbalance: int = 1             # keep all positives and n_pos // imbalance negatives (10, 50 in Table 5)
    features: str = ""             # dm.data.paragraph_vectors cache key of the features trained on
    hidden: int = 8                # one hidden layer of 8 units (paper); ReLU: not in the paper
    iterations: int = 10_000
    batch_size: int = 100          # not in the paper: 10k iterations = 40 passes over the balanced 25k
    lr: float = 0.01
    lr_gamma: float = 1e-5         # Caffe "inv": lr * (1 + gamma * t) ** -power
    lr_power: float = 0.75
    momentum: float = 0.9
    weight_decay: float = 0.002
    seed: int = 123
    eval_every: int = 500          # not in the paper
    checkpoint_every: int = 1000

    def __post_init__(self):
        _checks.method_settings(self.method, METHODS, self.lam, self.beta, self.gce_q)
        if self.class_weight not in CLASS_WEIGHTS:
            raise ValueError(f"class_weight must be one of {CLASS_WEIGHTS}, got {self.class_weight!r}")
        _checks.fraction("noise_rate", self.noise_rate)
        _checks.positive_integers(
            self, ("imbalance", "hidden", "iterations", "batch_size", "eval_every", "checkpoint_every"))
        if not isinstance(self.features, str):
            raise TypeError(f"features must be a str (a dm.data.paragraph_vectors cache key), got {self.features!r}")
        _checks.positive("lr", self.lr)
        _checks.nonnegative("lr_gamma", self.lr_gamma)
        _checks.nonnegative("lr_power", self.lr_power)
        _checks.nonnegative("momentum", self.momentum)
        _checks.nonnegative("weight_decay", self.weight_decay)

    def name(self) -> str:
        """A readable, unique folder name for the run."""
        method = method_tag(self)
        if self.class_weight != "none":
            method += f"-cw{self.class_weight}"
        data = f"pn{self.imbalance}" if self.imbalance > 1 else "balanced"
        noise_tag = "clean" if self.noise_rate == 0 else f"sym{self.noise_rate:g}"
        named = Config(method=self.method, lam=self.lam, beta=self.beta, gce_q=self.gce_q,
                       class_weight=self.class_weight, noise_rate=self.noise_rate,
                       imbalance=self.imbalance, features=self.features, seed=self.seed)
        return "_".join(["imdb", f"pv{self.features[:8] or 'none'}", data, noise_tag, method,
                         *changes_tag(self, named), f"seed{self.seed}"])


PAPER_IMDB = Config()

def lr_at(config: Config, iteration: int) -> float:
    """Caffe's "inv" rate at (0-based) ``iteration``: ``lr * (1 + gamma * iteration) ** -power``."""
    return config.lr * (1.0 + config.lr_gamma * iteration) ** (-config.lr_power)


class Dataset(NamedTuple):
    """The experiment's data: paragraph vectors and labels of the (balanced) training and test sets."""
    x_train: np.ndarray     # float32 [25000, d]
    y_train: np.ndarray     # int64 (0 negative, 1 positive)
    x_test: np.ndarray
    y_test: np.ndarray
    features: str           # the vectors' cache key (Config.features must match)
    fabricated: bool        # the reviews came from dm.data.imdb.fabricate
    identity: Optional[dict] = None  # which reviews (`dm.data.imdb.Imdb.identity`), recorded in result.json


def dataset(data: imdb.Imdb, features: paragraph_vectors.Features) -> Dataset:
    """The `Dataset` of the reviews ``data`` represented by ``features``.

    Raises ValueError for features trained on other reviews or of another size."""
    if features.meta.get("reviews_sha256") not in (None, data.digest):
        raise ValueError(f"features were trained on other reviews (digest "
                         f"{features.meta['reviews_sha256']}) than data ({data.digest})")
    if len(features.train) != len(data.train.labels) or len(features.test) != len(data.test.labels):
        raise ValueError("features and data have different numbers of reviews")
    return Dataset(features.train, data.train.labels, features.test, data.test.labels,
                   features.key, bool(data.fabricated), data.identity())


DIGITS_STANDIN = "digits-binary"  # Dataset.features of `digits_standin`


def digits_standin(seed: int = 0) -> Dataset:
    """A real binary `Dataset` that runs offline: scikit-learn's digits, 0-4 against 5-9.

    For checking this module's runs on something other than fabricated reviews:
    `dm.data.digits.load` (8x8 images as 64 standardised float32 features, a stratified 70/30
    train/test split) with 0-4 as the negative class and 5-9 as the positive one. No stand-in for
    IMDB's numbers, only for the training behaviour of the paper's solver and methods. Its
    ``features`` is `DIGITS_STANDIN`."""
    data = digits.load(seed=seed)
    binary = lambda labels: (labels.numpy() >= 5).astype(np.int64)  # noqa: E731
    return Dataset(data.x_train.numpy(), binary(data.y_train), data.x_test.numpy(),
                   binary(data.y_test), DIGITS_STANDIN, False,
                   {"dataset": "digits", "copy": "scikit-learn",
                    "description": "scikit-learn's digits, 0-4 against 5-9 (not IMDB)"})


def class_weights(labels: np.ndarray, classes: int = 2) -> np.ndarray:
    """"Balanced" class weights ``n / (classes * n_k)``, float64 ``[classes]``.

    scikit-learn's ``class_weight="balanced"``: every class then carries the same total weight. A
    class with no example gets weight 0."""
    counts = np.bincount(labels, minlength=classes).astype(np.float64)
    with np.errstate(divide="ignore"):
        return np.where(counts > 0, len(labels) / (classes * counts), 0.0)


def _recalls(predicted: torch.Tensor, labels: torch.Tensor) -> list:
    # None for a class absent from ``labels`` (never on IMDB's balanced test set).
    return [round(float((predicted[labels == k] == k).float().mean()), 6) if bool((labels == k).any())
            else None for k in range(2)]


_MEASURES = ("test_accuracy", "test_balanced_accuracy", "test_recall_negative", "test_recall_positive",
             *TRAIN_MEASURES)


def training_labels(config: Config, data: Dataset) -> tuple:
    """``(kept, clean, noisy)``: the training reviews ``config`` keeps, their labels, and noisy ones.

    ``kept``: all, or with ``config.imbalance`` all positives and ``n_pos // imbalance`` negatives
    (`dm.data.imdb.imbalanced`); ``noisy``: their labels with ``config.noise_rate`` of them flipped
    (`dm.noise.symmetric`, exact count). Both draws are seeded by ``config.seed``, so every method
    sees the same labels. Raises ValueError where fewer reviews than ``config.batch_size`` are kept.
    """
    kept = imdb.imbalanced(data.y_train, config.imbalance, config.seed) if config.imbalance > 1 \
        else np.arange(len(data.y_train))
    clean = data.y_train[kept]
    noisy = noise.symmetric(clean, config.noise_rate, 2, config.seed) if config.noise_rate else clean.copy()
    if len(kept) < config.batch_size:
        raise ValueError(f"batch_size {config.batch_size} exceeds the {len(kept)} training reviews")
    return kept, clean, noisy


class _Evaluation:
    """What `run` records at each evaluation: the test set's measures and `TRAIN_MEASURES`.

    The test set's accuracy, balanced accuracy and per-class recall."""

    def __init__(self, model: nn.Module, x_train, y_train, y_clean, x_test, y_test):
        self.model, self.x_train, self.y_train, self.y_clean = model, x_train, y_train, y_clean
        self.x_test, self.y_test = x_test, y_test

    @torch.no_grad()
    def __call__(self, done: int) -> list:
        self.model.eval()
        predicted = self.model(self.x_test).argmax(1)
        logits = self.model(self.x_train)
        self.model.train()
        recall = _recalls(predicted, self.y_test)
        p = torch.softmax(logits, 1).gather(1, self.y_train[:, None])[:, 0]
        return [{"test_accuracy": mean((predicted == self.y_test)[None], 6)[0],
                 "test_balanced_accuracy": round(float(np.mean([r for r in recall if r is not None])), 6),
                 "test_recall_negative": recall[0], "test_recall_positive": recall[1],
                 **train_measures(logits.argmax(1)[None], self.y_train, self.y_clean, p[None], decimals=6)[0]}]


def run(config: Config, runs_dir, data: Dataset, *, device=None, progress: bool = True,
        stop_at: Optional[int] = None) -> Optional[dict]:
    """Train ``config`` on ``data`` (or resume it, or return its stored result).

    It trains on `training_labels`' reviews and labels, tests on the balanced 25k, and keeps its
    folder as `dm.training.runs` does. ``device``: default the CPU (for an 8-unit network a GPU
    spends its time launching kernels). ``stop_at``: stop there, as an interruption would (returns
    None).

    Returns the result also written to ``<runs_dir>/<config.name()>/result.json``: the history of
    `_MEASURES` every ``eval_every`` iterations, the final values, the training set's class counts,
    the realised noise rate and the class weights used. Raises TypeError or ValueError for data that
    do not fit ``config``."""
    if not isinstance(config, Config):
        raise TypeError(f"config must be a dm.experiments.imdb.Config, got {type(config).__name__}")
    if not isinstance(data, Dataset):
        raise TypeError(f"data must be a dm.experiments.imdb.Dataset, got {type(data).__name__}")
    if data.features != config.features:
        raise ValueError(f"data holds the features {data.features!r}, config.features is {config.features!r}")
    stored = load_result(config, runs_dir)
    if stored is not None:
        return stored
    out = Path(runs_dir) / config.name()
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(device or "cpu")
    kept, clean, noisy = training_labels(config, data)
    weight = torch.tensor(class_weights(noisy), dtype=torch.float32) if config.class_weight == "balanced" else None

    def tensor(array, dtype=None):
        return torch.from_numpy(np.ascontiguousarray(array, dtype=dtype)).to(device)

    x_train, y_train, y_clean = tensor(data.x_train[kept], np.float32), tensor(noisy), tensor(clean)
    model = mlp(x_train.shape[1], config.hidden, 2, seed=config.seed).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    step = Step(model, optimizer, make_loss(config, weight=weight).to(device), device=device)
    order = epoch_batches(config.seed, len(kept), config.batch_size, device)

    def batch(it: int) -> tuple:
        index = order(it)
        return x_train[index], y_train[index]

    evaluate = _Evaluation(model, x_train, y_train, y_clean, tensor(data.x_test, np.float32), tensor(data.y_test))
    trained = fit(step, [Member(config.name(), dataclasses.asdict(config), out)],
                  batch=batch, lr=lambda it: lr_at(config, it),
                  evaluate=evaluate, iterations=config.iterations, eval_every=config.eval_every,
                  checkpoint_every=config.checkpoint_every, measures=_MEASURES, progress=progress,
                  stop_at=stop_at)
    if trained is None:
        return None
    history = trained[0].history
    return finish(out, {
        "name": config.name(),
        "config": dataclasses.asdict(config),
        "best_test_accuracy": max(history["test_accuracy"]),
        **{f"final_{key}": history[key][-1] for key in _MEASURES},
        "train_class_counts": np.bincount(noisy, minlength=2).tolist(),
        "train_class_counts_clean": np.bincount(clean, minlength=2).tolist(),
        "class_weights": None if weight is None else weight.tolist(),
        "realised_noise_rate": noise.realised_rate(clean, noisy),
        "train_size": int(len(kept)), "test_size": int(len(data.y_test)),
        "history": history,
        **provenance(device),
        **timing(trained[0]),
        # "smoke" whenever the reviews were fabricated, whatever DM_MODE says.
        "mode": "smoke" if data.fabricated else notebook.mode(),
        "fabricated_data": bool(data.fabricated),
        "data": data.identity,
    }, model)


def run_all(configs: dict, runs_dir, data: Dataset, *, report: bool = True, **run_options) -> dict:
    """`run` every configuration of ``configs`` (any key -> `Config`), in order; key -> result.

    Through `dm.training.runs.run_all`: stored results load at once, interrupted runs resume."""
    return _run_all(run, configs, runs_dir, data, report=report, **run_options)


def smoke_config(config: Config, iterations: int = 200, batch_size: int = 10,
                 evaluations: int = 2) -> Config:
    """``config`` shrunk for smoke mode: a few iterations of a small batch.

    ``evaluations`` evaluations (and checkpoints). Method, noise, imbalance, seed and optimiser are
    unchanged, so the smoke run goes through the same code."""
    every = max(1, iterations // evaluations)
    return dataclasses.replace(config, iterations=iterations, batch_size=batch_size,
                               eval_every=every, checkpoint_every=every)


# --- the notebook ------------------------------------------------------------------

def notebook_setup(mode: Optional[str] = None, *, runs_dir=None, use_drive: bool = True,
                   data_root=None, vectors_dir=None, overrides: Optional[dict] = None,
                   device=None, workers: Optional[int] = None, smoke_iterations: int = 200) -> NotebookSetup:
    """The set-up of the IMDB notebook: reviews, their vectors, data, base config, runs folder.

    ``mode``: "full" or "smoke" (default `dm.experiments.notebook.mode`; ValueError otherwise).
    full: the real archive (downloaded into ``data_root`` on first use, checksum verified; on Colab
    with ``use_drive``, ``MyDrive/dm-data``) and its paragraph vectors (trained once, cached in
    ``vectors_dir``); the paper's settings changed by ``overrides``. On Colab with ``use_drive`` the
    runs and the vectors go to Google Drive (``MyDrive/dm-runs/imdb``), so a recycled machine loses
    neither. A CPU is enough.

    smoke: one torch thread; a tiny archive fabricated by `dm.data.imdb.fabricate` in the official
    layout in a fresh temporary folder, read by the real loader, vectors trained on it with the same
    settings; the configuration shrunk by `smoke_config` to ``smoke_iterations`` iterations."""
    mode = notebook.check_mode(mode)
    base = dataclasses.replace(PAPER_IMDB, **(overrides or {}))
    if mode == "full":
        drive = notebook.drive_folder("imdb") if runs_dir is None and use_drive else None  # None off Colab
        if drive is not None:
            runs_dir, vectors_dir = drive, vectors_dir or drive / "paragraph-vectors"
        if data_root is None and use_drive:
            data_root = notebook.drive_data_root()  # None off Colab: $DM_DATA or ~/.cache/dm
        reviews = imdb.load(data_root, download=True)
        features = paragraph_vectors.paragraph_vectors(reviews, cache_dir=vectors_dir, workers=workers)
        options = dict(device=device, progress=True)
        return NotebookSetup(mode, dataset(reviews, features), base, Path(runs_dir or "runs/imdb"), options,
                             reviews, features)
    scratch = notebook.smoke_scratch()
    md5 = imdb.fabricate(scratch / "data", n_train=200, n_test=100, n_unsup=50)
    reviews = imdb.load(scratch / "data", md5=md5)
    features = paragraph_vectors.paragraph_vectors(reviews, cache_dir=scratch / "vectors",
                                                   workers=1, progress=False)
    return NotebookSetup(mode, dataset(reviews, features), smoke_config(base, smoke_iterations),
                         Path(runs_dir) if runs_dir is not None else scratch / "runs",
                         dict(device="cpu", progress=False), reviews, features)
