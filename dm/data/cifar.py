"""CIFAR-10 and CIFAR-100: loading, the paper's splits, and two input pipelines on the device.

`load` reads a data set through ``torchvision.datasets`` into uint8 NumPy arrays and identifies it
by what it holds (`content_digest`), not by its files' bytes: files that are not the official ones
are read only when they are a known copy (`COPIES`), and `Cifar.identity` says which data a run saw.
The trainer keeps the data set on the device as uint8 ``[N, 3, 32, 32]``; `augment` and `normalize`
(the paper's pipeline) and `authors_square`, `authors_augment`, `authors_test_crop` and
`normalize_authors` (the authors' Matlab one; `Inputs` chooses) work on whole batches there, with no
per-image Python. `fabricate` writes a tiny data set in the official pickle layout for the tests and
the notebooks' smoke mode. The authors' pipeline against their code: chapter 8, section "dm.data and
the authors' Matlab code".
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np
import torch
import torch.nn.functional as F

from .. import noise
from .cache import default_root, md5

__all__ = [
    "Cifar", "load", "torchvision_dataset", "fabricate", "split_train_val", "content_digest", "COPIES",
    "augment", "normalize", "MEAN", "STD", "NUM_CLASSES",
    "authors_square", "authors_augment", "authors_test_crop", "normalize_authors", "AUTHORS_MEAN_BGR",
    "AUGMENTS", "Inputs",
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
    copy: str = "official"        # "official", "fabricated", or a known copy's name (`COPIES`)
    digest: str = ""              # `content_digest` of the arrays

    @property
    def num_classes(self) -> int:
        return NUM_CLASSES[self.name]

    def identity(self) -> dict:
        """Which data a run saw, as its ``result.json`` records it.

        ``{"dataset", "copy", "content_sha256", "description"}``, e.g. copy "JPEG copy" with the
        description "CIFAR-10, JPEG copy, content digest 1a2b3c4d…"."""
        title = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}[self.name]
        return {"dataset": self.name, "copy": self.copy, "content_sha256": self.digest,
                "description": f"{title}, {self.copy}, content digest {self.digest[:8]}…"}


def content_digest(x_train, y_train, x_test, y_test) -> str:
    r"""The content digest of a CIFAR data set (64 hex digits), whatever its files' packing.

    sha256 of the four lines ``<part>\t<sha256 of its bytes>\n`` for ``train images``,
    ``train labels``, ``test images`` and ``test labels``, in that order; images as C-ordered uint8
    ``[N, 3, 32, 32]``, labels as little-endian int64 ``[N]``."""
    parts = {"train images": np.ascontiguousarray(x_train, dtype=np.uint8),
             "train labels": np.ascontiguousarray(y_train, dtype="<i8"),
             "test images": np.ascontiguousarray(x_test, dtype=np.uint8),
             "test labels": np.ascontiguousarray(y_test, dtype="<i8")}
    lines = "".join(f"{part}\t{hashlib.sha256(array.tobytes()).hexdigest()}\n"
                    for part, array in parts.items())
    return hashlib.sha256(lines.encode()).hexdigest()


# Copies of the data that are not the official files but are accepted by
# their content: (data set, content digest) -> the copy's name.
COPIES = {
    # CIFAR-10 re-encoded as JPEG at quality 75 (a public copy) in the official
    # python layout: real images, not the official pixels (chapter 9, section
    # "Real images on a CPU").
    ("cifar10", "53a54189f28393fea6d4e36fb5074f791bfd4e5ecffcb1f669e28398b7c4df9a"): "JPEG copy",
}


def _check_name(name: str) -> str:
    if name not in NUM_CLASSES:
        raise ValueError(f"dataset must be 'cifar10' or 'cifar100', got {name!r}")
    return name


def torchvision_dataset(name: str, root=None, train: bool = True, checksums: Optional[dict] = None,
                        download: bool = False, transform=None):
    """torchvision's own ``CIFAR10``/``CIFAR100`` dataset, with `load`'s ``checksums`` override.

    PIL images, for a plain ``DataLoader`` (the benchmark compares the trainer against it). Raises
    ValueError for an unknown ``name`` or ``checksums`` that lack a file's md5."""
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


def _unchecked_class(name: str):
    # torchvision's dataset without its md5 checks: reads any files in the
    # official layout, for `load` to identify by their content.
    base = _torchvision_class(name, None)
    return type(base.__name__ + "Unchecked", (base,), {
        "_check_integrity": lambda self: True, "meta": {**base.meta, "md5": None}})


def load(name: str, root=None, download: bool = False, checksums: Optional[dict] = None) -> Cifar:
    """Load CIFAR-10 or CIFAR-100 with ``torchvision.datasets`` as a `Cifar` of NumPy arrays.

    ``root`` defaults to `dm.data.cache.default_root`. ``download=True`` fetches the official
    archive on first use (torchvision checks its md5). Files whose md5s are not the official ones
    are read only when their content (`content_digest`) is a known copy (`COPIES`), e.g. the JPEG
    copy of CIFAR-10 written in the python layout. ``checksums`` (file name -> md5) replaces
    torchvision's expected md5s: only for archives made by `fabricate`. For CIFAR-100 the pickles'
    coarse labels are checked against `dm.noise.CIFAR100_FINE_TO_COARSE`, the table the asymmetric
    noise uses. Raises ValueError for an unknown ``name``; RuntimeError for missing or corrupted
    files, for any other content (naming its digest) and for coarse labels that disagree with the
    table.
    """
    name = _check_name(name)
    root = Path(root) if root is not None else default_root()
    if checksums is not None:
        try:
            train, test = _datasets(_torchvision_class(name, checksums), root, download)
        except RuntimeError as error:
            raise RuntimeError(_not_found(name, root, error)) from error
        copy, digest, arrays = "fabricated", None, None
    else:
        train, test, copy, digest, arrays = _official_or_copy(name, root, download)
    if name == "cifar100":
        with open(root / train.base_folder / "train", "rb") as f:
            entry = pickle.load(f, encoding="latin1")
        fine, coarse = np.asarray(entry["fine_labels"]), np.asarray(entry["coarse_labels"])
        table = np.asarray(noise.CIFAR100_FINE_TO_COARSE)
        if not np.array_equal(table[fine], coarse):
            raise RuntimeError("CIFAR-100's coarse labels disagree with dm.noise.CIFAR100_FINE_TO_COARSE")
    x_train, y_train, x_test, y_test = arrays or _arrays(train, test)
    digest = digest or content_digest(x_train, y_train, x_test, y_test)
    return Cifar(name, x_train, y_train, x_test, y_test, tuple(train.classes),
                 fabricated=checksums is not None, copy=copy, digest=digest)


def _arrays(train, test) -> tuple:
    # torchvision's datasets as (x_train, y_train, x_test, y_test): images
    # uint8 NHWC -> NCHW, labels int64.
    return tuple(np.ascontiguousarray(d.data.transpose(0, 3, 1, 2)) if images
                 else np.asarray(d.targets, dtype=np.int64)
                 for d in (train, test) for images in (True, False))


def _not_found(name: str, root: Path, error: Exception) -> str:
    return (f"{name} not found (or corrupted) under {root}: {error} "
            "Pass download=True to fetch it (needs internet).")


def _official_or_copy(name: str, root: Path, download: bool):
    """The official files, else a known copy, else (with ``download``) the official files anew.

    Returns (train, test, copy, digest, arrays): a known copy (`COPIES`, by its content) comes with
    the arrays its digest was computed from (`_arrays`); digest and arrays are None where not yet
    computed. Anything else raises RuntimeError."""
    try:
        train, test = _datasets(_torchvision_class(name, None), root, False)
        return train, test, "official", None, None
    except RuntimeError as error:
        missing = error
    try:   # not the official files: perhaps a known copy
        train, test = _datasets(_unchecked_class(name), root, False)
    except Exception:
        unreadable = True
    else:
        unreadable = False
        arrays = _arrays(train, test)
        digest = content_digest(*arrays)
        copy = COPIES.get((name, digest))
        if copy is not None:
            return train, test, copy, digest, arrays
    if download:
        train, test = _datasets(_torchvision_class(name, None), root, True)
        return train, test, "official", None, None
    if unreadable:
        raise RuntimeError(_not_found(name, root, missing)) from missing
    known = [f"{n}: {c} {d}" for (n, d), c in COPIES.items()]
    raise RuntimeError(
        f"{name} under {root}: the files are not the official ones (their md5s differ) and "
        f"their content digest {digest} is no known copy ({'; '.join(known)}). They may be "
        "truncated, altered, or another data set. Delete them and pass download=True, or "
        "write the known copy anew.")


def _datasets(cls, root: Path, download: bool):
    return cls(str(root), train=True, download=download), cls(str(root), train=False, download=download)


def split_train_val(labels: np.ndarray, val_fraction: float, seed: int):
    """Sorted indices ``(train, val)`` of a seeded split stratified by ``labels``.

    ``round(val_fraction * n_c)`` examples of each class ``c`` go to ``val`` (the paper's 80/20
    split is ``val_fraction=0.2``). Raises ValueError unless ``0 <= val_fraction < 1``."""
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
    """The paper's augmentation of a uint8 batch ``[B, C, H, W]``: pad, random crop, flip.

    Pads ``pad`` zero pixels on each side, crops a random ``H x W`` window and (with ``flip``) flips
    horizontally with probability 1/2, each image with its own draws from ``generator`` on the
    images' device. Returns uint8 ``[B, C, H, W]``; one gather, no per-image Python."""
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
    """Standardise a uint8 batch ``[B, 3, H, W]`` into float32 with data set ``name``'s statistics.

    Scaled to [0, 1], less the channel means `MEAN`, divided by the standard deviations `STD`.
    Raises ValueError for an unknown ``name``."""
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


# --- the authors' own pipeline (their Matlab code; chapter 8) ------------------

# Subtracted from B, G, R, after the RGB -> BGR reorder.
AUTHORS_MEAN_BGR = (125.3, 123.0, 113.9)
_AUTHORS_SQUARE = 36          # force_square_size = 32 + 4
_AUTHORS_CROP = 32            # cropped_size
_AUTHORS_CHUNK = 4096         # images per batched step of authors_square (bounds memory)
# Matlab's rgb2gray weights times 1e15: the "gray < 250" test in exact integer
# arithmetic on any device.
_GRAY_E15 = (298936021293775, 587043074451121, 114020904255103)


def _check_images(images, what: str, size: Optional[int] = None) -> None:
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"{what} must be a uint8 torch.Tensor, got {type(images).__name__}")
    if images.dtype != torch.uint8:
        raise ValueError(f"{what} must be a uint8 tensor, got dtype {images.dtype}")
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"{what} must be [N, 3, H, W], got shape {tuple(images.shape)}")
    if size is not None and tuple(images.shape[2:]) != (size, size):
        raise ValueError(f"{what} must be {size}x{size} (authors_square's output), "
                         f"got {images.shape[2]}x{images.shape[3]}")


def _content_box(dark: torch.Tensor, length: int, margin: int):
    """``[start, stop)`` of each row of the mask ``dark [N, length]``: the authors' content box.

    ``[max(0, first - margin), min(length, last + margin + 2))`` for the row's first and last True
    (one pixel more after the box than before it, as Matlab's imcrop keeps); the whole axis where
    nothing is dark. Derivation: chapter 8, section "dm.data and the authors' Matlab code"."""
    found = dark.any(1)
    first = dark.to(torch.uint8).argmax(1)                       # the first True
    last = length - 1 - dark.flip(1).to(torch.uint8).argmax(1)   # the last True
    start = torch.where(found, (first - margin).clamp(min=0), torch.zeros_like(first))
    stop = torch.where(found, (last + margin + 2).clamp(max=length), torch.full_like(last, length))
    return start, stop


def _cubic(x: torch.Tensor, a: float) -> torch.Tensor:
    """Keys' cubic convolution kernel with parameter ``a`` (imresize: -0.5; torch's: -0.75)."""
    x = x.abs()
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return torch.where(x <= 1, near, torch.where(x < 2, far, torch.zeros_like(x)))


def _resize_matrix(start, stop, long, size: int, length: int, a: float, dtype):
    """imresize's bicubic resize of each box along one axis, padded, as a matrix and a mask.

    Along an axis of ``length`` pixels, for each box ``[start, stop)``: the ``[size, length]``
    matrix that resizes the box by ``size / long`` and puts the picture ``floor(missing / 2)``
    positions in, and a ``[size]`` mask of the positions on the picture (the others are white
    padding; their rows of the matrix are 0)."""
    device = start.device
    extent = stop - start
    out_len = (size * extent + long - 1) // long         # imresize: ceil(size * extent / long)
    offset = (size - out_len) // 2                       # padarray 'pre': floor(missing / 2)
    j = torch.arange(size, device=device).view(1, size) - offset[:, None]
    inside = (j >= 0) & (j < out_len[:, None])
    # imresize's inverse map, pixel centres, 0-based, relative to the box:
    # u = (j + 1/2) / scale - 1/2 with the one scale size / long on both axes.
    u = (j.to(dtype) + 0.5) * long[:, None].to(dtype) / size - 0.5
    taps = u.floor()[..., None] + torch.arange(-1, 3, device=device, dtype=dtype)  # [U, size, 4]
    weights = _cubic(u[..., None] - taps, a)
    weights = weights / weights.sum(-1, keepdim=True)
    weights = torch.where(inside[..., None], weights, torch.zeros_like(weights))
    # Taps clamped into the box: its edge pixels are replicated, as imresize
    # does (no pixel outside the box is ever read).
    index = torch.minimum(taps.long().clamp(min=0), (extent - 1)[:, None, None]) + start[:, None, None]
    matrix = torch.zeros((start.shape[0], size, length), dtype=dtype, device=device)
    return matrix.scatter_add_(2, index, weights), inside


def _square_chunk(images: torch.Tensor, size: int, margin: int, white_threshold: int,
                  a: float) -> torch.Tensor:
    n, _, h, w = images.shape
    # 1e15 x rgb2gray before its rounding, exact in int64.
    gray = images[:, 0].long() * _GRAY_E15[0]
    gray.add_(images[:, 1].long(), alpha=_GRAY_E15[1]).add_(images[:, 2].long(), alpha=_GRAY_E15[2])
    # rgb2gray rounds to uint8, halves up: round(g) < t  <=>  g < t - 1/2.
    dark = gray < (2 * white_threshold - 1) * 5 * 10 ** 14
    top, bottom = _content_box(dark.any(2), h, margin)
    left, right = _content_box(dark.any(1), w, margin)
    # Images with the same box share its resize matrices: built once per box
    # (a box as one integer key; torch.unique over rows would copy row by row).
    key = ((top * (h + 1) + bottom) * (w + 1) + left) * (w + 1) + right
    key, which = torch.unique(key, return_inverse=True)
    key, right = key.div(w + 1, rounding_mode="floor"), key % (w + 1)
    key, left = key.div(w + 1, rounding_mode="floor"), key % (w + 1)
    top, bottom = key.div(h + 1, rounding_mode="floor"), key % (h + 1)
    long = torch.maximum(bottom - top, right - left)
    # float64 (float32 on MPS, which lacks it): no TF32/bf16 matmul setting can round it.
    dtype = torch.float32 if images.device.type == "mps" else torch.float64
    along_rows, rows_in = _resize_matrix(top, bottom, long, size, h, a, dtype)   # [U, size, H]
    along_cols, cols_in = _resize_matrix(left, right, long, size, w, a, dtype)   # [U, size, W]
    # Separable: rows first (imresize's order for equal scales), then columns,
    # as two batched matrix products with the channels folded in (no copies).
    x = images.permute(0, 2, 1, 3).reshape(n, h, 3 * w).to(dtype)             # [N, H, (3, W)]
    x = torch.bmm(along_rows[which], x).view(n, size * 3, w)                     # [N, (size, 3), W]
    x = torch.bmm(x, along_cols[which].transpose(1, 2)).view(n, size, 3, size)  # [N, size, 3, size]
    picture = (rows_in[:, :, None, None] & cols_in[:, None, None, :])[which]   # [N, size, 1, size]
    x = x.masked_fill_(~picture, 255.0).round_().clamp_(0, 255).to(torch.uint8)
    return x.permute(0, 2, 1, 3)                                                  # [N, 3, size, size]


def authors_square(images: torch.Tensor, *, size: int = _AUTHORS_SQUARE, margin: int = 4,
                   white_threshold: int = 250) -> torch.Tensor:
    """Square each image as the authors' Matlab code does: crop to its content, resize, pad white.

    uint8 ``[N, 3, H, W]`` -> uint8 ``[N, 3, size, size]`` on the images' device, batched
    (``_AUTHORS_CHUNK`` images per step). Per image, the content box is the pixels whose grey level
    (Matlab's ``rgb2gray``, rounded to uint8; exact integer arithmetic) is below
    ``white_threshold``, widened by ``margin``: rows
    ``[max(0, rmin - margin), min(H, rmax + margin + 2))``, likewise columns (`_content_box`); the
    whole image if no pixel is that dark. The box is resized bicubically (Keys ``a = -0.5``, pixel
    centres mapped, one scale ``size / long side`` on both axes, the box's edge pixels replicated)
    to long side ``size`` and short side ``ceil(short * size / long)``, padded with 255 to ``size``
    (``floor(missing / 2)`` before, the rest after), rounded and clamped to 0..255. Raises
    ValueError for images that are not uint8 ``[N, 3, H, W]`` or are larger than ``size`` (no
    antialiasing), and for ``size < 1`` or ``margin < 0``. Each step against Matlab's: chapter 8,
    section "dm.data and the authors' Matlab code"."""
    _check_images(images, "images")
    n, _, h, w = images.shape
    if size < 1 or margin < 0:
        raise ValueError(f"size must be positive and margin non-negative, "
                         f"got size={size!r}, margin={margin!r}")
    if max(h, w) > size:
        raise ValueError(f"images must be at most {size}x{size} (no antialiasing), got {h}x{w}")
    out = torch.empty((n, 3, size, size), dtype=torch.uint8, device=images.device)
    for start in range(0, n, _AUTHORS_CHUNK):
        stop = min(n, start + _AUTHORS_CHUNK)
        out[start:stop] = _square_chunk(images[start:stop], size, margin, white_threshold, -0.5)
    return out


def authors_augment(squares: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """The authors' random training crop of `authors_square` output: flip, then crop 32x32.

    uint8 ``[B, 3, 36, 36]`` -> ``[B, 3, 32, 32]``: each square flipped horizontally with
    probability 1/2, *then* cropped at 0-based offsets ``dy, dx`` uniform in {0, 1, 2, 3}, its own
    flip and offsets drawn from ``generator`` on the squares' device; one gather. Raises ValueError
    for other shapes or dtypes. Matlab's draw: chapter 8, section "dm.data and the authors' Matlab
    code"."""
    _check_images(squares, "squares", _AUTHORS_SQUARE)
    b, device = squares.shape[0], squares.device
    s, c = _AUTHORS_SQUARE, _AUTHORS_CROP
    mirrored = torch.rand((b, 1, 1), device=device, generator=generator) < 0.5
    dy = torch.randint(0, s - c, (b, 1, 1), device=device, generator=generator)
    dx = torch.randint(0, s - c, (b, 1, 1), device=device, generator=generator)
    rows = dy + torch.arange(c, device=device).view(1, c, 1)              # [B, 32, 1]
    cols = dx + torch.arange(c, device=device).view(1, 1, c)              # [B, 1, 32]
    cols = torch.where(mirrored, (s - 1) - cols, cols)    # column dx + j of the flipped square
    batch = torch.arange(b, device=device).view(b, 1, 1)
    return squares.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)


def authors_test_crop(squares: torch.Tensor) -> torch.Tensor:
    """The authors' test crop: the 32x32 window at 0-based offset 1 of each 36x36 square.

    uint8 ``[N, 3, 36, 36]`` -> ``[N, 3, 32, 32]``, one pixel off the exact centre, where Matlab's
    img_center_crop puts it (chapter 8, section "dm.data and the authors' Matlab code"). Raises
    ValueError for other shapes or dtypes."""
    _check_images(squares, "squares", _AUTHORS_SQUARE)
    offset = 1                     # img_center_crop: ceil(0.5 * (36 - 32)) = 2, 1-based
    return squares[:, :, offset:offset + _AUTHORS_CROP, offset:offset + _AUTHORS_CROP].contiguous()


def normalize_authors(images: torch.Tensor) -> torch.Tensor:
    """The authors' normalisation: RGB to BGR, less `AUTHORS_MEAN_BGR`, nothing else.

    uint8 ``[B, 3, H, W]`` (RGB) -> float32 ``[B, 3, H, W]`` in BGR order, less 125.3 from B, 123.0
    from G and 113.9 from R; no scaling to [0, 1], no division by a standard deviation (values in
    [-125.3, 141.1]). Raises ValueError for images that are not uint8 ``[B, 3, H, W]``. Matlab's
    step by step: chapter 8, section "dm.data and the authors' Matlab code"."""
    _check_images(images, "images")
    return images.flip(1).float() - _authors_mean(images.device)


_AUTHORS_MEAN: dict = {}


def _authors_mean(device: torch.device) -> torch.Tensor:
    # Built once per device, like _statistics.
    key = str(device)
    if key not in _AUTHORS_MEAN:
        _AUTHORS_MEAN[key] = torch.tensor(AUTHORS_MEAN_BGR, device=device).view(1, 3, 1, 1)
    return _AUTHORS_MEAN[key]


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


def fabricate(root, name: str, n_train: int = 500, n_test: int = 100, seed: int = 0,
              archive: bool = False) -> dict:
    """Write a tiny CIFAR-10/100 under ``root`` in the official pickle layout; return its md5s.

    ``cifar-10-batches-py/data_batch_1..5, test_batch, batches.meta`` or
    ``cifar-100-python/train, test, meta``; each batch a dict with ``data`` as uint8 ``[n, 3072]``
    rows and its labels. Colours depend on the class, so a network can learn from the images; labels
    cycle through all classes; CIFAR-100 coarse labels follow the real table. Returns {file name:
    md5}, to pass to `load` as ``checksums`` (the official md5s are never weakened). Raises
    ValueError for an unknown ``name``.

    ``archive=True`` instead leaves only the packed archive the official download fetches
    (``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz``), its md5 under the key ``"archive"``:
    ``load(..., download=True)`` then runs torchvision's download step, which finds the verified
    archive in place (no network) and extracts it."""
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
        checksums[filename] = md5(path)
    if archive:
        import shutil
        import tarfile

        packed = Path(root) / ("cifar-10-python.tar.gz" if name == "cifar10" else "cifar-100-python.tar.gz")
        with tarfile.open(packed, "w:gz") as tar:
            tar.add(folder, arcname=folder.name)
        shutil.rmtree(folder)
        checksums["archive"] = md5(packed)
    return checksums


# --- the input pipeline -------------------------------------------------------

AUGMENTS = ("pad4", "authors")


class Inputs:
    """The training and test-time input pipelines of data set ``name``, on the device.

    ``augment="pad4"``: pad-4 augmentation and per-channel standardisation (the paper's text);
    ``"authors"``: the authors' squares (`authors_square`, made once by `prepare`), flip and crop,
    and mean subtraction. Images in are uint8 ``[N, 3, H, W]``; ``train`` and ``test`` return
    float32 as ``memory_format``. Raises ValueError for an unknown ``name`` or ``augment``."""

    def __init__(self, name: str, augment: str, memory_format=torch.contiguous_format):
        if augment not in AUGMENTS:
            raise ValueError(f"augment must be one of {AUGMENTS}, got {augment!r}")
        self.name, self.augment, self.memory_format = _check_name(name), augment, memory_format

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """What the data set is kept as on the device (once per run)."""
        return authors_square(images) if self.augment == "authors" else images

    def train(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.augment == "authors":
            x = normalize_authors(authors_augment(images, generator))
        else:
            x = normalize(augment(images, generator), self.name)
        return x.contiguous(memory_format=self.memory_format)

    def test(self, images: torch.Tensor) -> torch.Tensor:
        if self.augment == "authors":
            x = normalize_authors(authors_test_crop(images))
        else:
            x = normalize(images, self.name)
        return x.contiguous(memory_format=self.memory_format)

