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
autocast on CUDA (bfloat16 where the GPU has it natively, float16 with a
gradient scaler elsewhere, `resolve_precision`) with channels-last memory; optional
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
import contextlib
import dataclasses
import hashlib
import json
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np
import torch

from . import _checks, authors, cifar, losses, noise, packed, runs
from .packed import split_state
from .runs import load_result
from .resnet import BATCHNORMS, INITS, PackedResNet, batch_statistics_across_processes, depth_of, resnet

__all__ = [
    "Config", "METHODS", "PAPER_CIFAR100", "PAPER_CIFAR10_RESNET56", "AUTHORS_CIFAR100",
    "AUTHORS_CIFAR10_RESNET56", "PRESETS", "AUTHORS_SOURCES", "preset", "preset_differences",
    "preset_differences_markdown", "PRECISIONS", "AUTOCAST_DTYPES", "autocast", "resolve_precision",
    "estimate_seconds", "estimate_selection",
    "TABLE1_ROWS", "TABLE1_DM_BETA", "table1_config", "make_loss", "lr_at", "run", "run_packed", "PACKABLE_FIELDS", "pack_difference", "packs", "load_result", "select_on_validation",
    "smoke_config", "notebook_setup", "NotebookSetup", "run_all",
    "main", "table_configs", "shard", "collect", "table_main",
]

# The methods of the paper's tables, by the names its rows use.
METHODS = losses.METHODS
NOISE_KINDS = ("symmetric", "asymmetric")
SAMPLERS = ("uniform", "classes")
AUGMENTS = ("pad4", "authors")
IMAGES_PER_CLASS = 8  # the "classes" sampler's K: 256 = 32 classes x 8 images
PRECISIONS = ("bf16", "fp16", "fp32")


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything that determines a run's numbers. Defaults: the paper's
    CIFAR-100 setting as its text gives it (Table 1; SGD, momentum 0.9,
    weight decay 1e-4, batch 256, 30k iterations, lr 0.1 divided by 10 at
    15k and 22k; ResNet-44; pad-4 augmentation). `AUTHORS_CIFAR100` holds
    the settings of the authors' code instead (`AUTHORS_SOURCES`).

    ``noise_seed`` seeds the label corruption (and the validation split)
    alone; ``seed`` seeds the initialisation, the batches and the
    augmentation. Runs with different ``seed`` and one ``noise_seed`` train
    on one noisy training set, as a table of several trials needs."""

    dataset: str = "cifar100"           # "cifar10" or "cifar100"
    model: str = "resnet44"             # "resnet<depth>", depth in dm.resnet.DEPTHS
    shortcut: str = "A"                 # "A": He et al.'s zero padding; "B": projection (authors' Caffe net)
    init: str = "kaiming_fan_out"       # "msra": Caffe's msra filler (fan-in), authors' net (dm.resnet)
    batchnorm: str = "torch"            # "caffe": Caffe's normalised moving average, fraction 0.999
    bias_lr_mult: float = 1.0           # learning-rate multiple of the last layer's bias (Caffe net: 2)
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
    augment: str = "pad4"               # "pad4" (paper's text) or "authors" (their Matlab pipeline, dm.cifar)
    val_fraction: float = 0.0           # 0.2: the paper's 80 % noisy train / 20 % clean validation split
    noise_seed: int = 123               # seeds the noisy labels and the split; the authors' value
    seed: int = 123                     # seeds initialisation, batches, augmentation; the authors' value
    eval_every: int = 1000              # the authors log test accuracy every 1000 iterations
    checkpoint_every: int = 1000

    def __post_init__(self):
        if self.dataset not in cifar.NUM_CLASSES:
            raise ValueError(f"dataset must be 'cifar10' or 'cifar100', got {self.dataset!r}")
        depth_of(self.model)  # raises on a bad name
        if self.shortcut not in ("A", "B"):
            raise ValueError(f"shortcut must be 'A' or 'B', got {self.shortcut!r}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        if self.batchnorm not in BATCHNORMS:
            raise ValueError(f"batchnorm must be one of {BATCHNORMS}, got {self.batchnorm!r}")
        _checks.positive("bias_lr_mult", self.bias_lr_mult)
        if self.augment not in AUGMENTS:
            raise ValueError(f"augment must be one of {AUGMENTS}, got {self.augment!r}")
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
        for name in ("seed", "noise_seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        _checks.positive("lr", self.lr)
        _checks.nonnegative("momentum", self.momentum)
        _checks.nonnegative("weight_decay", self.weight_decay)
        object.__setattr__(self, "lr_milestones", tuple(int(m) for m in self.lr_milestones))

    def name(self) -> str:
        """A readable, unique folder name for the run: data set, model, noise,
        method, the preset it differs least from ("authors" for the authors'
        code settings), a hash of any other change, then both seeds."""
        noise_tag = "clean" if self.noise_rate == 0 else f"{self.noise[:3]}{self.noise_rate:g}"
        shown = dict(dataset=self.dataset, model=self.model, method=self.method, lam=self.lam,
                     beta=self.beta, gce_q=self.gce_q, noise=self.noise, noise_rate=self.noise_rate,
                     noise_seed=self.noise_seed, seed=self.seed)
        paper = Config(**shown)
        authors_code = dataclasses.replace(_AUTHORS_CODE[self.dataset], **shown)
        preset_tag, named = (["authors"], authors_code) if self.augment == "authors" else ([], paper)
        return "_".join([self.dataset, self.model, noise_tag, runs.method_tag(self), *preset_tag,
                         *runs.changes_tag(self, named), f"noiseseed{self.noise_seed}", f"seed{self.seed}"])


# The paper's two CIFAR settings. CIFAR-10 with ResNet-56 (Table 9, Figure 2):
# the paper gives no separate schedule for it, so the CIFAR-100 one is used.
PAPER_CIFAR100 = Config()
PAPER_CIFAR10_RESNET56 = Config(dataset="cifar10", model="resnet56")

# The authors' code settings (github.com/XinshaoAmosWang/DerivativeManipulation),
# where they differ from the paper's text; each field's source file is in
# AUTHORS_SOURCES. The schedule, optimiser, batch size and seed agree with the text.
AUTHORS_CIFAR100 = Config(weight_decay=5e-4, sampler="classes", augment="authors", shortcut="B",
                          init="msra", batchnorm="caffe", bias_lr_mult=2.0)
# The authors published no CIFAR-10 code. Their CIFAR-100 settings carry over,
# except the sampler: 32 classes per batch cannot be drawn from 10, so batches
# are uniform (a guess, stated in AUTHORS_SOURCES).
AUTHORS_CIFAR10_RESNET56 = dataclasses.replace(AUTHORS_CIFAR100, dataset="cifar10", model="resnet56",
                                               sampler="uniform")
_AUTHORS_CODE = {"cifar100": AUTHORS_CIFAR100, "cifar10": AUTHORS_CIFAR10_RESNET56}
PRESETS = {
    ("paper", "cifar100"): PAPER_CIFAR100, ("paper", "cifar10"): PAPER_CIFAR10_RESNET56,
    ("authors", "cifar100"): AUTHORS_CIFAR100, ("authors", "cifar10"): AUTHORS_CIFAR10_RESNET56,
}

_RUN = "DerivativeManipulation_Code/CIFAR100_ResNet44_V03_lambda0_5/"
AUTHORS_SOURCES = {
    "weight_decay": _RUN + "Res44_USW_Beta08_lambda1/solver.prototxt (weight_decay: 0.0005; "
                    "every run folder's solver says so)",
    "sampler": _RUN + "train_Res44_USW_Beta08_lambda1_0.4/train.m (id_num 32, image_per_id 8, "
               "randperm(class_num, valid_num) every epoch) and pre_pro_process/utils/"
               "get_train_minibatch_v01.m (randperm(len, image_per_id)); CIFAR-10: guessed, uniform, "
               "since 32 classes per batch cannot be drawn from 10",
    "augment": _RUN + "pre_pro_process/utils/process_imgdataint8.m, img_random_crop.m, "
               "img_center_crop.m; train.m (crop_padding 4, force_square_size 36, cropped_size 32)",
    "shortcut": _RUN + "Res44_USW_Beta08_lambda1/train.prototxt (a 1x1 stride-2 convolution, "
                "batch norm and scale where a stage halves the resolution)",
    "init": _RUN + "Res44_USW_Beta08_lambda1/train.prototxt (weight_filler msra on every "
            "convolution and the inner product; bias_filler constant 0)",
    "batchnorm": _RUN + "Res44_USW_Beta08_lambda1/train.prototxt (BatchNorm layers with no "
                 "batch_norm_param: Caffe's default moving_average_fraction 0.999)",
    "bias_lr_mult": _RUN + "Res44_USW_Beta08_lambda1/train.prototxt (the inner product's bias: "
                    "lr_mult 2, decay_mult 1; the convolutions' biases, lr_mult 2, cancel in "
                    "the batch norm that follows each, so they are left out)",
}


def preset(name: str, dataset: str = "cifar100") -> Config:
    """The preset ``name`` ("paper": the paper's text, `PAPER_CIFAR100` /
    `PAPER_CIFAR10_RESNET56`; "authors": their code, `AUTHORS_CIFAR100` /
    `AUTHORS_CIFAR10_RESNET56`) of ``dataset``."""
    if (name, dataset) not in PRESETS:
        raise ValueError(f"preset must be 'paper' or 'authors' and dataset 'cifar10' or 'cifar100', "
                         f"got {name!r}, {dataset!r}")
    return PRESETS[(name, dataset)]


def preset_differences(dataset: str = "cifar100") -> list:
    """``[(field, paper value, authors value, source)]`` for every field in
    which the two presets of ``dataset`` differ."""
    paper, code = preset("paper", dataset), preset("authors", dataset)
    return [(f.name, getattr(paper, f.name), getattr(code, f.name), AUTHORS_SOURCES[f.name])
            for f in dataclasses.fields(Config) if getattr(paper, f.name) != getattr(code, f.name)]


def preset_differences_markdown(dataset: str = "cifar100") -> str:
    """`preset_differences` as a Markdown table."""
    lines = ["| `Config` field | paper's text | authors' code | source (in the authors' repository) |",
             "| :--- | :--- | :--- | :--- |"]
    lines += [f"| `{field}` | `{paper!r}` | `{code!r}` | {source} |"
              for field, paper, code, source in preset_differences(dataset)]
    return "\n".join(lines)

# Table 1's rows as method settings. DM's beta per column: the beta of the
# authors' run folder whose best accuracy is the paper's cell (dm.authors);
# the asymmetric columns have no published run, so their beta is a guess.
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
GUESSED = ("guessed: the authors published no asymmetric-noise run (searched every commit of their "
           "repositories); the beta of their s0.2 run with this lambda")


def _table1_dm_beta() -> dict:
    # (lambda, column key) -> (beta, source): the source is the run folder's
    # path in the authors' repository, or GUESSED. Columns as in dm/data/paper_tables.json.
    table = {}
    for lam in (0.0, 0.5, 1.0):
        for key in ("clean", "s0.2", "s0.4", "s0.6"):
            table[(lam, key)] = authors.table1_beta(lam, key)
        for key in ("a0.2", "a0.3", "a0.4"):
            table[(lam, key)] = (table[(lam, "s0.2")][0], GUESSED)
    return table


TABLE1_DM_BETA = _table1_dm_beta()


def table1_config(row: str, column: dict, base: Config = PAPER_CIFAR100):
    """The `Config` of one Table 1 cell, and where its DM beta came from.

    ``column`` is one of the paper table's column records (``{"key": "s0.4",
    "noise": "symmetric", "rate": 0.4}``). Returns ``(config, beta_source)``;
    ``beta_source`` (the authors' run folder, or `GUESSED`) is None for
    non-DM rows and for "DM (beta = 0)"."""
    if row not in TABLE1_ROWS:
        raise ValueError(f"row must be one of {list(TABLE1_ROWS)}, got {row!r}")
    settings, source = dict(TABLE1_ROWS[row]), None
    if settings["method"] == "DM" and "beta" not in settings:
        settings["beta"], source = TABLE1_DM_BETA[(settings["lam"], column["key"])]
    config = dataclasses.replace(base, noise=column["noise"], noise_rate=column["rate"], **settings)
    return config, source


def make_loss(config: Config, distributed: bool = False) -> torch.nn.Module:
    """The loss module of ``config.method`` (`dm.losses.make`; input checks
    off: `run` checks the labels once, up front; ``distributed``: normalise
    over the global batch of all processes, for `run`'s ``ddp``)."""
    return losses.make(config.method, lam=config.lam, beta=config.beta, q=config.gce_q,
                       check_inputs=False, distributed=distributed)


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


# --- the run ------------------------------------------------------------------

def _noisy_labels(config: Config, clean: np.ndarray) -> np.ndarray:
    # Seeded from noise_seed alone: every method and every training seed sees
    # the same corrupted labels.
    if config.noise_rate == 0:
        return clean.copy()
    if config.noise == "symmetric":
        return noise.symmetric(clean, config.noise_rate, cifar.NUM_CLASSES[config.dataset],
                               config.noise_seed, exact=config.noise_exact)
    rule = noise.asymmetric_cifar10 if config.dataset == "cifar10" else noise.asymmetric_cifar100
    return rule(clean, config.noise_rate, config.noise_seed, exact=config.noise_exact)


def training_labels(config: Config, data: cifar.Cifar):
    """``(train indices, val indices, clean labels, noisy labels)`` of
    ``config``'s training set: the split and the corruption, both seeded by
    ``config.noise_seed`` only."""
    train_idx, val_idx = cifar.split_train_val(data.y_train, config.val_fraction, config.noise_seed)
    clean = data.y_train[train_idx]
    return train_idx, val_idx, clean, _noisy_labels(config, clean)


def labels_sha256(labels: np.ndarray) -> str:
    """SHA-256 of labels as little-endian int64: two machines that print the
    same digest trained on the same corruption."""
    return hashlib.sha256(np.ascontiguousarray(labels, dtype="<i8").tobytes()).hexdigest()


def resolve_precision(precision: Optional[str], device: torch.device) -> str:
    """The training precision: ``precision`` if given, else bfloat16
    autocast on a CUDA GPU with native bfloat16 (A100, H100, ...), float16
    autocast with a gradient scaler on one without (Colab's T4, a V100), and
    float32 on a CPU."""
    if precision is None:
        if device.type != "cuda":
            return "fp32"
        return "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp16"
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS} or None, got {precision!r}")
    return precision


AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: torch.device, precision: str):
    """The autocast context of ``precision`` on ``device`` (a no-op for
    "fp32"): what the trainer, its evaluator and the benchmark run under."""
    dtype = AUTOCAST_DTYPES.get(precision)
    if dtype is None:  # torch 2.0 refuses autocast(..., torch.float32), even disabled
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype)


class _Inputs:
    """The training and test-time input pipelines of a config, on the device:
    pad-4 augmentation and per-channel standardisation (the paper's text), or
    the authors' squares (`dm.cifar.authors_square`, made once), flip and
    crop, and mean subtraction."""

    def __init__(self, config: Config, memory_format):
        self.config, self.memory_format = config, memory_format

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """What the data set is kept as on the device (once per run)."""
        return cifar.authors_square(images) if self.config.augment == "authors" else images

    def train(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.config.augment == "authors":
            x = cifar.normalize_authors(cifar.authors_augment(images, generator))
        else:
            x = cifar.normalize(cifar.augment(images, generator), self.config.dataset)
        return x.contiguous(memory_format=self.memory_format)

    def test(self, images: torch.Tensor) -> torch.Tensor:
        if self.config.augment == "authors":
            x = cifar.normalize_authors(cifar.authors_test_crop(images))
        else:
            x = cifar.normalize(images, self.config.dataset)
        return x.contiguous(memory_format=self.memory_format)


# What `run` records on the training set at each evaluation (``eval_train``).
_TRAIN_MEASURES = ("train_accuracy_noisy_labels", "train_accuracy_clean_labels",
                   "train_accuracy_corrupted", "train_accuracy_intact",
                   "mean_p_corrupted", "mean_p_intact")


class _Evaluator:
    """Accuracy and mean p of the labelled class, without augmentation, for
    a model or a pack of K (`dm.resnet.PackedResNet`)."""

    def __init__(self, model, inputs: _Inputs, device, precision: str, batch_size=1000):
        self.model, self.inputs, self.device = model, inputs, device
        self.precision, self.batch_size = precision, batch_size

    @torch.no_grad()
    def predictions(self, images: torch.Tensor, labels: torch.Tensor):
        """(predicted class, p of ``labels``), each ``[K, n]`` (K = 1 for one
        model) for every image, as device tensors."""
        was_training = self.model.training
        self.model.eval()
        predicted, p = [], []
        for start in range(0, len(labels), self.batch_size):
            x = self.inputs.test(images[start:start + self.batch_size])
            with autocast(self.device, self.precision):
                logits = _as_pack(self.model(x)).float()
            y = labels[start:start + self.batch_size]
            predicted.append(logits.argmax(2))
            p.append(torch.softmax(logits, 2).gather(2, y.expand(len(logits), -1)[..., None])[..., 0])
        self.model.train(was_training)
        return torch.cat(predicted, 1), torch.cat(p, 1)


def _as_pack(logits: torch.Tensor) -> torch.Tensor:
    """Logits as ``[K, B, C]``: one model's ``[B, C]`` become a pack of one."""
    return logits if logits.dim() == 3 else logits[None]


def _class_batches(y_train: torch.Tensor, num_classes: int, batch_size: int, device):
    """The "classes" sampler, as the authors' Matlab code draws batches
    (``train.m``, ``get_train_minibatch_v01.m``): P = batch / 8 classes of 8
    images each, by the (noisy) labels. The classes present are walked in
    windows of P through a permutation of ``floor(C / P) * P`` of them (for
    CIFAR-100 ``randperm(100, 96)``: three batches, then a new permutation),
    so each class comes once per window sweep; the 8 images of a class are
    drawn without replacement (a class with fewer than 8 cycles through a
    random order of them, as ``mod(randperm(8), len) + 1`` does). Returns
    ``draw(it, generator)`` -> image indices; the permutation of sweep ``e``
    comes from a generator seeded by ``seed_at(seed, e, stream=1)``, the
    images from ``generator``. (Their loop draws its very first window twice,
    an off-by-one at the first step that is not reproduced.)"""
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
            order = torch.Generator().manual_seed(runs.seed_at(seed, index, stream=1))
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


# Fields in which the runs of one pack may differ: the loss. Everything else
# (data, noise, seeds, model, schedule, optimiser) they share.
PACKABLE_FIELDS = ("method", "lam", "beta", "gce_q")


def pack_difference(a: Config, b: Config) -> Optional[str]:
    """The first field outside `PACKABLE_FIELDS` in which ``a`` and ``b``
    differ (they cannot share a pack), or None."""
    for field in dataclasses.fields(Config):
        if field.name not in PACKABLE_FIELDS and getattr(a, field.name) != getattr(b, field.name):
            return field.name
    return None


def packs(configs) -> list:
    """``configs`` (an iterable, or a dict's values) partitioned into lists
    that can each share a pack (`run_packed`), in order of first appearance:
    Table 1's 84 runs are 7 packs of 12, one per column."""
    groups: list = []
    for config in (configs.values() if isinstance(configs, dict) else configs):
        for group in groups:
            if pack_difference(group[0], config) is None:
                group.append(config)
                break
        else:
            groups.append([config])
    return groups


def _chunks(group: list, max_pack: Optional[int]) -> list:
    """``group`` in consecutive packs of at most ``max_pack`` runs (one
    pack for None)."""
    if max_pack is not None:
        _checks.positive_integer("max_pack", max_pack)
    size = max_pack or max(len(group), 1)
    return [group[i:i + size] for i in range(0, len(group), size)]


def run(config: Config, runs_dir, data: Optional[cifar.Cifar] = None, *, device=None,
        precision: Optional[str] = None, compile: bool = False, progress: bool = True,
        stop_at: Optional[int] = None, eval_train: bool = True, ddp: bool = False) -> Optional[dict]:
    """Train ``config`` (or resume it, or return its stored result).

    ``data``: a `dm.cifar.Cifar` of ``config.dataset`` (default: `dm.cifar.load`
    from the cache folder). ``device``: default CUDA when available.
    ``precision``: "bf16" or "fp16" autocast (fp16 with a gradient scaler)
    or "fp32"; default `resolve_precision` (bf16 where the GPU has it
    natively, fp16 on other GPUs, fp32 on a CPU). Channels-last memory goes
    with autocast on CUDA. ``compile``: ``torch.compile`` the model.
    ``stop_at``: stop after that many iterations, as an interruption would
    (for tests); returns None then. ``eval_train``: also record the
    training-set measurements (the whole set's accuracy against the noisy
    and against the clean labels, as Table 9 reports them; each of the
    corrupted and intact parts' accuracy and mean p of the labelled class,
    as Figure 2a plots), one forward pass over the training set per
    evaluation.

    ``ddp``: data-parallel training over the processes of torch.distributed's
    default group (``torchrun --nproc_per_node=N -m dm.experiments --ddp``
    sets it up): the same run one process would train. Every process draws and augments
    the whole batch of each iteration (the same draws: they are seeded by
    position) and trains on its slice of it (``batch_size`` must divide by
    the number of processes), under DistributedDataParallel; batch norm
    takes its statistics over the global batch
    (`dm.resnet.batch_statistics_across_processes`), DM and DN normalise over
    it (``distributed=True``), and the logged loss is the global batch's.
    Every process evaluates (on the whole test set, the same numbers);
    process 0 alone writes checkpoints and results, and all return the
    result. ``device`` is each process's own (e.g. ``cuda:<LOCAL_RANK>``).

    Returns the result dict that is also written to
    ``<runs_dir>/<config.name()>/result.json``; the final weights go to
    ``model.pt`` beside it. With ``progress``, the time per 1000 iterations
    measured up to the first evaluation, and the run's estimated total, are
    printed there. `run_packed` trains several configurations at once.
    """
    return run_packed([config], runs_dir, data, device=device, precision=precision, compile=compile,
                      progress=progress, stop_at=stop_at, eval_train=eval_train, ddp=ddp)[0]


def run_packed(configs, runs_dir, data: Optional[cifar.Cifar] = None, *, device=None,
               precision: Optional[str] = None, compile: bool = False, progress: bool = True,
               stop_at: Optional[int] = None, eval_train: bool = True,
               max_pack: Optional[int] = None, ddp: bool = False) -> list:
    """`run` for several configurations at once, trained as one packed
    model (`dm.resnet.PackedResNet`, grouped convolutions) on the same
    batches: the same results as `run` for each, to float rounding, in
    fewer, larger kernels.

    ``configs`` may differ only in their loss (`PACKABLE_FIELDS`: method,
    lam, beta, gce_q); they share data, noise, seeds, model and schedule,
    hence initialisation, batches and augmentation (all seeded by position).
    Others are refused with an error naming the field (`packs` partitions a
    selection into packs). Each run keeps its own loss, batch-norm
    statistics and optimiser state, and writes its own checkpoints,
    ``model.pt`` and ``result.json`` where `run` would: a run checkpointed
    in a pack resumes alone or in another pack, and the other way round.
    Stored results are loaded, not retrained; the runs still to train are
    packed by the iteration they resume from, at most ``max_pack`` to a
    pack (default: all; a GPU short of memory takes fewer).

    Keywords as for `run`; with fp16 the pack shares one gradient scaler,
    so a step one member overflows in is skipped for all. Returns the
    results in the order of ``configs`` (None for runs stopped by
    ``stop_at``)."""
    configs = list(configs)
    if not configs:
        raise ValueError("configs is empty: nothing to train")
    for config in configs:
        if not isinstance(config, Config):
            raise TypeError(f"config must be a dm.experiments.Config, got {type(config).__name__}")
    for config in configs[1:]:
        field = pack_difference(configs[0], config)
        if field is not None:
            raise ValueError(
                f"{config.name()} cannot share a pack with {configs[0].name()}: their {field} differs "
                f"({getattr(configs[0], field)!r} and {getattr(config, field)!r}); only "
                f"{', '.join(PACKABLE_FIELDS)} may differ (dm.experiments.packs groups a selection)")
    names = [c.name() for c in configs]
    if len(set(names)) < len(names):
        raise ValueError(f"a configuration is given twice: {sorted(n for n in set(names) if names.count(n) > 1)}")
    _chunks([], max_pack)  # check max_pack before anything is written
    results = {config: load_result(config, runs_dir) for config in configs}
    pending = [c for c in configs if results[c] is None]
    if pending:
        if data is None:
            data = cifar.load(configs[0].dataset)
        if data.name != configs[0].dataset:
            raise ValueError(f"data is {data.name} but config.dataset is {configs[0].dataset}")
        by_start: dict = {}
        for config in pending:
            by_start.setdefault(runs.checkpoint_iteration(Path(runs_dir) / config.name()), []).append(config)
        for group in by_start.values():
            for pack in _chunks(group, max_pack):
                trained = _train_pack(pack, runs_dir, data, device=device, precision=precision,
                                      compile=compile, progress=progress, stop_at=stop_at,
                                      eval_train=eval_train, ddp=ddp)
                results.update(zip(pack, trained))
    return [results[config] for config in configs]


def _train_pack(configs: list, runs_dir, data: cifar.Cifar, *, device, precision: Optional[str],
                compile: bool, progress: bool, stop_at: Optional[int], eval_train: bool,
                ddp: bool = False) -> list:
    """Train the runs of ``configs`` (pack-compatible, none stored, all
    resuming from one iteration) as one model; a pack of one is a plain
    `ResNet` with its loss module. Returns their results (Nones if stopped)."""
    config, size = configs[0], len(configs)
    rank, world = _process_group(config, ddp)
    outs = [Path(runs_dir) / c.name() for c in configs]
    if rank == 0:
        for out in outs:
            out.mkdir(parents=True, exist_ok=True)
    device = runs.resolve_device(device)
    precision = resolve_precision(precision, device)
    # Channels-last pays off only with the tensor cores' half-precision kernels.
    memory_format = (torch.channels_last if device.type == "cuda" and precision in AUTOCAST_DTYPES
                     else torch.contiguous_format)
    if device.type == "cuda":
        # Fixed input shapes: let cuDNN pick its fastest kernels once. (Results
        # on a GPU are reproducible up to rounding, not bitwise, either way.)
        torch.backends.cudnn.benchmark = True

    # Data: split, corrupt, move to the device once (the same for every member).
    train_idx, val_idx, clean, noisy = training_labels(config, data)
    num_classes = cifar.NUM_CLASSES[config.dataset]
    n = len(train_idx)
    if n < config.batch_size:
        raise ValueError(f"batch_size {config.batch_size} exceeds the {n} training images")
    inputs = _Inputs(config, memory_format)
    x_train = inputs.prepare(torch.from_numpy(data.x_train[train_idx]).to(device))
    y_train = torch.from_numpy(noisy).to(device)
    y_clean = torch.from_numpy(clean).to(device)
    corrupted = torch.from_numpy(noisy != clean).to(device)
    x_test = inputs.prepare(torch.from_numpy(data.x_test).to(device))
    y_test = torch.from_numpy(data.y_test).to(device)
    x_val = inputs.prepare(torch.from_numpy(data.x_train[val_idx]).to(device))
    y_val = torch.from_numpy(data.y_train[val_idx]).to(device)  # clean labels

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = resnet(config.model, num_classes, config.shortcut, config.init, config.batchnorm)
    if size > 1:  # every member starts from the seed's initialisation
        model = PackedResNet([model] * size)
    model = model.to(device, memory_format=memory_format)
    if ddp:
        batch_statistics_across_processes(model)
    bias = [model.fc.bias]
    rest = [p for p in model.parameters() if p is not model.fc.bias]
    optimizer = torch.optim.SGD([{"params": rest}, {"params": bias, "lr_mult": config.bias_lr_mult}],
                                lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    loss_fn = (make_loss(config, ddp) if size == 1
               else packed.Stacked([make_loss(c, ddp) for c in configs]))
    forward = model
    if ddp:
        # Buffers (batch norm's running estimates) are the same in every
        # process already: they are updated from the global statistics.
        forward = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, broadcast_buffers=False)
    if compile:
        forward = torch.compile(forward)
    evaluator = _Evaluator(model, inputs, device, precision)

    def evaluate(iteration: int) -> list:
        def means(values: torch.Tensor):  # [K, n] -> K means, 6 decimals: JSON without float32 noise
            if not values.shape[1]:
                return [None] * size
            return [round(v, 6) for v in values.float().mean(1).tolist()]

        measured = {
            "test_accuracy": means(evaluator.predictions(x_test, y_test)[0] == y_test),
            "val_accuracy": (means(evaluator.predictions(x_val, y_val)[0] == y_val) if len(y_val)
                             else [None] * size),
        }
        if eval_train:
            predicted, p = evaluator.predictions(x_train, y_train)
            # The whole training set against the labels trained on and against
            # the original ones (the paper's Table 9 "corrupted" / "intact").
            measured["train_accuracy_noisy_labels"] = means(predicted == y_train)
            measured["train_accuracy_clean_labels"] = means(predicted == y_clean)
            # Each part of it against the labels trained on, and the mean p of
            # the labelled class there (Figure 2a).
            for name, mask in (("corrupted", corrupted), ("intact", ~corrupted)):
                measured[f"train_accuracy_{name}"] = means(predicted[:, mask] == y_train[mask])
                measured[f"mean_p_{name}"] = means(p[:, mask])
        return [{key: values[k] for key, values in measured.items()} for k in range(size)]

    class_batch = (_class_batches(y_train, num_classes, config.batch_size, device)
                   if config.sampler == "classes" else None)
    uniform_batch = runs.epoch_batches(config.seed, n, config.batch_size, device)
    augment_generator = torch.Generator(device=device)
    share = config.batch_size // world

    def step(it: int) -> torch.Tensor:
        augment_generator.manual_seed(runs.seed_at(config.seed, it))
        if class_batch is not None:
            idx = class_batch(it, config.seed, augment_generator)
        else:
            idx = uniform_batch(it)
        x, y = inputs.train(x_train[idx], augment_generator), y_train[idx]
        if ddp:  # this process's slice of the whole augmented batch
            x, y = x[rank * share:(rank + 1) * share], y[rank * share:(rank + 1) * share]
        with autocast(device, precision):
            logits = forward(x)
        losses_ = loss_fn(logits.float(), y).reshape(size)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(losses_.sum()).backward()
        scaler.step(optimizer)
        scaler.update()
        if ddp:  # the global batch's loss: the mean of the processes' values
            losses_ = losses_.detach().clone()
            torch.distributed.all_reduce(losses_)
            losses_ /= world
        return losses_

    trained = runs.train_pack(
        configs, outs, model=model, optimizer=optimizer, step=step, evaluate=evaluate,
        lr=lambda it: lr_at(config, it), iterations=config.iterations,
        eval_every=config.eval_every, checkpoint_every=config.checkpoint_every, device=device,
        measures=("test_accuracy", "val_accuracy") + _TRAIN_MEASURES,
        progress=progress and rank == 0, stop_at=stop_at, extra_state={"grad_scaler": scaler},
        write=rank == 0, world_size=world)
    if trained is None:
        return [None] * size
    shared = {
        "realised_noise_rate": noise.realised_rate(clean, noisy),
        "noisy_labels_sha256": labels_sha256(noisy),
        "transition_matrix": np.round(noise.transition_matrix(clean, noisy, num_classes), 4).tolist(),
        "train_size": int(n), "val_size": int(len(val_idx)), "test_size": int(len(y_test)),
        **runs.provenance(device),
        "precision": precision, "channels_last": memory_format == torch.channels_last,
        "compiled": bool(compile),
        # Processes of a data-parallel run (ddp), each on its own device.
        "world_size": world,
        # "smoke" whenever the data were fabricated, whatever DM_MODE says.
        "mode": "smoke" if data.fabricated else runs.mode(),
        "fabricated_data": bool(data.fabricated),
        # Which data: official, a named copy (e.g. CIFAR-10's JPEG copy), or fabricated.
        "data": data.identity(),
    }
    members = split_state(model.state_dict(), size) if size > 1 else [model.state_dict()]
    results = []
    for member, out, done, state in zip(configs, outs, trained, members):
        history, test = done.history, done.history["test_accuracy"]
        result = {
            "name": member.name(),
            "config": dataclasses.asdict(member),
            "best_test_accuracy": max(test),
            "best_iteration": history["iteration"][test.index(max(test))],
            "final_test_accuracy": test[-1],
            "final_val_accuracy": history["val_accuracy"][-1],
            **{f"final_{key}": history[key][-1] if eval_train else None
               for key in _TRAIN_MEASURES if key.startswith("train_accuracy")},
            "history": history,
            **shared,
            **runs.timing(done, size),
            "train_images_per_second": member.iterations * member.batch_size
                                       / max(done.wall_seconds - done.overhead_seconds, 1e-9),
        }
        results.append(runs.finish(out, result, state) if rank == 0 else json.loads(json.dumps(result)))
    if ddp:  # no process returns before process 0 has written the results
        torch.distributed.barrier()
    return results


def _process_group(config: Config, ddp: bool) -> tuple:
    """(rank, world size) of a data-parallel run (``ddp``), checked: the
    default process group is initialised and ``config.batch_size`` divides
    by its size; (0, 1) otherwise."""
    if not ddp:
        return 0, 1
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError("ddp=True trains over torch.distributed's default process group, but none is "
                           "initialised: start the processes with torchrun (python -m dm.experiments --ddp does the "
                           "rest), or call torch.distributed.init_process_group() first")
    rank, world = dist.get_rank(), dist.get_world_size()
    if config.batch_size % world:
        raise ValueError(f"batch_size {config.batch_size} does not divide by the {world} processes of the "
                         f"data-parallel run")
    return rank, world


def estimate_seconds(config, data: cifar.Cifar, *, steps: int = 20, **run_options) -> float:
    """Seconds one run of ``config`` (or one pack of the configurations of
    a list, `run_packed`) is expected to take here: ``steps`` iterations and
    two evaluations are timed (after one iteration and one evaluation to
    warm up: kernels, compilation, caches) in a scratch folder, then scaled
    to ``config.iterations`` iterations and their evaluations. ``run_options``
    as for `run` (``device``, ``precision``, ``compile``, ``eval_train``).
    What the notebooks print before a selection."""
    steps = _checks.positive_integer("steps", steps)
    pack = list(config) if isinstance(config, (list, tuple)) else [config]
    options = {**run_options, "progress": False, "stop_at": None}
    probe = [dataclasses.replace(c, iterations=2 * steps, eval_every=steps, checkpoint_every=2 * steps)
             for c in pack]
    with tempfile.TemporaryDirectory(prefix="dm-estimate-") as scratch:
        warm_up = [dataclasses.replace(c, iterations=1, eval_every=1, checkpoint_every=1) for c in probe]
        run_packed(warm_up, scratch, data, **options)
        result = run_packed(probe, scratch, data, **options)[0]
    evaluation = result["overhead_seconds"] / 2
    per_step = (result["wall_seconds"] - result["overhead_seconds"]) / probe[0].iterations
    evaluations = -(-pack[0].iterations // pack[0].eval_every)
    return per_step * pack[0].iterations + evaluation * evaluations


def estimate_selection(configs, runs_dir, data: cifar.Cifar, *, pack: bool = True,
                       max_pack: Optional[int] = None, steps: int = 20, **run_options) -> str:
    """What the notebooks print before their runs: how many of ``configs``
    (an iterable, or a dict's values) are still to train in ``runs_dir``,
    how long one run (with ``pack``: one pack, as `run_all` forms them) takes
    here (`estimate_seconds`, measured on the first) and the whole
    selection's estimate (that time per run or pack; a smaller pack is
    counted in proportion to its size, an upper bound since a pack costs
    less than its runs). ``steps``: as for `estimate_seconds`."""
    configs = list(configs.values() if isinstance(configs, dict) else configs)
    pending = [c for c in configs if load_result(c, runs_dir) is None]
    if not pending:
        return f"all {len(configs)} runs are stored in {runs_dir}"
    groups = [[c] for c in pending]
    if pack:
        groups = [chunk for group in packs(pending) for chunk in _chunks(group, max_pack)]
    one = estimate_seconds(groups[0], data, steps=steps, **run_options)
    device = runs.hardware(runs.resolve_device(run_options.get("device")))
    each = f"{one:.1f} s" if one < 120 else f"{one / 60:.1f} min"
    total = sum(one * len(group) / len(groups[0]) for group in groups)
    whole = f"{total:.0f} s" if total < 120 else f"{total / 60:.0f} min" if total < 7200 else f"{total / 3600:.1f} h"
    what = (f"in {len(groups)} pack{'s' if len(groups) > 1 else ''} of {', '.join(str(len(g)) for g in groups)}; "
            f"a pack of {len(groups[0])} takes" if pack else "one takes")
    return (f"{len(pending)} of {len(configs)} runs to train; {what} about {each} on {device} "
            f"(measured now: a few iterations and evaluations), so about {whole} in all")


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

def run_all(configs: dict, runs_dir, data: cifar.Cifar, *, report: bool = True, pack: bool = True,
            max_pack: Optional[int] = None, **run_options) -> dict:
    """Train every configuration of ``configs`` (any key -> `Config`), in
    order (`dm.runs.run_all`): stored results load at once, interrupted runs
    resume. With ``pack`` (the default) the runs that can share a pack
    (`packs`: one per column of Table 1) train together (`run_packed`, at
    most ``max_pack`` to a pack), else one at a time (`run`). Returns key ->
    result."""
    if not pack:
        return runs.run_all(run, configs, runs_dir, data, report=report, **run_options)
    return runs.run_all(run_packed, configs, runs_dir, data, report=report, packs=packs,
                        max_pack=max_pack, **run_options)


class NotebookSetup(NamedTuple):
    """What an experiment notebook's settings turn into (`notebook_setup`)."""
    mode: str             # "full" or "smoke"
    data: cifar.Cifar     # the real data set, or a fabricated one in its format
    base: Config          # the configuration every run starts from
    runs_dir: Path        # where the runs' folders go
    run_options: dict     # keyword arguments for `run`


def notebook_setup(preset_config: Config, name: str, mode: Optional[str] = None, *, runs_dir=None,
                   use_drive: bool = True, data_root=None, overrides: Optional[dict] = None,
                   compile: bool = True, precision: Optional[str] = None, smoke_iterations: int = 4,
                   eval_train: bool = True) -> NotebookSetup:
    """The shared set-up of the CIFAR notebooks, for ``mode`` (default `dm.runs.mode`).

    ``preset_config``: the experiment's preset (`preset`: the paper's text or
    the authors' code), changed by ``overrides`` (e.g. ``{"weight_decay":
    5e-4}``). ``name``: the notebook's runs folder name. ``precision``: see
    `run`.

    full: needs a CUDA GPU (a clear error otherwise). ``runs_dir`` defaults
    to ``runs/<name>``; on Colab with ``use_drive`` it is on Google Drive
    (``MyDrive/dm-runs/<name>``, mounted here) so a recycled machine loses
    nothing. The data set is downloaded into ``data_root`` on first use;
    on Colab with ``use_drive`` that defaults to ``MyDrive/dm-data``, so after
    a disconnect neither the runs nor the data are fetched again.

    smoke: the CPU with one thread (fastest for tiny tensors, and robust on
    a busy machine); a data set fabricated by `dm.cifar.fabricate` in a fresh
    temporary folder and read through torchvision's loader; the base
    configuration shrunk by `smoke_config`; ``runs_dir`` defaults to that
    temporary folder."""
    mode = runs.mode() if mode is None else mode
    if mode not in ("full", "smoke"):
        raise ValueError(f"mode must be 'full' or 'smoke', got {mode!r}")
    base = dataclasses.replace(preset_config, **(overrides or {}))
    if mode == "full":
        if not torch.cuda.is_available():
            raise RuntimeError(
                "MODE is 'full' but no CUDA GPU is visible. On Colab: Runtime > Change runtime "
                "type > GPU, then run all cells again. For a CPU check of the pipeline, set "
                "the environment variable DM_MODE=smoke.")
        if runs_dir is None and use_drive:
            runs_dir = runs.drive_folder(name)  # None off Colab
        if data_root is None and use_drive:
            data_root = runs.drive_data_root()  # None off Colab: $DM_DATA or ~/.cache/dm
        data = cifar.load(base.dataset, data_root, download=True)
        options = dict(compile=compile, precision=precision, progress=True, eval_train=eval_train)
        return NotebookSetup(mode, data, base, Path(runs_dir or f"runs/{name}"), options)
    scratch = runs.smoke_scratch()
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
    parser.add_argument("--preset", choices=("paper", "authors"), default="paper",
                        help="the settings every flag below changes: the paper's text (default) or the "
                             "authors' code (AUTHORS_CIFAR100 / AUTHORS_CIFAR10_RESNET56)")
    # Config's flags: only those given change the preset (defaults shown are the paper's).
    for field in dataclasses.fields(Config):
        flag = "--" + field.name.replace("_", "-")
        shown = f"default: the preset's ({field.default!r} in the paper's)"
        if field.name == "lr_milestones":
            parser.add_argument(flag, type=int, nargs="*", default=argparse.SUPPRESS, help=shown)
        elif isinstance(field.default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                                help=shown)
        else:
            parser.add_argument(flag, type=type(field.default), default=argparse.SUPPRESS, help=shown)
    parser.add_argument("--runs-dir", default="runs", help="where run folders go (default: runs)")
    parser.add_argument("--data-root", default=None, help="CIFAR cache folder (default: $DM_DATA or ~/.cache/dm)")
    parser.add_argument("--download", action="store_true", help="download CIFAR if missing")
    parser.add_argument("--fabricated", action="store_true",
                        help="use a tiny fabricated data set in CIFAR's format (smoke checks)")
    parser.add_argument("--device", default=None, help="cuda, cpu, ... (default: cuda if available)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--precision", choices=PRECISIONS, default=None,
                        help="bf16/fp16 autocast or fp32 (default: bf16 where the GPU has it, "
                             "else fp16 on a GPU, fp32 on a CPU)")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--ddp", action="store_true",
                        help="data-parallel over the processes torchrun starts, one device each "
                             "(run(..., ddp=True)): torchrun --nproc_per_node=N -m dm.experiments --ddp ...")
    return parser


def config_from_args(args: argparse.Namespace) -> Config:
    """The `Config` the command line names: ``--preset``'s, changed by the
    flags given."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(Config) if hasattr(args, f.name)}
    return dataclasses.replace(preset(args.preset, values.get("dataset", "cifar100")), **values)


def _data(dataset: str, runs_dir, data_root, download: bool, fabricated: bool) -> cifar.Cifar:
    """The data set the command line trains on: CIFAR from ``data_root``, or
    a tiny one fabricated in CIFAR's format under ``runs_dir``."""
    if fabricated:
        root = Path(runs_dir) / "fabricated-data"
        return cifar.load(dataset, root, checksums=cifar.fabricate(root, dataset))
    return cifar.load(dataset, data_root, download=download)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in TABLE_COMMANDS:
        return table_main(argv)
    args = _parser().parse_args(argv)
    config = config_from_args(args)
    if args.ddp:
        return _ddp_main(args, config)
    data = _data(config.dataset, args.runs_dir, args.data_root, args.download, args.fabricated)
    result = run(config, args.runs_dir, data, device=args.device,
                 precision=args.precision, compile=args.compile,
                 progress=not args.no_progress)
    _print_summary(result)
    return 0


def _print_summary(result: dict) -> None:
    print(json.dumps({k: result[k] for k in (
        "name", "best_test_accuracy", "final_test_accuracy", "realised_noise_rate",
        "hardware", "world_size", "wall_seconds")}, indent=1))


def _ddp_main(args: argparse.Namespace, config: Config) -> int:
    """``--ddp``: one process of a data-parallel run started by torchrun
    (which sets RANK, WORLD_SIZE, LOCAL_RANK and the rendezvous): joins the
    default process group (NCCL on GPUs, each process on ``cuda:LOCAL_RANK``;
    gloo on CPUs), reads the data set in turn (so that a download or a
    fabricated archive is written by one process at a time), trains
    ``config`` with ``run(..., ddp=True)``, and process 0 prints the summary."""
    import os

    dist = torch.distributed
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(args.device) if args.device else runs.resolve_device(None)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    else:
        dist.init_process_group("gloo")
    try:
        data = None
        for turn in range(dist.get_world_size()):
            if turn == dist.get_rank():
                data = _data(config.dataset, args.runs_dir, args.data_root, args.download, args.fabricated)
            dist.barrier()
        result = run(config, args.runs_dir, data, device=device, precision=args.precision,
                     compile=args.compile, progress=not args.no_progress, ddp=True)
        if dist.get_rank() == 0:
            _print_summary(result)
    finally:
        dist.destroy_process_group()
    return 0


# --- a whole table from the command line, on one machine or many ---------------------

TABLE_COMMANDS = ("table1", "table9", "collect")
TABLE_DATASETS = {"table1": "cifar100", "table9": "cifar10"}


def table_configs(table: str, base: Config, rows=None, columns=None) -> dict:
    """The cells of ``table`` ("table1" or "table9") built from ``base``, as
    ``{(row, column): Config}``, column by column: the order in which they
    pack (`packs`). Table 1: rows are the paper's method rows, columns its
    keys ("clean", "s0.4", "a0.2", ...); Table 9: rows are its models
    ("CCE", "DM lambda=0.5, beta=12", ...), columns its noise rates ("0.4").
    ``rows``/``columns``: keep only those (an unknown name is an error)."""
    from . import paper

    if table == "table1":
        all_rows, all_columns = paper.table1_rows(), [c["key"] for c in paper.table1_columns()]
        cells = {(row, key): paper.table1_config(row, key, base) for key in all_columns for row in all_rows}
    elif table == "table9":
        all_rows = list(dict.fromkeys(row["model"] for row in paper.table9_rows()))
        all_columns = list(dict.fromkeys(f"{row['rate']:g}" for row in paper.table9_rows()))
        cells = {(row["model"], f"{row['rate']:g}"): paper.table9_config(row, base) for row in paper.table9_rows()}
    else:
        raise ValueError(f"table must be 'table1' or 'table9', got {table!r}")
    for given, known, what in ((rows, all_rows, "row"), (columns, all_columns, "column")):
        unknown = [name for name in given or () if name not in known]
        if unknown:
            raise ValueError(f"unknown {table} {what} {unknown[0]!r}; the {what}s are {known}")
    return {key: config for key, config in cells.items()
            if (rows is None or key[0] in rows) and (columns is None or key[1] in columns)}


def shard(cells: dict, index: int, count: int) -> dict:
    """Shard ``index`` of ``count`` (0-based, as ``sbatch --array=0-<count-1>``
    numbers its tasks) of ``cells``: a contiguous slice of their order, so
    every cell is in exactly one shard and a shard's cells share as few
    packs as possible (Table 1 in 7 shards: one column each)."""
    _checks.positive_integer("shard count", count)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < count:
        raise ValueError(f"shard index must lie in [0, {count - 1}], got {index!r}")
    keys = list(cells)
    chosen = keys[len(keys) * index // count:len(keys) * (index + 1) // count]
    return {key: cells[key] for key in chosen}


def _shard_argument(text: str) -> tuple:
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard takes I/N, e.g. 0/7, got {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"--shard I/N needs 0 <= I < N, got {text!r}")
    return index, count


def _table_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dm.experiments {table1,table9,collect}",
        description="Train a share of Table 1 (CIFAR-100) or Table 9 (CIFAR-10), packed where possible, "
                    "or print the tables of the runs a folder holds beside the paper's.")
    commands = parser.add_subparsers(dest="command", required=True)
    for table in ("table1", "table9"):
        sub = commands.add_parser(table, help=f"train {table}'s cells (or a shard of them)")
        sub.add_argument("--rows", nargs="+", default=None, help="only these rows (default: all)")
        sub.add_argument("--columns", nargs="+", default=None,
                         help="only these columns: Table 1's keys (clean s0.2 ... a0.4), Table 9's rates (0.2 ...)")
        sub.add_argument("--shard", type=_shard_argument, default=(0, 1),
                         help="I/N: train the I-th of N shares (0-based: sbatch --array=0-<N-1>); default 0/1")
        sub.add_argument("--dry-run", action="store_true", help="print the share's run names, train nothing")
        sub.add_argument("--max-pack", type=int, default=None, help="at most this many runs to a pack")
        sub.add_argument("--no-pack", action="store_true", help="train one run at a time")
        sub.add_argument("--data-root", default=None, help="CIFAR cache folder (default: $DM_DATA or ~/.cache/dm)")
        sub.add_argument("--download", action="store_true", help="download CIFAR if missing")
        sub.add_argument("--device", default=None, help="cuda, cpu, ... (default: cuda if available)")
        sub.add_argument("--compile", action="store_true", help="torch.compile the model")
        sub.add_argument("--precision", choices=PRECISIONS, default=None, help="as for a single run")
        sub.add_argument("--no-progress", action="store_true")
    collect = commands.add_parser("collect", help="print the tables of the runs under --runs-dir")
    for sub in (*(commands.choices[t] for t in ("table1", "table9")), collect):
        sub.add_argument("--runs-dir", default="runs", help="where run folders are (default: runs)")
        sub.add_argument("--preset", choices=("paper", "authors"), default="paper",
                         help="the settings of the table's runs (default: the paper's text)")
        sub.add_argument("--smoke", action="store_true",
                         help="a pipeline check: tiny runs (dm.experiments.smoke_config) on data fabricated "
                              "in CIFAR's format; their numbers are not a reproduction")
    return parser


def _table_base(table: str, preset_name: str, smoke: bool) -> Config:
    base = preset(preset_name, TABLE_DATASETS[table])
    return smoke_config(base) if smoke else base


def collect(runs_dir, preset_name: str = "paper", smoke: bool = False) -> str:
    """The tables of the runs under ``runs_dir`` (every ``result.json``, at
    any depth) beside the paper's, as the notebooks show them: Table 1 for
    the CIFAR-100 runs, Table 9 for the CIFAR-10 ones, each built from the
    ``preset_name`` preset (`smoke_config` of it with ``smoke``, whose
    numbers are shown alone, as a pipeline check). Results that are in
    neither table (another preset, changed settings) are counted."""
    from . import paper

    results = paper.load_results(runs_dir)
    parts, placed = [], 0
    for table, dataset in TABLE_DATASETS.items():
        base = _table_base(table, preset_name, smoke)
        cells_of = paper.table1_cells if table == "table1" else paper.table9_cells
        markdown = paper.table1_markdown if table == "table1" else paper.table9_markdown
        fitting = []
        for result in results:
            if result["config"].get("dataset") != dataset:
                continue
            try:
                if cells_of([result], base, include_smoke=smoke):
                    fitting.append(result)
            except ValueError:
                pass
        if not fitting:
            continue
        placed += len(fitting)
        if smoke:
            parts.append(f"PIPELINE CHECK, not a result: {len(fitting)} smoke runs\n\n" + markdown(
                fitting, base, include_smoke=True, show_paper=False, label="smoke pipeline check"))
        else:
            parts.append(runs.mode_banner("full", len(fitting), "CIFAR-100" if table == "table1" else "CIFAR-10")
                         + "\n\n" + markdown(fitting, base) + "\n\n" + runs.describe_runs(fitting, "full"))
    parts.append(f"{placed} of {len(results)} results under {runs_dir} placed in the tables of the "
                 f"{preset_name!r} preset{' (smoke)' if smoke else ''}")
    return "\n\n".join(parts)


def table_main(argv) -> int:
    """``python -m dm.experiments table1|table9|collect ...`` (see `_table_parser`)."""
    args = _table_parser().parse_args(argv)
    if args.command == "collect":
        print(collect(args.runs_dir, args.preset, args.smoke))
        return 0
    cells = table_configs(args.command, _table_base(args.command, args.preset, args.smoke),
                          args.rows, args.columns)
    share = shard(cells, *args.shard)
    if args.dry_run:
        for config in share.values():
            print(config.name())
        return 0
    dataset = TABLE_DATASETS[args.command]
    options = dict(device=args.device, precision=args.precision, compile=args.compile,
                   progress=not args.no_progress, eval_train=args.command == "table9")
    print(f"{args.command}, shard {args.shard[0]}/{args.shard[1]}: {len(share)} of {len(cells)} runs")
    with tempfile.TemporaryDirectory(prefix="dm-fabricated-") as scratch:  # one per shard: no race
        data = _data(dataset, scratch, args.data_root, args.download, args.smoke)
        run_all(share, args.runs_dir, data, pack=not args.no_pack, max_pack=args.max_pack, **options)
    return 0


if __name__ == "__main__":
    sys.exit(main())
