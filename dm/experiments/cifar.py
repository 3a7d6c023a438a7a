"""The noisy-label CIFAR experiments (Tables 1 and 9): one configuration in, one JSON file out.

A run is a frozen `Config` (data set, model, method, noise, schedule, seeds); `run` trains it
into its run folder (`dm.training.runs`), `run_packed` trains K that differ only in their loss as
one `dm.models.resnet.PackedResNet`. The data set lives on the device as uint8; each batch is an
index into it (`dm.data.samplers`), augmented and normalised on the device
(`dm.data.cifar.Inputs`); the step runs under the resolved precision (`dm.training.step`) and
`dm.training.loop.fit` does the rest. Command line: ``python -m dm cifar --help``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tempfile
from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np
import torch

from .. import _checks, losses, noise, packed
from ..data import cifar
from ..data.samplers import IMAGES_PER_CLASS, class_batches, epoch_batches, seed_at
from ..hardware import hardware, resolve_device
from ..models.resnet import BATCHNORMS, INITS, PackedResNet, batch_statistics_across_processes, depth_of, resnet
from ..packed import split_state
from ..training.loop import Member, checkpoint_iteration, fit
from ..training.measures import TRAIN_MEASURES, mean, train_measures
from ..training.runs import finish, load_result, provenance, run_all as _run_all, timing
from ..training.step import Step, autocast, memory_format, process_group, resolve_precision
from . import notebook
from .notebook import NotebookSetup
from .method import changes_tag, make_loss, method_tag

__all__ = [
    "Config", "METHODS", "PAPER_CIFAR100", "PAPER_CIFAR10_RESNET56", "AUTHORS_CIFAR100",
    "AUTHORS_CIFAR10_RESNET56", "PRESETS", "AUTHORS_SOURCES", "preset", "preset_differences",
    "estimate_seconds", "estimate_selection", "lr_at",
    "training_labels", "labels_sha256", "run", "run_packed", "PACKABLE_FIELDS", "pack_difference", "packs",
    "select_on_validation", "smoke_config", "notebook_setup", "run_all",
]

# The methods of the paper's tables, by the names its rows use.
METHODS = losses.METHODS
NOISE_KINDS = ("symmetric", "asymmetric")
SAMPLERS = ("uniform", "classes")
AUGMENTS = cifar.AUGMENTS
@dataclasses.dataclass(frozen=True)
class Config:
    """Everything that determines a CIFAR run's numbers; the defaults are the paper's text.

    The defaults are the paper's CIFAR-100 setting (Table 1; SGD, momentum 0.9, weight decay 1e-4,
    batch 256, 30k iterations, lr 0.1 divided by 10 at 15k and 22k; ResNet-44; pad-4 augmentation);
    `AUTHORS_CIFAR100` holds the settings of the authors' code instead (`AUTHORS_SOURCES`).
    ``noise_seed`` seeds the label corruption (and the validation split) alone; ``seed`` seeds the
    initialisation, the batches and the augmentation, so runs with different ``seed`` and one
    ``noise_seed`` train on one noisy training set, as a table of several trials needs. Raises
    ValueError (or TypeError) for an invalid field."""

    dataset: str = "cifar100"           # "cifar10" or "cifar100"
    model: str = "resnet44"             # "resnet<depth>", depth in dm.models.resnet.DEPTHS
    shortcut: str = "A"                 # "A": He et al.'s zero padding; "B": projection (authors' Caffe net)
    init: str = "kaiming_fan_out"       # "msra": Caffe's msra filler (fan-in), authors' net (dm.models.resnet)
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
    augment: str = "pad4"               # "pad4" (paper's text) or "authors" (their Matlab pipeline, dm.data.cifar)
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
        """A readable, unique folder name for the run.

        Data set, model, noise, method, the preset it differs least from ("authors" for the authors'
        code settings), a hash of any other change, then both seeds."""
        noise_tag = "clean" if self.noise_rate == 0 else f"{self.noise[:3]}{self.noise_rate:g}"
        shown = dict(dataset=self.dataset, model=self.model, method=self.method, lam=self.lam,
                     beta=self.beta, gce_q=self.gce_q, noise=self.noise, noise_rate=self.noise_rate,
                     noise_seed=self.noise_seed, seed=self.seed)
        paper = Config(**shown)
        authors_code = dataclasses.replace(_AUTHORS_CODE[self.dataset], **shown)
        preset_tag, named = (["authors"], authors_code) if self.augment == "authors" else ([], paper)
        return "_".join([self.dataset, self.model, noise_tag, method_tag(self), *preset_tag,
                         *changes_tag(self, named), f"noiseseed{self.noise_seed}", f"seed{self.seed}"])


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
    """The `Config` of preset ``name`` ("paper" or "authors") for ``dataset``.

    "paper": the paper's text, `PAPER_CIFAR100` / `PAPER_CIFAR10_RESNET56`; "authors": their code,
    `AUTHORS_CIFAR100` / `AUTHORS_CIFAR10_RESNET56`. Raises ValueError for any other."""
    if (name, dataset) not in PRESETS:
        raise ValueError(f"preset must be 'paper' or 'authors' and dataset 'cifar10' or 'cifar100', "
                         f"got {name!r}, {dataset!r}")
    return PRESETS[(name, dataset)]


def preset_differences(dataset: str = "cifar100") -> list:
    """``[(field, paper value, authors value, source)]``: where the two presets of ``dataset`` differ."""
    paper, code = preset("paper", dataset), preset("authors", dataset)
    return [(f.name, getattr(paper, f.name), getattr(code, f.name), AUTHORS_SOURCES[f.name])
            for f in dataclasses.fields(Config) if getattr(paper, f.name) != getattr(code, f.name)]


def lr_at(config: Config, iteration: int) -> float:
    """The multistep learning rate for (0-based) ``iteration``."""
    drops = sum(iteration >= m for m in config.lr_milestones)
    return config.lr * config.lr_decay ** drops


def smoke_config(config: Config, iterations: int = 4, batch_size: int = 16,
                 model: str = "resnet8", evaluations: int = 2) -> Config:
    """``config`` shrunk for smoke mode: a tiny ResNet, a few iterations of a small batch.

    The learning-rate drops stay at the same fractions of training, and ``evaluations`` evaluations
    (and checkpoints) are spread over the run. Everything else (method, noise, seed, optimiser) is
    unchanged, so the smoke run goes through the same code."""
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
    """``(train indices, val indices, clean labels, noisy labels)`` of ``config``'s training set.

    The split and the corruption are both seeded by ``config.noise_seed`` only."""
    train_idx, val_idx = cifar.split_train_val(data.y_train, config.val_fraction, config.noise_seed)
    clean = data.y_train[train_idx]
    return train_idx, val_idx, clean, _noisy_labels(config, clean)


def labels_sha256(labels: np.ndarray) -> str:
    """SHA-256 (hex) of labels as little-endian int64.

    Two machines that print the same digest trained on the same corruption."""
    return hashlib.sha256(np.ascontiguousarray(labels, dtype="<i8").tobytes()).hexdigest()


# Fields in which the runs of one pack may differ: the loss. Everything else
# (data, noise, seeds, model, schedule, optimiser) they share.
PACKABLE_FIELDS = ("method", "lam", "beta", "gce_q")


def pack_difference(a: Config, b: Config) -> Optional[str]:
    """The first field outside `PACKABLE_FIELDS` in which ``a`` and ``b`` differ, or None.

    Configurations that differ in such a field cannot share a pack."""
    for field in dataclasses.fields(Config):
        if field.name not in PACKABLE_FIELDS and getattr(a, field.name) != getattr(b, field.name):
            return field.name
    return None


def packs(configs) -> list:
    """``configs`` partitioned into lists that can each share a pack (`run_packed`).

    ``configs``: an iterable, or a dict's values; the lists come in order of first appearance. Table
    1's 84 runs are 7 packs of 12, one per column."""
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
    """``group`` in consecutive packs of at most ``max_pack`` runs (one pack for None)."""
    if max_pack is not None:
        _checks.positive_integer("max_pack", max_pack)
    size = max_pack or max(len(group), 1)
    return [group[i:i + size] for i in range(0, len(group), size)]


def run(config: Config, runs_dir, data: Optional[cifar.Cifar] = None, *, device=None,
        precision: Optional[str] = None, compile: bool = False, progress: bool = True,
        stop_at: Optional[int] = None, eval_train: bool = True, ddp: bool = False) -> Optional[dict]:
    """Train ``config`` (or resume it, or return its stored result).

    ``data``: a `dm.data.cifar.Cifar` of ``config.dataset`` (default: `dm.data.cifar.load` from the
    cache folder). ``device``: default CUDA when available. ``precision``: "bf16" or "fp16" autocast
    (fp16 with a gradient scaler) or "fp32"; default `resolve_precision` (bf16 where the GPU has it
    natively, fp16 on other GPUs, fp32 on a CPU). Channels-last memory goes with autocast on CUDA.
    ``compile``: ``torch.compile`` the model. ``stop_at``: stop after that many iterations, as an
    interruption would (for tests); returns None then. ``eval_train``: also record `TRAIN_MEASURES`
    at each evaluation (the whole training set's accuracy against the noisy and against the clean
    labels, as Table 9 reports them; the corrupted and the intact part's accuracy and mean p of the
    labelled class, as Figure 2a plots), one forward pass over the training set per evaluation.

    ``ddp``: data-parallel training over the processes of torch.distributed's default group
    (``torchrun --nproc_per_node=N -m dm cifar --ddp`` sets it up), the same run one process would
    train; ``batch_size`` must divide by the number of processes, ``device`` is each process's own
    (e.g. ``cuda:<LOCAL_RANK>``), process 0 alone writes checkpoints and results, and all return the
    result. How: the how-to page, section "Under DDP".

    Returns the result dict that is also written to ``<runs_dir>/<config.name()>/result.json``; the
    final weights go to ``model.pt`` beside it. With ``progress``, the time per 1000 iterations
    measured up to the first evaluation, and the run's estimated total, are printed there.
    `run_packed` trains several configurations at once.
    """
    return run_packed([config], runs_dir, data, device=device, precision=precision, compile=compile,
                      progress=progress, stop_at=stop_at, eval_train=eval_train, ddp=ddp)[0]


def run_packed(configs, runs_dir, data: Optional[cifar.Cifar] = None, *, device=None,
               precision: Optional[str] = None, compile: bool = False, progress: bool = True,
               stop_at: Optional[int] = None, eval_train: bool = True,
               max_pack: Optional[int] = None, ddp: bool = False) -> list:
    """`run` for several configurations at once, trained as one packed model on the same batches.

    One `dm.models.resnet.PackedResNet` (grouped convolutions): the same results as `run` for each,
    to float rounding, in fewer, larger kernels. ``configs`` may differ only in their loss
    (`PACKABLE_FIELDS`: method, lam, beta, gce_q); they share data, noise, seeds, model and
    schedule, hence initialisation, batches and augmentation (all seeded by position). Others raise
    ValueError naming the field (`packs` partitions a selection into packs), as do an empty list or
    a configuration given twice; TypeError for one that is not a `Config`. Each run keeps its own
    loss, batch-norm statistics and optimiser state, and writes its own checkpoints, ``model.pt``
    and ``result.json`` where `run` would: a run checkpointed in a pack resumes alone or in another
    pack, and the other way round. Stored results are loaded, not retrained; the runs still to train
    are packed by the iteration they resume from, at most ``max_pack`` to a pack (default: all; a
    GPU short of memory takes fewer).

    Keywords as for `run`; with fp16 the pack shares one gradient scaler, so a step one member
    overflows in is skipped for all. Returns the results in the order of ``configs`` (None for runs
    stopped by ``stop_at``)."""
    configs = list(configs)
    if not configs:
        raise ValueError("configs is empty: nothing to train")
    for config in configs:
        if not isinstance(config, Config):
            raise TypeError(f"config must be a dm.experiments.cifar.Config, got {type(config).__name__}")
    for config in configs[1:]:
        field = pack_difference(configs[0], config)
        if field is not None:
            raise ValueError(
                f"{config.name()} cannot share a pack with {configs[0].name()}: their {field} differs "
                f"({getattr(configs[0], field)!r} and {getattr(config, field)!r}); only "
                f"{', '.join(PACKABLE_FIELDS)} may differ (dm.experiments.cifar.packs groups a selection)")
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
            by_start.setdefault(checkpoint_iteration(Path(runs_dir) / config.name()), []).append(config)
        for group in by_start.values():
            for pack in _chunks(group, max_pack):
                trained = _train_pack(pack, runs_dir, data, device=device, precision=precision,
                                      compile=compile, progress=progress, stop_at=stop_at,
                                      eval_train=eval_train, ddp=ddp)
                results.update(zip(pack, trained))
    return [results[config] for config in configs]


# What `run` records at each evaluation (the training-set measures with ``eval_train``).
MEASURES = ("test_accuracy", "val_accuracy", *TRAIN_MEASURES)


class _Tensors(NamedTuple):
    """A run's data on the device (the same for every member of a pack)."""
    x_train: torch.Tensor   # as `dm.data.cifar.Inputs.prepare` keeps them
    y_train: torch.Tensor   # the noisy labels trained on
    y_clean: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor     # clean labels
    clean: np.ndarray
    noisy: np.ndarray


def _on_device(config: Config, data: cifar.Cifar, inputs: cifar.Inputs, device) -> _Tensors:
    """Split, corrupt (`training_labels`) and move ``data`` to ``device`` once."""
    train_idx, val_idx, clean, noisy = training_labels(config, data)
    if len(train_idx) < config.batch_size:
        raise ValueError(f"batch_size {config.batch_size} exceeds the {len(train_idx)} training images")

    def tensor(array):
        return torch.from_numpy(array).to(device)

    return _Tensors(inputs.prepare(tensor(data.x_train[train_idx])), tensor(noisy), tensor(clean),
                    inputs.prepare(tensor(data.x_test)), tensor(data.y_test),
                    inputs.prepare(tensor(data.x_train[val_idx])), tensor(data.y_train[val_idx]), clean, noisy)


class _Batches:
    """``batch(t)``: iteration ``t``'s augmented images and noisy labels, drawn by position.

    The uniform or the "classes" sampler (`dm.data.samplers`), and the augmentation from a generator
    seeded by ``seed_at(seed, t)``."""

    def __init__(self, config: Config, inputs: cifar.Inputs, tensors: _Tensors, device):
        self.seed, self.inputs, self.tensors = config.seed, inputs, tensors
        self.generator = torch.Generator(device=device)
        self.classes = (class_batches(tensors.y_train, cifar.NUM_CLASSES[config.dataset], config.batch_size, device)
                        if config.sampler == "classes" else None)
        self.uniform = epoch_batches(config.seed, len(tensors.y_train), config.batch_size, device)

    def __call__(self, it: int) -> tuple:
        self.generator.manual_seed(seed_at(self.seed, it))
        index = self.classes(it, self.seed, self.generator) if self.classes is not None else self.uniform(it)
        return self.inputs.train(self.tensors.x_train[index], self.generator), self.tensors.y_train[index]


class _Evaluation:
    """``evaluate(done)``: the K members' measures, without augmentation.

    Test and validation accuracy and, with ``eval_train``, `TRAIN_MEASURES`."""

    def __init__(self, model, inputs: cifar.Inputs, tensors: _Tensors, device, precision: str, members: int,
                 eval_train: bool, batch_size: int = 1000):
        self.model, self.inputs, self.tensors, self.device = model, inputs, tensors, device
        self.precision, self.members, self.eval_train, self.batch_size = precision, members, eval_train, batch_size

    @torch.no_grad()
    def predictions(self, images: torch.Tensor, labels: torch.Tensor) -> tuple:
        """(predicted class, p of ``labels``), each ``[K, n]``."""
        was_training = self.model.training
        self.model.eval()
        predicted, p = [], []
        for start in range(0, len(labels), self.batch_size):
            x = self.inputs.test(images[start:start + self.batch_size])
            with autocast(self.device, self.precision):
                logits = self.model(x).float()
            logits = logits if logits.dim() == 3 else logits[None]  # one model: a pack of one
            y = labels[start:start + self.batch_size]
            predicted.append(logits.argmax(2))
            p.append(torch.softmax(logits, 2).gather(2, y.expand(len(logits), -1)[..., None])[..., 0])
        self.model.train(was_training)
        return torch.cat(predicted, 1), torch.cat(p, 1)

    def __call__(self, done: int) -> list:
        t = self.tensors
        test = mean(self.predictions(t.x_test, t.y_test)[0] == t.y_test, 6)
        val = mean(self.predictions(t.x_val, t.y_val)[0] == t.y_val, 6) if len(t.y_val) else [None] * self.members
        measured = [{"test_accuracy": a, "val_accuracy": b} for a, b in zip(test, val)]
        if self.eval_train:
            predicted, p = self.predictions(t.x_train, t.y_train)
            for values, train in zip(measured, train_measures(predicted, t.y_train, t.y_clean, p, decimals=6)):
                values.update(train)
        return measured


def _model_and_optimizer(config: Config, size: int, device, fmt, ddp: bool) -> tuple:
    """The seed's ResNet (``size`` copies packed when > 1) on ``device``, and its SGD.

    The last layer's bias trains at ``config.bias_lr_mult`` times the rate."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = resnet(config.model, cifar.NUM_CLASSES[config.dataset], config.shortcut, config.init,
                       config.batchnorm)
    if size > 1:  # every member starts from the seed's initialisation
        model = PackedResNet([model] * size)
    model = model.to(device, memory_format=fmt)
    if ddp:
        batch_statistics_across_processes(model)
    rest = [p for p in model.parameters() if p is not model.fc.bias]
    optimizer = torch.optim.SGD([{"params": rest}, {"params": [model.fc.bias], "lr_mult": config.bias_lr_mult}],
                                lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    return model, optimizer


def _train_pack(configs: list, runs_dir, data: cifar.Cifar, *, device, precision: Optional[str],
                compile: bool, progress: bool, stop_at: Optional[int], eval_train: bool,
                ddp: bool = False) -> list:
    """Train the runs of ``configs`` as one model through `fit`; return their results.

    ``configs``: pack-compatible, none stored, all resuming from one iteration; a pack of one is a
    plain `ResNet`. Nones if stopped."""
    config, size = configs[0], len(configs)
    rank, world = process_group(ddp, config.batch_size)
    outs = [Path(runs_dir) / c.name() for c in configs]
    if rank == 0:
        for out in outs:
            out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(device)
    precision = resolve_precision(precision, device)
    fmt = memory_format(device, precision)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: cuDNN picks its fastest kernels once
    inputs = cifar.Inputs(config.dataset, config.augment, fmt)
    tensors = _on_device(config, data, inputs, device)
    model, optimizer = _model_and_optimizer(config, size, device, fmt, ddp)
    loss = (make_loss(config, distributed=ddp) if size == 1
            else packed.Stacked([make_loss(c, distributed=ddp) for c in configs]))
    step = Step(model, optimizer, loss, members=size, device=device, precision=precision, compile=compile,
                rank=rank, world=world)
    members = [Member(c.name(), dataclasses.asdict(c), out) for c, out in zip(configs, outs)]
    trained = fit(step, members, batch=_Batches(config, inputs, tensors, device), lr=lambda it: lr_at(config, it),
                  evaluate=_Evaluation(model, inputs, tensors, device, precision, size, eval_train),
                  iterations=config.iterations, eval_every=config.eval_every,
                  checkpoint_every=config.checkpoint_every, measures=MEASURES, progress=progress, stop_at=stop_at)
    if trained is None:
        return [None] * size
    shared = _shared_record(config, data, tensors, device, precision, fmt, compile, world)
    states = split_state(model.state_dict(), size) if size > 1 else [model.state_dict()]
    results = []
    for member, out, done, state in zip(configs, outs, trained, states):
        result = _result(member, done, shared, size, eval_train)
        results.append(finish(out, result, state) if rank == 0 else json.loads(json.dumps(result)))
    if ddp:  # no process returns before process 0 has written the results
        torch.distributed.barrier()
    return results


def _shared_record(config: Config, data: cifar.Cifar, t: _Tensors, device, precision: str, fmt,
                   compile: bool, world: int) -> dict:
    """What every member's result records of the data, the labels and the machine."""
    num_classes = cifar.NUM_CLASSES[config.dataset]
    return {
        "realised_noise_rate": noise.realised_rate(t.clean, t.noisy),
        "noisy_labels_sha256": labels_sha256(t.noisy),
        "transition_matrix": np.round(noise.transition_matrix(t.clean, t.noisy, num_classes), 4).tolist(),
        "train_size": int(len(t.y_train)), "val_size": int(len(t.y_val)), "test_size": int(len(t.y_test)),
        **provenance(device),
        "precision": precision, "channels_last": fmt == torch.channels_last,
        "compiled": bool(compile),
        "world_size": world,  # processes of a data-parallel run, each on its own device
        # "smoke" whenever the data were fabricated, whatever DM_MODE says.
        "mode": "smoke" if data.fabricated else notebook.mode(),
        "fabricated_data": bool(data.fabricated),
        # Which data: official, a named copy (e.g. CIFAR-10's JPEG copy), or fabricated.
        "data": data.identity(),
    }


def _result(config: Config, done, shared: dict, size: int, eval_train: bool) -> dict:
    """One member's result: its summary numbers, history, `shared` and timing."""
    history, test = done.history, done.history["test_accuracy"]
    return {
        "name": config.name(),
        "config": dataclasses.asdict(config),
        "best_test_accuracy": max(test),
        "best_iteration": history["iteration"][test.index(max(test))],
        "final_test_accuracy": test[-1],
        "final_val_accuracy": history["val_accuracy"][-1],
        **{f"final_{key}": history[key][-1] if eval_train else None
           for key in TRAIN_MEASURES if key.startswith("train_accuracy")},
        "history": history,
        **shared,
        **timing(done, size),
        "train_images_per_second": config.iterations * config.batch_size
                                   / max(done.wall_seconds - done.overhead_seconds, 1e-9),
    }


def estimate_seconds(config, data: cifar.Cifar, *, steps: int = 20, **run_options) -> float:
    """Seconds one run of ``config``, or one pack of a list of them, is expected to take here.

    ``steps`` iterations and two evaluations are timed (after one iteration and one evaluation to
    warm up: kernels, compilation, caches) in a scratch folder, then scaled to ``config.iterations``
    iterations and their evaluations. ``run_options`` as for `run` (``device``, ``precision``,
    ``compile``, ``eval_train``). What the notebooks print before a selection."""
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
    """What the notebooks print before their runs: how many are left, and how long they take.

    How many of ``configs`` (an iterable, or a dict's values) are still to train in ``runs_dir``,
    how long one run (with ``pack``: one pack, as `run_all` forms them) takes here
    (`estimate_seconds`, measured on the first) and the whole selection's estimate (that time per
    run or pack; a smaller pack is counted in proportion to its size, an upper bound since a pack
    costs less than its runs). ``steps``: as for `estimate_seconds`."""
    configs = list(configs.values() if isinstance(configs, dict) else configs)
    pending = [c for c in configs if load_result(c, runs_dir) is None]
    if not pending:
        return f"all {len(configs)} runs are stored in {runs_dir}"
    groups = [[c] for c in pending]
    if pack:
        groups = [chunk for group in packs(pending) for chunk in _chunks(group, max_pack)]
    one = estimate_seconds(groups[0], data, steps=steps, **run_options)
    device = hardware(resolve_device(run_options.get("device")))
    each = f"{one:.1f} s" if one < 120 else f"{one / 60:.1f} min"
    total = sum(one * len(group) / len(groups[0]) for group in groups)
    whole = f"{total:.0f} s" if total < 120 else f"{total / 60:.0f} min" if total < 7200 else f"{total / 3600:.1f} h"
    what = (f"in {len(groups)} pack{'s' if len(groups) > 1 else ''} of {', '.join(str(len(g)) for g in groups)}; "
            f"a pack of {len(groups[0])} takes" if pack else "one takes")
    return (f"{len(pending)} of {len(configs)} runs to train; {what} about {each} on {device} "
            f"(measured now: a few iterations and evaluations), so about {whole} in all")


def select_on_validation(configs, runs_dir, data: Optional[cifar.Cifar] = None,
                         val_fraction: float = 0.2, **run_options):
    """The paper's hyper-parameter search: the best of ``configs`` on a clean validation split.

    Each of ``configs`` trains on ``1 - val_fraction`` of the (noisy) training set and is measured
    on the rest with its clean labels; the best final validation accuracy wins (ties: the first in
    ``configs``). The test set plays no part in the choice. Raises ValueError for no configs or
    ``val_fraction`` outside (0, 1).

    Returns ``(best, results)``: ``best`` is the chosen config as given (so ``run(best, ...)``
    retrains it on the whole training set, as the paper does for its final models) and ``results``
    the validation runs' results in the order of ``configs``. ``run_options`` go to `run`."""
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
    """Train every configuration of ``configs`` (any key -> `Config`), in order; key -> result.

    Through `dm.training.runs.run_all`: stored results load at once, interrupted runs resume. With
    ``pack`` (the default) the runs that can share a pack (`packs`: one per column of Table 1) train
    together (`run_packed`, at most ``max_pack`` to a pack), else one at a time (`run`)."""
    if not pack:
        return _run_all(run, configs, runs_dir, data, report=report, **run_options)
    return _run_all(run_packed, configs, runs_dir, data, report=report, packs=packs,
                        max_pack=max_pack, **run_options)


def notebook_setup(preset_config: Config, name: str, mode: Optional[str] = None, *, runs_dir=None,
                   use_drive: bool = True, data_root=None, overrides: Optional[dict] = None,
                   compile: bool = True, precision: Optional[str] = None, smoke_iterations: int = 4,
                   eval_train: bool = True) -> NotebookSetup:
    """The shared set-up of the CIFAR notebooks: data, base configuration, runs folder, options.

    ``mode``: "full" or "smoke" (default `dm.experiments.notebook.mode`; ValueError otherwise).
    ``preset_config``: the experiment's preset (`preset`: the paper's text or the authors' code),
    changed by ``overrides`` (e.g. ``{"weight_decay": 5e-4}``). ``name``: the notebook's runs folder
    name. ``precision``: see `run`.

    full: needs a CUDA GPU (RuntimeError otherwise). ``runs_dir`` defaults to ``runs/<name>``; on
    Colab with ``use_drive`` it is on Google Drive (``MyDrive/dm-runs/<name>``, mounted here) so a
    recycled machine loses nothing. The data set is downloaded into ``data_root`` on first use; on
    Colab with ``use_drive`` that defaults to ``MyDrive/dm-data``, so after a disconnect neither the
    runs nor the data are fetched again.

    smoke: the CPU with one thread (fastest for tiny tensors, and robust on a busy machine); a data
    set fabricated by `dm.data.cifar.fabricate` in a fresh temporary folder and read through
    torchvision's loader; the base configuration shrunk by `smoke_config`; ``runs_dir`` defaults to
    that temporary folder."""
    mode = notebook.check_mode(mode)
    base = dataclasses.replace(preset_config, **(overrides or {}))
    if mode == "full":
        if not torch.cuda.is_available():
            raise RuntimeError(
                "MODE is 'full' but no CUDA GPU is visible. On Colab: Runtime > Change runtime "
                "type > GPU, then run all cells again. For a CPU check of the pipeline, set "
                "the environment variable DM_MODE=smoke.")
        if runs_dir is None and use_drive:
            runs_dir = notebook.drive_folder(name)  # None off Colab
        if data_root is None and use_drive:
            data_root = notebook.drive_data_root()  # None off Colab: $DM_DATA or ~/.cache/dm
        data = cifar.load(base.dataset, data_root, download=True)
        options = dict(compile=compile, precision=precision, progress=True, eval_train=eval_train)
        return NotebookSetup(mode, data, base, Path(runs_dir or f"runs/{name}"), options)
    scratch = notebook.smoke_scratch()
    checksums = cifar.fabricate(scratch / "data", base.dataset)  # 500 training, 100 test images
    data = cifar.load(base.dataset, scratch / "data", checksums=checksums)
    options = dict(device="cpu", compile=False, progress=False, eval_train=eval_train)
    return NotebookSetup(mode, data, smoke_config(base, smoke_iterations),
                         Path(runs_dir) if runs_dir is not None else scratch / "runs", options)
