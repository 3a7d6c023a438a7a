"""The noisy-label CIFAR experiments: one configuration in, one JSON file out.

A run is described by a frozen `Config` (data set, model, method, noise,
schedule, seed); `run` trains it and writes ``<runs_dir>/<config.name()>/
result.json``. Calling `run` again returns the stored result without
training; a run that was interrupted (a Colab disconnect, a killed process)
resumes from its last checkpoint and reaches the same numbers as an
uninterrupted run (bitwise on a CPU; on a GPU up to cuDNN's nondeterminism).

The training loop follows the fast-CIFAR pattern: the training set lives on
the device as one uint8 tensor; each batch is an index into it; augmentation
(`dm.cifar.augment`) and normalisation run on the whole batch on the device;
bfloat16 autocast and channels-last memory on CUDA; optional
``torch.compile``. The loss always sees float32 logits. Nothing in the loop
reads a value back to the host except at evaluation points.

Randomness is a function of the seed and the position in training, not of
a generator's history: the batch order of epoch ``e`` comes from a generator
seeded with ``(seed, e)`` and the augmentation of iteration ``t`` from one
seeded with ``(seed, t)``. That is what makes resuming exact without saving
generator states.

Command line (one run per process, so sweeps run on any scheduler)::

    python -m dm.experiments --dataset cifar100 --method DM --lam 0.5 --beta 8 \\
        --noise symmetric --noise-rate 0.4 --runs-dir runs --download

``python -m dm.experiments --help`` lists every `Config` field as a flag.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np
import torch

from . import _checks, cifar, losses, noise, runs
from .runs import describe_runs, load_result, mode, mode_banner
from .resnet import depth_of, resnet

__all__ = [
    "Config", "METHODS", "PAPER_CIFAR100", "PAPER_CIFAR10_RESNET56", "TABLE1_ROWS",
    "table1_config", "make_loss", "lr_at", "run", "load_result", "select_on_validation",
    "smoke_config", "mode", "notebook_setup", "NotebookSetup", "run_all", "mode_banner", "describe_runs",
    "main",
]

# The methods of the paper's tables, by the names its rows use.
METHODS = losses.METHODS
NOISE_KINDS = ("symmetric", "asymmetric")
SAMPLERS = ("uniform", "classes")
IMAGES_PER_CLASS = 8  # the "classes" sampler's K: 256 = 32 classes x 8 images


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything that determines a run's numbers. Defaults: the paper's
    CIFAR-100 setting (Table 1; SGD, momentum 0.9, weight decay 1e-4, batch
    256, 30k iterations, lr 0.1 divided by 10 at 15k and 22k; ResNet-44)."""

    dataset: str = "cifar100"           # "cifar10" or "cifar100"
    model: str = "resnet44"             # "resnet<depth>", depth in dm.resnet.DEPTHS
    shortcut: str = "A"                 # "A": He et al.'s zero padding; "B": projection (authors' Caffe net)
    method: str = "CCE"                 # one of METHODS
    lam: float = 0.0                    # DM's lambda (method "DM" only)
    beta: float = 0.0                   # DM's beta (method "DM" only)
    gce_q: float = 0.7                  # GCE's q (methods "GCE", "GCE-DN")
    noise: str = "symmetric"            # "symmetric" or "asymmetric" (dm.noise)
    noise_rate: float = 0.0
    noise_exact: bool = True            # exactly round(rate * n) flips; False: each label with probability rate
    iterations: int = 30_000
    batch_size: int = 256
    lr: float = 0.1
    lr_milestones: tuple = (15_000, 22_000)
    lr_decay: float = 0.1               # lr is multiplied by this at each milestone
    momentum: float = 0.9
    weight_decay: float = 1e-4          # paper's text; the authors' solver files use 5e-4
    sampler: str = "uniform"            # "uniform" (paper) or "classes" (authors' code: 8 images per class)
    val_fraction: float = 0.0           # 0.2: the paper's 80 % noisy train / 20 % clean validation split
    seed: int = 123                     # the authors' seed
    eval_every: int = 1000              # the authors log test accuracy every 1000 iterations
    checkpoint_every: int = 1000

    def __post_init__(self):
        if self.dataset not in cifar.NUM_CLASSES:
            raise ValueError(f"dataset must be 'cifar10' or 'cifar100', got {self.dataset!r}")
        depth_of(self.model)  # raises on a bad name
        if self.shortcut not in ("A", "B"):
            raise ValueError(f"shortcut must be 'A' or 'B', got {self.shortcut!r}")
        _checks.method_settings(self.method, METHODS, self.lam, self.beta, self.gce_q)
        if self.noise not in NOISE_KINDS:
            raise ValueError(f"noise must be one of {NOISE_KINDS}, got {self.noise!r}")
        _checks.fraction("noise_rate", self.noise_rate)
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {self.sampler!r}")
        if self.sampler == "classes" and self.batch_size % IMAGES_PER_CLASS:
            raise ValueError(f"sampler 'classes' needs batch_size divisible by {IMAGES_PER_CLASS}, "
                             f"got {self.batch_size}")
        _checks.fraction("val_fraction", self.val_fraction)
        _checks.positive_integers(self, ("iterations", "batch_size", "eval_every", "checkpoint_every"))
        _checks.positive("lr", self.lr)
        _checks.nonnegative("momentum", self.momentum)
        _checks.nonnegative("weight_decay", self.weight_decay)
        object.__setattr__(self, "lr_milestones", tuple(int(m) for m in self.lr_milestones))

    def name(self) -> str:
        """A readable, unique folder name for the run."""
        noise_tag = "clean" if self.noise_rate == 0 else f"{self.noise[:3]}{self.noise_rate:g}"
        named = Config(dataset=self.dataset, model=self.model, method=self.method,
                       lam=self.lam, beta=self.beta, gce_q=self.gce_q,
                       noise=self.noise, noise_rate=self.noise_rate, seed=self.seed)
        return "_".join([self.dataset, self.model, noise_tag, runs.method_tag(self),
                         *runs.changes_tag(self, named), f"seed{self.seed}"])


# The paper's two CIFAR settings. CIFAR-10 with ResNet-56 (Table 9, Figure 2):
# the paper gives no separate schedule for it, so the CIFAR-100 one is used.
PAPER_CIFAR100 = Config()
PAPER_CIFAR10_RESNET56 = Config(dataset="cifar10", model="resnet56")

# Table 1's rows as method settings. DM's beta per column: where the authors'
# public run folders (github.com/XinshaoAmosWang/DerivativeManipulation,
# CIFAR100_ResNet44_V03_*) show it, that value; otherwise a guess, marked so.
TABLE1_ROWS = {
    "CCE": {"method": "CCE"}, "GCE": {"method": "GCE"},
    "MAE": {"method": "MAE"}, "MSE": {"method": "MSE"},
    "CCE-DN": {"method": "CCE-DN"}, "GCE-DN": {"method": "GCE-DN"},
    "MAE-DN": {"method": "MAE-DN"}, "MSE-DN": {"method": "MSE-DN"},
    "DM (beta = 0)": {"method": "DM", "lam": 1.0, "beta": 0.0},
    "DM (lambda = 0)": {"method": "DM", "lam": 0.0},
    "DM (lambda = 0.5)": {"method": "DM", "lam": 0.5},
    "DM (lambda = 1)": {"method": "DM", "lam": 1.0},
}
# (lambda, column key) -> (beta, source). Columns as in dm/data/paper_tables.json.
TABLE1_DM_BETA = {
    **{(0.0, c): (1.0, "authors' run folder") for c in ("s0.2", "s0.4", "s0.6")},
    (0.0, "clean"): (2.0, "authors' run folder"),
    (0.5, "clean"): (6.0, "authors' run folder"), (0.5, "s0.2"): (6.0, "authors' run folder"),
    (0.5, "s0.4"): (8.0, "authors' run folder"), (0.5, "s0.6"): (8.0, "authors' run folder"),
    **{(0.0, c): (1.0, "guessed") for c in ("a0.2", "a0.3", "a0.4")},
    **{(0.5, c): (6.0, "guessed") for c in ("a0.2", "a0.3", "a0.4")},
    (1.0, "clean"): (8.0, "guessed"), (1.0, "s0.2"): (8.0, "guessed"),
    (1.0, "s0.4"): (12.0, "guessed"), (1.0, "s0.6"): (12.0, "guessed"),
    **{(1.0, c): (8.0, "guessed") for c in ("a0.2", "a0.3", "a0.4")},
}


def table1_config(row: str, column: dict, base: Config = PAPER_CIFAR100):
    """The `Config` of one Table 1 cell, and where its DM beta came from.

    ``column`` is one of the paper table's column records (``{"key": "s0.4",
    "noise": "symmetric", "rate": 0.4}``). Returns ``(config, beta_source)``;
    ``beta_source`` is None for non-DM rows and for "DM (beta = 0)"."""
    if row not in TABLE1_ROWS:
        raise ValueError(f"row must be one of {list(TABLE1_ROWS)}, got {row!r}")
    settings, source = dict(TABLE1_ROWS[row]), None
    if settings["method"] == "DM" and "beta" not in settings:
        settings["beta"], source = TABLE1_DM_BETA[(settings["lam"], column["key"])]
    config = dataclasses.replace(base, noise=column["noise"], noise_rate=column["rate"], **settings)
    return config, source


def make_loss(config: Config) -> torch.nn.Module:
    """The loss module of ``config.method`` (`dm.losses.make`; input checks
    off: `run` checks the labels once, up front)."""
    return losses.make(config.method, lam=config.lam, beta=config.beta, q=config.gce_q,
                       check_inputs=False)


def lr_at(config: Config, iteration: int) -> float:
    """The multistep learning rate for (0-based) ``iteration``."""
    drops = sum(iteration >= m for m in config.lr_milestones)
    return config.lr * config.lr_decay ** drops


def smoke_config(config: Config, iterations: int = 4, batch_size: int = 16,
                 model: str = "resnet8", evaluations: int = 2) -> Config:
    """``config`` shrunk for smoke mode: a tiny ResNet, a few iterations of a
    small batch, the learning-rate drops kept at the same fractions of
    training, ``evaluations`` evaluations (and checkpoints) spread over the
    run. Everything else (method, noise, seed, optimiser) is unchanged, so
    the smoke run goes through the same code."""
    milestones = tuple(max(1, round(m * iterations / config.iterations)) for m in config.lr_milestones)
    every = max(1, iterations // evaluations)
    return dataclasses.replace(config, model=model, iterations=iterations, batch_size=batch_size,
                               lr_milestones=milestones, eval_every=every, checkpoint_every=every)


_mode_from_environment = mode  # for functions whose argument is called `mode`


# --- the run ------------------------------------------------------------------

def _noisy_labels(config: Config, clean: np.ndarray) -> np.ndarray:
    # Seeded from the run's seed, so every method sees the same corrupted labels.
    if config.noise_rate == 0:
        return clean.copy()
    if config.noise == "symmetric":
        return noise.symmetric(clean, config.noise_rate, cifar.NUM_CLASSES[config.dataset], config.seed,
                               exact=config.noise_exact)
    rule = noise.asymmetric_cifar10 if config.dataset == "cifar10" else noise.asymmetric_cifar100
    return rule(clean, config.noise_rate, config.seed, exact=config.noise_exact)


# What `run` records on the training set at each evaluation (``eval_train``).
_TRAIN_MEASURES = ("train_accuracy_noisy_labels", "train_accuracy_clean_labels",
                   "train_accuracy_corrupted", "train_accuracy_intact",
                   "mean_p_corrupted", "mean_p_intact")


class _Evaluator:
    """Accuracy and mean p of the labelled class, without augmentation."""

    def __init__(self, model, dataset: str, device, amp: bool, memory_format, batch_size=1000):
        self.model, self.dataset, self.device = model, dataset, device
        self.amp, self.memory_format, self.batch_size = amp, memory_format, batch_size

    @torch.no_grad()
    def predictions(self, images: torch.Tensor, labels: torch.Tensor):
        """(predicted class, p of ``labels``) for every image, as device tensors."""
        was_training = self.model.training
        self.model.eval()
        predicted, p = [], []
        for start in range(0, len(labels), self.batch_size):
            x = cifar.normalize(images[start:start + self.batch_size], self.dataset)
            x = x.contiguous(memory_format=self.memory_format)
            with torch.autocast(self.device.type, torch.bfloat16, enabled=self.amp):
                logits = self.model(x).float()
            y = labels[start:start + self.batch_size]
            predicted.append(logits.argmax(1))
            p.append(torch.softmax(logits, 1).gather(1, y[:, None])[:, 0])
        self.model.train(was_training)
        return torch.cat(predicted), torch.cat(p)


def run(config: Config, runs_dir, data: Optional[cifar.Cifar] = None, *, device=None,
        amp: Optional[bool] = None, compile: bool = False, progress: bool = True,
        stop_at: Optional[int] = None, eval_train: bool = True) -> Optional[dict]:
    """Train ``config`` (or resume it, or return its stored result).

    ``data``: a `dm.cifar.Cifar` of ``config.dataset`` (default: `dm.cifar.load`
    from the cache folder). ``device``: default CUDA when available. ``amp``:
    bfloat16 autocast, default on where the CUDA GPU supports bfloat16
    natively. ``compile``: ``torch.compile`` the model. ``stop_at``: stop
    after that many iterations, as an interruption would (for tests); returns
    None then. ``eval_train``: also record the training-set measurements (the
    whole set's accuracy against the noisy and against the clean labels, as
    Table 9 reports them; each of the corrupted and intact parts' accuracy
    and mean p of the labelled class, as Figure 2a plots), one forward pass
    over the training set per evaluation.

    Returns the result dict that is also written to
    ``<runs_dir>/<config.name()>/result.json``; the final weights go to
    ``model.pt`` beside it.
    """
    if not isinstance(config, Config):
        raise TypeError(f"config must be a dm.experiments.Config, got {type(config).__name__}")
    out = Path(runs_dir) / config.name()
    stored = load_result(config, runs_dir)
    if stored is not None:
        return stored
    out.mkdir(parents=True, exist_ok=True)
    if data is None:
        data = cifar.load(config.dataset)
    if data.name != config.dataset:
        raise ValueError(f"data is {data.name} but config.dataset is {config.dataset}")
    device = runs.resolve_device(device)
    if amp is None:  # bfloat16 where the GPU has it natively (not a T4, say)
        amp = device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False)
    amp = bool(amp)
    memory_format = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    if device.type == "cuda":
        # Fixed input shapes: let cuDNN pick its fastest kernels once. (Results
        # on a GPU are reproducible up to rounding, not bitwise, either way.)
        torch.backends.cudnn.benchmark = True

    # Data: split, corrupt, move to the device once.
    train_idx, val_idx = cifar.split_train_val(data.y_train, config.val_fraction, config.seed)
    clean = data.y_train[train_idx]
    noisy = _noisy_labels(config, clean)
    num_classes = cifar.NUM_CLASSES[config.dataset]
    n = len(train_idx)
    if n < config.batch_size:
        raise ValueError(f"batch_size {config.batch_size} exceeds the {n} training images")
    x_train = torch.from_numpy(data.x_train[train_idx]).to(device)
    y_train = torch.from_numpy(noisy).to(device)
    y_clean = torch.from_numpy(clean).to(device)
    corrupted = torch.from_numpy(noisy != clean).to(device)
    x_test = torch.from_numpy(data.x_test).to(device)
    y_test = torch.from_numpy(data.y_test).to(device)
    x_val = torch.from_numpy(data.x_train[val_idx]).to(device)
    y_val = torch.from_numpy(data.y_train[val_idx]).to(device)  # clean labels

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = resnet(config.model, num_classes, config.shortcut)
    model = model.to(device, memory_format=memory_format)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    loss_fn = make_loss(config)
    forward = torch.compile(model) if compile else model
    evaluator = _Evaluator(model, config.dataset, device, amp, memory_format)

    def evaluate(iteration: int) -> dict:
        def mean(values: torch.Tensor):  # 6 decimals: JSON without float32 noise
            return round(float(values.float().mean()), 6) if values.numel() else None

        measured = {
            "test_accuracy": mean(evaluator.predictions(x_test, y_test)[0] == y_test),
            "val_accuracy": mean(evaluator.predictions(x_val, y_val)[0] == y_val) if len(y_val) else None,
        }
        if eval_train:
            predicted, p = evaluator.predictions(x_train, y_train)
            # The whole training set against the labels trained on and against
            # the original ones (the paper's Table 9 "corrupted" / "intact").
            measured["train_accuracy_noisy_labels"] = mean(predicted == y_train)
            measured["train_accuracy_clean_labels"] = mean(predicted == y_clean)
            # Each part of it against the labels trained on, and the mean p of
            # the labelled class there (Figure 2a).
            for name, mask in (("corrupted", corrupted), ("intact", ~corrupted)):
                measured[f"train_accuracy_{name}"] = mean(predicted[mask] == y_train[mask])
                measured[f"mean_p_{name}"] = mean(p[mask])
        return measured

    batches_per_epoch = n // config.batch_size
    # The "classes" sampler (the authors' Caffe data layer): P = batch/8
    # classes, drawn without replacement, and 8 images of each (with
    # replacement), by the noisy labels. The authors walk a per-epoch
    # permutation of the classes; here each batch draws its P classes afresh.
    by_class = torch.argsort(y_train, stable=True)
    counts = torch.bincount(y_train, minlength=num_classes)
    starts = torch.cumsum(counts, 0) - counts
    present = torch.nonzero(counts).flatten()
    classes_per_batch = config.batch_size // IMAGES_PER_CLASS
    if config.sampler == "classes" and len(present) < classes_per_batch:
        raise ValueError(f"sampler 'classes' needs {classes_per_batch} classes, the labels have {len(present)}")

    def class_batch(generator):
        chosen = present[torch.randperm(len(present), device=device, generator=generator)[:classes_per_batch]]
        u = torch.rand((classes_per_batch, IMAGES_PER_CLASS), device=device, generator=generator)
        offsets = (u * counts[chosen, None]).long()
        return by_class[(starts[chosen, None] + offsets).flatten()]

    order = {"epoch": -1, "indices": None}
    augment_generator = torch.Generator(device=device)
    order_generator = torch.Generator()

    def step(it: int) -> torch.Tensor:
        epoch, k = divmod(it, batches_per_epoch)
        if epoch != order["epoch"]:
            order_generator.manual_seed(runs.seed_at(config.seed, epoch))
            order["indices"] = torch.randperm(n, generator=order_generator).to(device)
            order["epoch"] = epoch
        augment_generator.manual_seed(runs.seed_at(config.seed, it))
        if config.sampler == "uniform":
            idx = order["indices"][k * config.batch_size:(k + 1) * config.batch_size]
        else:
            idx = class_batch(augment_generator)
        x = cifar.normalize(cifar.augment(x_train[idx], augment_generator), config.dataset)
        x = x.contiguous(memory_format=memory_format)
        with torch.autocast(device.type, torch.bfloat16, enabled=amp):
            logits = forward(x)
        loss = loss_fn(logits.float(), y_train[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss

    trained = runs.train(
        config, out, model=model, optimizer=optimizer, step=step, evaluate=evaluate,
        lr=lambda it: lr_at(config, it), iterations=config.iterations,
        eval_every=config.eval_every, checkpoint_every=config.checkpoint_every, device=device,
        measures=("test_accuracy", "val_accuracy") + _TRAIN_MEASURES,
        progress=progress, stop_at=stop_at)
    if trained is None:
        return None
    history = trained.history

    test = history["test_accuracy"]
    result = {
        "name": config.name(),
        "config": dataclasses.asdict(config),
        "best_test_accuracy": max(test),
        "final_test_accuracy": test[-1],
        "final_val_accuracy": history["val_accuracy"][-1],
        **{f"final_{key}": history[key][-1] if eval_train else None
           for key in _TRAIN_MEASURES if key.startswith("train_accuracy")},
        "realised_noise_rate": noise.realised_rate(clean, noisy),
        "transition_matrix": np.round(noise.transition_matrix(clean, noisy, num_classes), 4).tolist(),
        "train_size": int(n), "val_size": int(len(val_idx)), "test_size": int(len(y_test)),
        "history": history,
        "hardware": runs.hardware(device),
        "torch": torch.__version__,
        "amp_bf16": amp, "compiled": bool(compile),
        "wall_seconds": trained.wall_seconds,
        # Time in evaluations and checkpoints; the rest is training steps.
        "overhead_seconds": trained.overhead_seconds,
        "segments": trained.segments,
        "train_images_per_second": config.iterations * config.batch_size
                                   / max(trained.wall_seconds - trained.overhead_seconds, 1e-9),
        # "smoke" whenever the data were fabricated, whatever DM_MODE says.
        "mode": "smoke" if data.fabricated else mode(),
        "fabricated_data": bool(data.fabricated),
    }
    return runs.finish(out, result, model)


def select_on_validation(configs, runs_dir, data: Optional[cifar.Cifar] = None,
                         val_fraction: float = 0.2, **run_options):
    """The paper's hyper-parameter search: train each of ``configs`` on
    ``1 - val_fraction`` of the (noisy) training set, measure it on the rest
    with its clean labels, and pick the best final validation accuracy (ties:
    the first in ``configs``). The test set plays no part in the choice.

    Returns ``(best, results)``: ``best`` is the chosen config as given (so
    ``run(best, ...)`` retrains it on the whole training set, as the paper
    does for its final models) and ``results`` the validation runs' results
    in the order of ``configs``. ``run_options`` go to `run`."""
    configs = list(configs)
    if not configs:
        raise ValueError("configs is empty: nothing to select from")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction!r}")
    results = [run(dataclasses.replace(c, val_fraction=val_fraction), runs_dir, data, **run_options)
               for c in configs]
    scores = [r["final_val_accuracy"] for r in results]
    return configs[scores.index(max(scores))], results


# --- experiment notebooks -------------------------------------------------------

def run_all(configs: dict, runs_dir, data: cifar.Cifar, *, report: bool = True, **run_options) -> dict:
    """`run` every configuration of ``configs`` (any key -> `Config`), in
    order (`dm.runs.run_all`): stored results load at once, interrupted runs
    resume. Returns key -> result."""
    return runs.run_all(run, configs, runs_dir, data, report=report, **run_options)


class NotebookSetup(NamedTuple):
    """What an experiment notebook's settings turn into (`notebook_setup`)."""
    mode: str             # "full" or "smoke"
    data: cifar.Cifar     # the real data set, or a fabricated one in its format
    base: Config          # the configuration every run starts from
    runs_dir: Path        # where the runs' folders go
    run_options: dict     # keyword arguments for `run`


def notebook_setup(paper: Config, name: str, mode: Optional[str] = None, *, runs_dir=None,
                   use_drive: bool = True, data_root=None, overrides: Optional[dict] = None,
                   compile: bool = True, amp: Optional[bool] = None, smoke_iterations: int = 4,
                   eval_train: bool = True) -> NotebookSetup:
    """The shared set-up of the CIFAR notebooks, for ``mode`` (default `mode()`).

    ``paper``: the paper's configuration of the experiment, changed by
    ``overrides`` (e.g. ``{"weight_decay": 5e-4}``). ``name``: the notebook's
    runs folder name.

    full: needs a CUDA GPU (a clear error otherwise). ``runs_dir`` defaults
    to ``runs/<name>``; on Colab with ``use_drive`` it is on Google Drive
    (``MyDrive/dm-runs/<name>``, mounted here) so a recycled machine loses
    nothing. The data set is downloaded into ``data_root`` on first use.

    smoke: the CPU with one thread (fastest for tiny tensors, and robust on
    a busy machine); a data set fabricated by `dm.cifar.fabricate` in a fresh
    temporary folder and read through torchvision's loader; the base
    configuration shrunk by `smoke_config`; ``runs_dir`` defaults to that
    temporary folder."""
    mode = _mode_from_environment() if mode is None else mode
    if mode not in ("full", "smoke"):
        raise ValueError(f"mode must be 'full' or 'smoke', got {mode!r}")
    base = dataclasses.replace(paper, **(overrides or {}))
    if mode == "full":
        if not torch.cuda.is_available():
            raise RuntimeError(
                "MODE is 'full' but no CUDA GPU is visible. On Colab: Runtime > Change runtime "
                "type > GPU, then run all cells again. For a CPU check of the pipeline, set "
                "the environment variable DM_MODE=smoke.")
        if runs_dir is None and use_drive and "google.colab" in sys.modules:
            from google.colab import drive

            drive.mount("/content/drive")
            runs_dir = f"/content/drive/MyDrive/dm-runs/{name}"
        data = cifar.load(base.dataset, data_root, download=True)
        options = dict(compile=compile, amp=amp, progress=True, eval_train=eval_train)
        return NotebookSetup(mode, data, base, Path(runs_dir or f"runs/{name}"), options)
    torch.set_num_threads(1)
    scratch = Path(tempfile.mkdtemp(prefix="dm-smoke-"))
    checksums = cifar.fabricate(scratch / "data", base.dataset)  # 500 training, 100 test images
    data = cifar.load(base.dataset, scratch / "data", checksums=checksums)
    options = dict(device="cpu", compile=False, progress=False, eval_train=eval_train)
    return NotebookSetup(mode, data, smoke_config(base, smoke_iterations),
                         Path(runs_dir) if runs_dir is not None else scratch / "runs", options)


# --- command line --------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dm.experiments",
        description="Train one noisy-label CIFAR run and write its result JSON "
                    "(resuming from a checkpoint if one exists).")
    for field in dataclasses.fields(Config):
        flag = "--" + field.name.replace("_", "-")
        if field.name == "lr_milestones":
            parser.add_argument(flag, type=int, nargs="*", default=list(field.default))
        elif isinstance(field.default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=field.default)
        else:
            parser.add_argument(flag, type=type(field.default), default=field.default)
    parser.add_argument("--runs-dir", default="runs", help="where run folders go (default: runs)")
    parser.add_argument("--data-root", default=None, help="CIFAR cache folder (default: $DM_DATA or ~/.cache/dm)")
    parser.add_argument("--download", action="store_true", help="download CIFAR if missing")
    parser.add_argument("--fabricated", action="store_true",
                        help="use a tiny fabricated data set in CIFAR's format (smoke checks)")
    parser.add_argument("--device", default=None, help="cuda, cpu, ... (default: cuda if available)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--no-amp", action="store_true", help="no bfloat16 autocast on CUDA")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(Config)}
    config = Config(**values)
    if args.fabricated:
        root = Path(args.runs_dir) / "fabricated-data"
        checksums = cifar.fabricate(root, config.dataset)
        data = cifar.load(config.dataset, root, checksums=checksums)
    else:
        data = cifar.load(config.dataset, args.data_root, download=args.download)
    result = run(config, args.runs_dir, data, device=args.device,
                 amp=False if args.no_amp else None, compile=args.compile,
                 progress=not args.no_progress)
    print(json.dumps({k: result[k] for k in (
        "name", "best_test_accuracy", "final_test_accuracy", "realised_noise_rate",
        "hardware", "wall_seconds")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
