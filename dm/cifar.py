"""CIFAR-10 and CIFAR-100: loading, the paper's splits, and augmentation on the GPU.

`load` reads the data set through ``torchvision.datasets`` (downloading it on
first use into a cache folder when ``download=True``) and returns it as uint8
NumPy arrays. The trainer then keeps the whole training set on the device as
one ``[N, 3, 32, 32]`` uint8 tensor; `augment` (pad 4, random 32x32 crop,
horizontal flip) and `normalize` work on whole batches there, so no per-image
Python runs in the training loop.

`fabricate` writes a tiny data set in CIFAR's official pickle layout, with
class-dependent colours so a network can learn something from it. Tests and
the notebooks' smoke mode load it through the same torchvision code as the
real data, with the fabricated files' md5 sums passed as ``checksums`` (the
real download's checksums are never weakened).
"""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np
import torch
import torch.nn.functional as F

from . import noise

__all__ = [
    "Cifar", "load", "torchvision_dataset", "default_root", "fabricate", "split_train_val",
    "augment", "normalize", "MEAN", "STD", "NUM_CLASSES",
]

NUM_CLASSES = {"cifar10": 10, "cifar100": 100}
# Per-channel mean and standard deviation of each training set (pixels in [0, 1]).
MEAN = {"cifar10": (0.4914, 0.4822, 0.4465), "cifar100": (0.5071, 0.4865, 0.4409)}
STD = {"cifar10": (0.2470, 0.2435, 0.2616), "cifar100": (0.2673, 0.2564, 0.2762)}


class Cifar(NamedTuple):
    name: str                     # "cifar10" or "cifar100"
    x_train: np.ndarray           # [N, 3, 32, 32] uint8
    y_train: np.ndarray           # [N] int64 (fine labels for CIFAR-100)
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple                # class names in label order
    fabricated: bool = False      # True when loaded with `checksums` (a `fabricate` archive)

    @property
    def num_classes(self) -> int:
        return NUM_CLASSES[self.name]


def _check_name(name: str) -> str:
    if name not in NUM_CLASSES:
        raise ValueError(f"dataset must be 'cifar10' or 'cifar100', got {name!r}")
    return name


def default_root() -> Path:
    """Where data sets are cached: ``$DM_DATA`` if set, else ``~/.cache/dm``."""
    return Path(os.environ.get("DM_DATA", Path.home() / ".cache" / "dm"))


def torchvision_dataset(name: str, root=None, train: bool = True, checksums: Optional[dict] = None,
                        download: bool = False, transform=None):
    """torchvision's own ``CIFAR10``/``CIFAR100`` dataset (PIL images, for a
    plain ``DataLoader``), with `load`'s ``checksums`` override; the benchmark
    compares the trainer against it."""
    name = _check_name(name)
    root = Path(root) if root is not None else default_root()
    return _torchvision_class(name, checksums)(str(root), train=train, download=download,
                                               transform=transform)


def _torchvision_class(name: str, checksums: Optional[dict]):
    from torchvision import datasets

    base = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    if checksums is None:
        return base
    missing = [f for f, _ in base.train_list + base.test_list if f not in checksums]
    archive = {"tgz_md5": checksums["archive"]} if "archive" in checksums else {}
    missing += [] if base.meta["filename"] in checksums else [base.meta["filename"]]
    if missing:
        raise ValueError(f"checksums lacks an md5 for {missing}")
    # A subclass that trusts the given md5s instead of the official ones.
    return type(base.__name__ + "WithChecksums", (base,), {
        "train_list": [[f, checksums[f]] for f, _ in base.train_list],
        "test_list": [[f, checksums[f]] for f, _ in base.test_list],
        "meta": {**base.meta, "md5": checksums[base.meta["filename"]]},
        **archive,
    })


def load(name: str, root=None, download: bool = False, checksums: Optional[dict] = None) -> Cifar:
    """Load CIFAR-10 or CIFAR-100 with ``torchvision.datasets``.

    ``root`` defaults to `default_root`. ``download=True`` fetches the official
    archive on first use (torchvision checks its md5). ``checksums`` (file
    name -> md5) replaces torchvision's expected md5s: only for archives made
    by `fabricate`. For CIFAR-100 the pickles' coarse labels are checked
    against `dm.noise.CIFAR100_FINE_TO_COARSE`, the table the asymmetric noise
    uses.
    """
    name = _check_name(name)
    root = Path(root) if root is not None else default_root()
    cls = _torchvision_class(name, checksums)
    try:
        train = cls(str(root), train=True, download=download)
        test = cls(str(root), train=False, download=download)
    except RuntimeError as error:
        raise RuntimeError(
            f"{name} not found (or corrupted) under {root}: {error} "
            "Pass download=True to fetch it (needs internet)."
        ) from error
    if name == "cifar100":
        with open(root / train.base_folder / "train", "rb") as f:
            entry = pickle.load(f, encoding="latin1")
        fine, coarse = np.asarray(entry["fine_labels"]), np.asarray(entry["coarse_labels"])
        table = np.asarray(noise.CIFAR100_FINE_TO_COARSE)
        if not np.array_equal(table[fine], coarse):
            raise RuntimeError("CIFAR-100's coarse labels disagree with dm.noise.CIFAR100_FINE_TO_COARSE")

    def images(dataset):
        return np.ascontiguousarray(dataset.data.transpose(0, 3, 1, 2))  # NHWC -> NCHW

    return Cifar(name, images(train), np.asarray(train.targets, dtype=np.int64),
                 images(test), np.asarray(test.targets, dtype=np.int64), tuple(train.classes),
                 fabricated=checksums is not None)


def split_train_val(labels: np.ndarray, val_fraction: float, seed: int):
    """Indices ``(train, val)``: a seeded split stratified by ``labels``, with
    ``round(val_fraction * n_c)`` examples of each class ``c`` in ``val``
    (the paper's 80/20 split is ``val_fraction=0.2``)."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie in [0, 1), got {val_fraction!r}")
    rng = np.random.default_rng(seed)
    val = []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        val.append(members[:int(round(val_fraction * members.size))])
    val = np.sort(np.concatenate(val)) if val else np.zeros(0, dtype=np.int64)
    train = np.setdiff1d(np.arange(labels.size), val)
    return train, val


# --- on the device ------------------------------------------------------------

def augment(images: torch.Tensor, generator: Optional[torch.Generator] = None,
            pad: int = 4, flip: bool = True) -> torch.Tensor:
    """The paper's augmentation on a whole uint8 batch ``[B, C, H, W]``: pad
    ``pad`` zero pixels on each side, crop a random ``H x W`` window, and flip
    horizontally with probability 1/2. One gather, no per-image Python."""
    b, _, h, w = images.shape
    device = images.device
    padded = F.pad(images, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (b, 1, 1), device=device, generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (b, 1, 1), device=device, generator=generator)
    rows = dy + torch.arange(h, device=device).view(1, h, 1)      # [B, H, 1]
    cols = dx + torch.arange(w, device=device).view(1, 1, w)      # [B, 1, W]
    if flip:
        mirrored = torch.rand((b, 1, 1), device=device, generator=generator) < 0.5
        cols = torch.where(mirrored, dx + (w - 1) - torch.arange(w, device=device).view(1, 1, w), cols)
    batch = torch.arange(b, device=device).view(b, 1, 1)
    # padded[b, :, rows, cols] -> [B, H, W, C]; back to [B, C, H, W].
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)


def normalize(images: torch.Tensor, name: str) -> torch.Tensor:
    """uint8 ``[B, 3, H, W]`` -> float32, scaled to [0, 1] and standardised
    with the data set's channel means and standard deviations."""
    mean, std = _statistics(_check_name(name), images.device)
    return (images.float() / 255.0 - mean) / std


_STATISTICS: dict = {}


def _statistics(name: str, device: torch.device):
    # Built once per device: copying a fresh host tensor to a GPU at every
    # step would wait for the queued work (a host sync in the hot loop).
    key = (name, str(device))
    if key not in _STATISTICS:
        _STATISTICS[key] = tuple(torch.tensor(v, device=device).view(1, 3, 1, 1)
                                 for v in (MEAN[name], STD[name]))
    return _STATISTICS[key]


# --- a tiny data set in the official format -----------------------------------

def _pictures(labels: np.ndarray, num_classes: int, rng) -> np.ndarray:
    """Noisy images whose colour and bright quadrant depend on the class."""
    palette = np.random.default_rng(0).integers(40, 216, size=(num_classes, 3))
    images = rng.integers(0, 60, size=(labels.size, 3, 32, 32)) + palette[labels][:, :, None, None]
    quadrant = labels % 4
    for q in range(4):
        sel = quadrant == q
        r, c = divmod(q, 2)
        images[sel, :, 16 * r:16 * r + 16, 16 * c:16 * c + 16] += 40
    return np.clip(images, 0, 255).astype(np.uint8)


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def fabricate(root, name: str, n_train: int = 500, n_test: int = 100, seed: int = 0,
              archive: bool = False) -> dict:
    """Write a tiny CIFAR-10/100 under ``root`` in the official pickle layout
    (``cifar-10-batches-py/data_batch_1..5, test_batch, batches.meta`` or
    ``cifar-100-python/train, test, meta``; each batch a dict with ``data``
    as uint8 ``[n, 3072]`` rows and its labels) and return the files' md5
    sums, to pass to `load` as ``checksums``. Labels cycle through all
    classes; CIFAR-100 coarse labels follow the real table.

    ``archive=True`` instead leaves only the packed archive the official
    download fetches (``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz``),
    its md5 under the key ``"archive"``: ``load(..., download=True)`` then
    runs torchvision's download step, which finds the verified archive in
    place (no network) and extracts it."""
    name = _check_name(name)
    num_classes = NUM_CLASSES[name]
    rng = np.random.default_rng(seed)
    folder = Path(root) / ("cifar-10-batches-py" if name == "cifar10" else "cifar-100-python")
    folder.mkdir(parents=True, exist_ok=True)

    def batch(n: int, label: str):
        labels = rng.permutation(np.arange(n) % num_classes)
        entry = {"batch_label": label, "data": _pictures(labels, num_classes, rng).reshape(n, -1),
                 "filenames": [f"fabricated_{i}.png" for i in range(n)]}
        if name == "cifar10":
            entry["labels"] = labels.tolist()
        else:
            entry["fine_labels"] = labels.tolist()
            entry["coarse_labels"] = np.asarray(noise.CIFAR100_FINE_TO_COARSE)[labels].tolist()
        return entry

    files = {}
    if name == "cifar10":
        sizes = np.diff(np.linspace(0, n_train, 6).round().astype(int))
        for i, size in enumerate(sizes, 1):
            files[f"data_batch_{i}"] = batch(int(size), f"training batch {i} of 5")
        files["test_batch"] = batch(n_test, "testing batch 1 of 1")
        files["batches.meta"] = {"label_names": list(noise.CIFAR10_CLASSES),
                                 "num_cases_per_batch": int(sizes[0]), "num_vis": 3072}
    else:
        files["train"] = batch(n_train, "training batch 1 of 1")
        files["test"] = batch(n_test, "testing batch 1 of 1")
        files["meta"] = {"fine_label_names": list(noise.CIFAR100_FINE),
                         "coarse_label_names": list(noise.CIFAR100_COARSE)}
    checksums = {}
    for filename, entry in files.items():
        path = folder / filename
        with open(path, "wb") as f:
            pickle.dump(entry, f, protocol=2)
        checksums[filename] = _md5(path)
    if archive:
        import shutil
        import tarfile

        packed = Path(root) / ("cifar-10-python.tar.gz" if name == "cifar10" else "cifar-100-python.tar.gz")
        with tarfile.open(packed, "w:gz") as tar:
            tar.add(folder, arcname=folder.name)
        shutil.rmtree(folder)
        checksums["archive"] = _md5(packed)
    return checksums
