"""The paper's sentiment experiment (Table 5): IMDB reviews as PV-DBOW
paragraph vectors, a network with one hidden layer of 8 units, label noise
and class imbalance. One configuration in, one JSON file out.

The pieces: `dm.imdb` (the aclImdb archive), `dm.paragraph_vectors` (the
features, cached), `dm.noise` (symmetric noise: with two classes "another
class" is the opposite label, so a flipped label is simply the other one),
`dm.imdb.imbalanced` (the positive:negative sampler), `dm.losses` (the nine
methods, class weights) and `dm.runs` (run folders, seeding, checkpoints,
the training loop; the same ones `dm.experiments` trains CIFAR with).

The paper's settings (Wang et al., arXiv:1905.11233, Section 4 and Table 5)
are `PAPER_IMDB`: SGD with lr 0.01, momentum 0.9, weight decay 0.002, Caffe's
"inv" policy ``lr (1 + gamma t)^(-power)`` with gamma 1e-5 and power 0.75,
10,000 iterations, seed 123. What the paper does not give, and what was
chosen instead, is marked "not in the paper" beside each field.

Command line::

    python -m dm.sentiment --method DM --lam 0 --beta -0.52 --noise-rate 0.2 --download
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np
import torch
from torch import nn

from . import _checks, imdb, losses, noise, paragraph_vectors, runs
from .runs import load_result

__all__ = [
    "Config", "PAPER_IMDB", "METHODS", "CLASS_WEIGHTS", "TABLE5_ROWS", "TABLE5_DM",
    "IMBALANCE_EXTRA", "TABLE5_SEEDS", "table5_config", "table5_configs", "table5_main", "lr_at", "mlp", "Dataset",
    "dataset", "digits_standin", "DIGITS_STANDIN", "class_weights", "make_loss", "run", "load_result", "smoke_config",
    "NotebookSetup", "notebook_setup", "run_all", "main",
]

METHODS = losses.METHODS  # CCE, GCE, MAE, MSE, their -DN variants, DM
CLASS_WEIGHTS = ("none", "balanced")


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything that determines a run's numbers. Defaults: the paper's IMDB
    setting (`PAPER_IMDB`)."""

    method: str = "CCE"            # one of METHODS
    lam: float = 0.0               # DM's lambda (method "DM" only)
    beta: float = 0.0              # DM's beta; negative favours easy examples
    gce_q: float = 0.7             # not in the paper for IMDB: GCE's usual q (Zhang and Sabuncu 2018)
    class_weight: str = "none"     # "balanced": class k weighs n / (2 n_k), n_k counted on the training labels
    noise_rate: float = 0.0        # symmetric: each flipped label becomes the other class
    imbalance: int = 1             # keep all positives and n_pos // imbalance negatives (10, 50 in Table 5)
    features: str = ""             # dm.paragraph_vectors cache key of the features trained on
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
            raise TypeError(f"features must be a str (a dm.paragraph_vectors cache key), got {self.features!r}")
        _checks.positive("lr", self.lr)
        _checks.nonnegative("lr_gamma", self.lr_gamma)
        _checks.nonnegative("lr_power", self.lr_power)
        _checks.nonnegative("momentum", self.momentum)
        _checks.nonnegative("weight_decay", self.weight_decay)

    def name(self) -> str:
        """A readable, unique folder name for the run."""
        method = runs.method_tag(self)
        if self.class_weight != "none":
            method += f"-cw{self.class_weight}"
        data = f"pn{self.imbalance}" if self.imbalance > 1 else "balanced"
        noise_tag = "clean" if self.noise_rate == 0 else f"sym{self.noise_rate:g}"
        named = Config(method=self.method, lam=self.lam, beta=self.beta, gce_q=self.gce_q,
                       class_weight=self.class_weight, noise_rate=self.noise_rate,
                       imbalance=self.imbalance, features=self.features, seed=self.seed)
        return "_".join(["imdb", f"pv{self.features[:8] or 'none'}", data, noise_tag, method,
                         *runs.changes_tag(self, named), f"seed{self.seed}"])


PAPER_IMDB = Config()

# Table 5's rows: the data each trains on, and DM's (lambda, beta) there (paper, Section 4).
TABLE5_ROWS = {
    "r = 0.0": {"noise_rate": 0.0}, "r = 0.2": {"noise_rate": 0.2}, "r = 0.4": {"noise_rate": 0.4},
    "P-N 10:1": {"imbalance": 10}, "P-N 50:1": {"imbalance": 50},
}
TABLE5_DM = {"r = 0.0": (0.0, 0.9), "r = 0.2": (0.0, -0.52), "r = 0.4": (0.0, -0.33),
             "P-N 10:1": (0.3, 6.5), "P-N 50:1": (0.3, 6.5)}
# Beyond the paper, for the imbalance rows: class weighting alone, and DM on top of it
# (the hierarchical class x example weighting the authors' rebuttal suggests).
IMBALANCE_EXTRA = ("CCE + class weights", "DM + class weights")


def table5_config(row: str, column: str, features: str, base: Config = PAPER_IMDB) -> Config:
    """The `Config` of one cell: ``row`` a key of `TABLE5_ROWS`, ``column`` a
    method of `METHODS` or one of `IMBALANCE_EXTRA`; ``features`` the
    paragraph vectors' cache key."""
    if row not in TABLE5_ROWS:
        raise ValueError(f"row must be one of {list(TABLE5_ROWS)}, got {row!r}")
    settings = dict(TABLE5_ROWS[row], features=features)
    if column in IMBALANCE_EXTRA:
        settings.update(class_weight="balanced")
        column = column.removesuffix(" + class weights")
    elif column not in METHODS:
        raise ValueError(f"column must be one of {METHODS + IMBALANCE_EXTRA}, got {column!r}")
    settings["method"] = column
    if column == "DM":
        settings["lam"], settings["beta"] = TABLE5_DM[row]
    return dataclasses.replace(base, **settings)


def table5_configs(features: str, base: Config = PAPER_IMDB, rows=None, seeds=None) -> dict:
    """``{(row, column): Config}`` for every cell of Table 5 (all of ``rows``,
    default every row): the nine methods in each row, and the two
    class-weighted ones (`IMBALANCE_EXTRA`) in the imbalance rows. 49 cells.
    With ``seeds`` (a sequence of ints): ``{(row, column, seed): Config}``,
    every cell once per seed."""
    rows = list(TABLE5_ROWS) if rows is None else list(rows)
    cells = {(row, column): table5_config(row, column, features, base)
             for row in rows
             for column in METHODS + (IMBALANCE_EXTRA if TABLE5_ROWS.get(row, {}).get("imbalance") else ())}
    if seeds is None:
        return cells
    seeds = list(seeds)
    if not seeds or len(set(seeds)) != len(seeds) or any(
            isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
        raise ValueError(f"seeds must be distinct non-negative integers, got {seeds!r}")
    return {(row, column, seed): dataclasses.replace(config, seed=seed)
            for (row, column), config in cells.items() for seed in seeds}


# The seeds of the book's Table 5: the paper's 123 and the next four.
TABLE5_SEEDS = (123, 124, 125, 126, 127)


def lr_at(config: Config, iteration: int) -> float:
    """Caffe's "inv" policy at (0-based) ``iteration``:
    ``lr * (1 + gamma * iteration) ** (-power)``."""
    return config.lr * (1.0 + config.lr_gamma * iteration) ** (-config.lr_power)


def mlp(inputs: int, hidden: int = 8, classes: int = 2) -> nn.Sequential:
    """The paper's network: one hidden layer (ReLU: not in the paper) and a
    linear layer to the class logits."""
    return nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, classes))


class Dataset(NamedTuple):
    """The experiment's data: paragraph vectors and labels of the (balanced)
    training and test sets."""
    x_train: np.ndarray     # float32 [25000, d]
    y_train: np.ndarray     # int64 (0 negative, 1 positive)
    x_test: np.ndarray
    y_test: np.ndarray
    features: str           # the vectors' cache key (Config.features must match)
    fabricated: bool        # the reviews came from dm.imdb.fabricate
    identity: Optional[dict] = None  # which reviews (`dm.imdb.Imdb.identity`), recorded in result.json


def dataset(data: imdb.Imdb, features: paragraph_vectors.Features) -> Dataset:
    """The `Dataset` of the reviews ``data`` represented by ``features``."""
    if features.meta.get("reviews_sha256") not in (None, data.digest):
        raise ValueError(f"features were trained on other reviews (digest "
                         f"{features.meta['reviews_sha256']}) than data ({data.digest})")
    if len(features.train) != len(data.train.labels) or len(features.test) != len(data.test.labels):
        raise ValueError("features and data have different numbers of reviews")
    return Dataset(features.train, data.train.labels, features.test, data.test.labels,
                   features.key, bool(data.fabricated), data.identity())


DIGITS_STANDIN = "digits-binary"  # Dataset.features of `digits_standin`


def digits_standin(seed: int = 0) -> Dataset:
    """A real binary data set that runs offline, for checking this module's
    runs on something other than fabricated reviews: scikit-learn's digits
    (`dm.digits.load`: 8x8 images as 64 standardised features, a stratified
    70/30 train/test split) with 0-4 as the negative class and 5-9 as the
    positive one. It is no stand-in for IMDB's numbers, only for the
    training behaviour of the paper's solver and methods. Its
    ``features`` is `DIGITS_STANDIN`."""
    from . import digits

    data = digits.load(seed=seed)
    binary = lambda labels: (labels.numpy() >= 5).astype(np.int64)  # noqa: E731
    return Dataset(data.x_train.numpy(), binary(data.y_train), data.x_test.numpy(),
                   binary(data.y_test), DIGITS_STANDIN, False,
                   {"dataset": "digits", "copy": "scikit-learn",
                    "description": "scikit-learn's digits, 0-4 against 5-9 (not IMDB)"})


def class_weights(labels: np.ndarray, classes: int = 2) -> np.ndarray:
    """"Balanced" class weights ``n / (classes * n_k)`` (scikit-learn's
    ``class_weight="balanced"``): every class then carries the same total
    weight. A class with no example gets weight 0."""
    counts = np.bincount(labels, minlength=classes).astype(np.float64)
    with np.errstate(divide="ignore"):
        return np.where(counts > 0, len(labels) / (classes * counts), 0.0)


def make_loss(config: Config, weight=None) -> nn.Module:
    """The loss module of ``config.method`` (`dm.losses.make`), with the class
    ``weight`` if given (input checks off: `run` checks the labels once)."""
    return losses.make(config.method, lam=config.lam, beta=config.beta, q=config.gce_q,
                       weight=weight, check_inputs=False)


def _recalls(predicted: torch.Tensor, labels: torch.Tensor) -> list:
    # None for a class absent from ``labels`` (never on IMDB's balanced test set).
    return [round(float((predicted[labels == k] == k).float().mean()), 6) if bool((labels == k).any())
            else None for k in range(2)]


_MEASURES = ("test_accuracy", "test_balanced_accuracy", "test_recall_negative", "test_recall_positive",
             "train_accuracy_noisy_labels", "train_accuracy_clean_labels")


def run(config: Config, runs_dir, data: Dataset, *, device=None, progress: bool = True,
        stop_at: Optional[int] = None) -> Optional[dict]:
    """Train ``config`` on ``data`` (or resume it, or return its stored
    result: see `dm.runs`).

    The training set is the balanced 25k, or with ``config.imbalance`` all
    positives and ``n_pos // imbalance`` negatives (`dm.imdb.imbalanced`,
    seeded by ``config.seed``), then ``config.noise_rate`` of its labels
    flipped (`dm.noise.symmetric`, exact count, same seed, so every method
    sees the same labels). The test set stays the balanced 25k.

    ``device``: default the CPU: for an 8-unit network a GPU spends its time
    launching kernels. Returns the result dict also written to
    ``<runs_dir>/<config.name()>/result.json``: the history of test
    accuracy, balanced accuracy and per-class recall (every
    ``eval_every`` iterations), the final ones, the training set's class
    counts, the realised noise rate and the class weights used.
    """
    if not isinstance(config, Config):
        raise TypeError(f"config must be a dm.sentiment.Config, got {type(config).__name__}")
    if not isinstance(data, Dataset):
        raise TypeError(f"data must be a dm.sentiment.Dataset, got {type(data).__name__}")
    if data.features != config.features:
        raise ValueError(f"data holds the features {data.features!r}, config.features is {config.features!r}")
    out = Path(runs_dir) / config.name()
    stored = load_result(config, runs_dir)
    if stored is not None:
        return stored
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(device or "cpu")

    keep = imdb.imbalanced(data.y_train, config.imbalance, config.seed) if config.imbalance > 1 \
        else np.arange(len(data.y_train))
    clean = data.y_train[keep]
    noisy = noise.symmetric(clean, config.noise_rate, 2, config.seed) if config.noise_rate else clean.copy()
    n = len(keep)
    if n < config.batch_size:
        raise ValueError(f"batch_size {config.batch_size} exceeds the {n} training reviews")
    weight = None
    if config.class_weight == "balanced":
        weight = torch.tensor(class_weights(noisy), dtype=torch.float32)
    x_train = torch.from_numpy(np.ascontiguousarray(data.x_train[keep], dtype=np.float32)).to(device)
    y_train = torch.from_numpy(noisy).to(device)
    y_clean = torch.from_numpy(clean).to(device)
    x_test = torch.from_numpy(np.ascontiguousarray(data.x_test, dtype=np.float32)).to(device)
    y_test = torch.from_numpy(data.y_test).to(device)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = mlp(x_train.shape[1], config.hidden)
    model = model.to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    loss_fn = make_loss(config, weight).to(device)

    @torch.no_grad()
    def predict(x: torch.Tensor) -> torch.Tensor:
        model.eval()
        predicted = model(x).argmax(1)
        model.train()
        return predicted

    def evaluate(iteration: int) -> dict:
        def mean(values):
            return round(float(values.float().mean()), 6)

        predicted = predict(x_test)
        recall = _recalls(predicted, y_test)
        on_train = predict(x_train)
        return {"test_accuracy": mean(predicted == y_test),
                "test_balanced_accuracy": round(float(np.mean([r for r in recall if r is not None])), 6),
                "test_recall_negative": recall[0], "test_recall_positive": recall[1],
                "train_accuracy_noisy_labels": mean(on_train == y_train),
                "train_accuracy_clean_labels": mean(on_train == y_clean)}

    batch = runs.epoch_batches(config.seed, n, config.batch_size, device)

    def step(it: int) -> torch.Tensor:
        idx = batch(it)
        loss = loss_fn(model(x_train[idx]), y_train[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss

    trained = runs.train(
        config, out, model=model, optimizer=optimizer, step=step, evaluate=evaluate,
        lr=lambda it: lr_at(config, it), iterations=config.iterations, eval_every=config.eval_every,
        checkpoint_every=config.checkpoint_every, device=device, measures=_MEASURES,
        progress=progress, stop_at=stop_at)
    if trained is None:
        return None
    history = trained.history
    result = {
        "name": config.name(),
        "config": dataclasses.asdict(config),
        "best_test_accuracy": max(history["test_accuracy"]),
        **{f"final_{key}": history[key][-1] for key in _MEASURES},
        "train_class_counts": np.bincount(noisy, minlength=2).tolist(),
        "train_class_counts_clean": np.bincount(clean, minlength=2).tolist(),
        "class_weights": None if weight is None else weight.tolist(),
        "realised_noise_rate": noise.realised_rate(clean, noisy),
        "train_size": int(n), "test_size": int(len(y_test)),
        "history": history,
        **runs.provenance(device),
        **runs.timing(trained),
        # "smoke" whenever the reviews were fabricated, whatever DM_MODE says.
        "mode": "smoke" if data.fabricated else runs.mode(),
        "fabricated_data": bool(data.fabricated),
        "data": data.identity,
    }
    return runs.finish(out, result, model)


def run_all(configs: dict, runs_dir, data: Dataset, *, report: bool = True, **run_options) -> dict:
    """`run` every configuration of ``configs`` (any key -> `Config`), in
    order (`dm.runs.run_all`). Returns key -> result."""
    return runs.run_all(run, configs, runs_dir, data, report=report, **run_options)


def smoke_config(config: Config, iterations: int = 200, batch_size: int = 10,
                 evaluations: int = 2) -> Config:
    """``config`` shrunk for smoke mode: a few iterations of a small batch,
    ``evaluations`` evaluations (and checkpoints). Method, noise, imbalance,
    seed and optimiser are unchanged, so the smoke run goes through the same
    code."""
    every = max(1, iterations // evaluations)
    return dataclasses.replace(config, iterations=iterations, batch_size=batch_size,
                               eval_every=every, checkpoint_every=every)


# --- the notebook ------------------------------------------------------------------

class NotebookSetup(NamedTuple):
    """What the IMDB notebook's settings turn into (`notebook_setup`)."""
    mode: str                                  # "full" or "smoke"
    reviews: imdb.Imdb                         # the real data set, or a fabricated one in its format
    features: paragraph_vectors.Features       # their PV-DBOW vectors
    data: Dataset                              # what `run` trains on
    base: Config                               # the configuration every run starts from
    runs_dir: Path                             # where the runs' folders go
    run_options: dict                          # keyword arguments for `run`


def notebook_setup(mode: Optional[str] = None, *, runs_dir=None, use_drive: bool = True,
                   data_root=None, vectors_dir=None, overrides: Optional[dict] = None,
                   device=None, workers: Optional[int] = None, smoke_iterations: int = 200) -> NotebookSetup:
    """The set-up of the IMDB notebook, for ``mode`` (default `dm.runs.mode`).

    full: the real archive (downloaded into ``data_root`` on first use,
    checksum verified; on Colab with ``use_drive``, ``MyDrive/dm-data``) and its paragraph vectors (trained once, cached in
    ``vectors_dir``); the paper's settings changed by ``overrides``. On Colab
    with ``use_drive`` the runs and the vectors go to Google Drive
    (``MyDrive/dm-runs/imdb``), so a recycled machine loses neither. A CPU is
    enough.

    smoke: one torch thread; a tiny archive fabricated by `dm.imdb.fabricate`
    in the official layout in a fresh temporary folder, read by the real
    loader, vectors trained on it with the same settings; the configuration
    shrunk by `smoke_config` to ``smoke_iterations`` iterations."""
    mode = runs.mode() if mode is None else mode
    if mode not in ("full", "smoke"):
        raise ValueError(f"mode must be 'full' or 'smoke', got {mode!r}")
    base = dataclasses.replace(PAPER_IMDB, **(overrides or {}))
    if mode == "full":
        drive = runs.drive_folder("imdb") if runs_dir is None and use_drive else None  # None off Colab
        if drive is not None:
            runs_dir, vectors_dir = drive, vectors_dir or drive / "paragraph-vectors"
        if data_root is None and use_drive:
            data_root = runs.drive_data_root()  # None off Colab: $DM_DATA or ~/.cache/dm
        reviews = imdb.load(data_root, download=True)
        features = paragraph_vectors.paragraph_vectors(reviews, cache_dir=vectors_dir, workers=workers)
        options = dict(device=device, progress=True)
        return NotebookSetup(mode, reviews, features, dataset(reviews, features), base,
                             Path(runs_dir or "runs/imdb"), options)
    scratch = runs.smoke_scratch()
    md5 = imdb.fabricate(scratch / "data", n_train=200, n_test=100, n_unsup=50)
    reviews = imdb.load(scratch / "data", md5=md5)
    features = paragraph_vectors.paragraph_vectors(reviews, cache_dir=scratch / "vectors",
                                                   workers=1, progress=False)
    return NotebookSetup(mode, reviews, features, dataset(reviews, features),
                         smoke_config(base, smoke_iterations),
                         Path(runs_dir) if runs_dir is not None else scratch / "runs",
                         dict(device="cpu", progress=False))


# --- command line ---------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dm.sentiment",
        description="Train one IMDB (Table 5) run on PV-DBOW features and write its result JSON "
                    "(resuming from a checkpoint if one exists). The features are trained once "
                    "and cached.")
    for field in dataclasses.fields(Config):
        if field.name == "features":
            continue  # from the data
        flag = "--" + field.name.replace("_", "-")
        parser.add_argument(flag, type=type(field.default), default=field.default)
    _data_arguments(parser)
    parser.add_argument("--fabricated", action="store_true",
                        help="use a tiny fabricated archive in aclImdb's layout (smoke checks)")
    parser.add_argument("--device", default=None, help="cpu (default), cuda, ...")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def _data_arguments(parser: argparse.ArgumentParser) -> None:
    # Where the runs, the archive and the paragraph vectors are (both commands).
    parser.add_argument("--runs-dir", default="runs/imdb", help="where run folders go (default: runs/imdb)")
    parser.add_argument("--data-root", default=None, help="archive cache folder (default: $DM_DATA or ~/.cache/dm)")
    parser.add_argument("--vectors-dir", default=None, help="paragraph-vector cache folder")
    parser.add_argument("--download", action="store_true", help="download the archive if none is there")


def _table5_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dm.sentiment table5",
        description="Train every cell of Table 5 (with its class-weighted imbalance cells) once per "
                    "seed, on the PV-DBOW vectors of the real reviews (trained once and cached); "
                    "stored runs load at once, interrupted ones resume.")
    parser.add_argument("--seeds", default=",".join(map(str, TABLE5_SEEDS)),
                        help="comma-separated seeds (default: %(default)s)")
    parser.add_argument("--rows", default=None, help="comma-separated rows, e.g. 'r = 0.4,P-N 50:1'")
    _data_arguments(parser)
    parser.add_argument("--workers", type=int, default=1, help="processes to share the runs out to")
    return parser


def table5_main(argv) -> int:
    """``python -m dm.sentiment table5 ...`` (see `_table5_parser`). Also
    writes ``<runs_dir>/paragraph_vectors.json``: the vectors' record (data,
    settings, gensim's time per epoch, hardware) and iclr15's check of them
    (`paragraph_vectors.logistic_regression_accuracy`). ``python -m dm.runs
    collect-results RUNS_DIR`` then copies the runs into the book's ``results/``."""
    args = _table5_parser().parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = None if args.rows is None else [r.strip() for r in args.rows.split(",")]
    reviews = imdb.load(args.data_root, download=args.download)
    features = paragraph_vectors.paragraph_vectors(reviews, cache_dir=args.vectors_dir)
    record = dict(features.meta, key=features.key, logistic_regression_accuracy=(
        paragraph_vectors.logistic_regression_accuracy(features, reviews)))
    Path(args.runs_dir).mkdir(parents=True, exist_ok=True)
    runs.atomic_write(Path(args.runs_dir) / "paragraph_vectors.json",
                      lambda p: p.write_text(json.dumps(record, indent=1) + "\n"))
    print(f"paragraph vectors {features.key}: logistic regression {record['logistic_regression_accuracy']:.4f}")
    configs = table5_configs(features.key, PAPER_IMDB, rows, seeds)
    results = run_all(configs, args.runs_dir, dataset(reviews, features), report=False,
                      workers=args.workers, progress=False)
    print(f"{len(results)} runs of {len(configs) // len(seeds)} cells x {len(seeds)} seeds on "
          f"{reviews.identity()['description']}")
    return 0


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "table5":
        return table5_main(argv[1:])
    args = _parser().parse_args(argv)
    if args.fabricated:
        root = Path(args.runs_dir) / "fabricated-data"
        reviews = imdb.load(root, md5=imdb.fabricate(root))
        vectors_dir = args.vectors_dir or root / "vectors"
    else:
        reviews = imdb.load(args.data_root, download=args.download)
        vectors_dir = args.vectors_dir
    features = paragraph_vectors.paragraph_vectors(reviews, cache_dir=vectors_dir,
                                                   progress=not args.no_progress)
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(Config) if f.name != "features"}
    config = Config(**values, features=features.key)
    result = run(config, args.runs_dir, dataset(reviews, features), device=args.device,
                 progress=not args.no_progress)
    print(json.dumps({k: result[k] for k in (
        "name", "final_test_accuracy", "final_test_balanced_accuracy", "realised_noise_rate",
        "hardware", "wall_seconds")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
