"""The Large Movie Review Dataset ("aclImdb", Maas et al. 2011) of the paper's Table 5.

50,000 IMDb reviews, 25,000 for training and 25,000 for testing, each half positive (rated
>= 7 of 10) and half negative (rated <= 4), plus 50,000 unlabelled ones, stored in the archive
``aclImdb_v1.tar.gz`` as ``aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt`` and
``aclImdb/train/unsup/<id>_0.txt``. `download` fetches the archive once into
`dm.data.cache.default_root` (``$DM_DATA`` or ``~/.cache/dm``); `load` reads the reviews straight
out of the compressed archive (nothing is extracted to disk), accepts it by its md5 or by its
reviews' content digest (`reviews_digest`), and raises `CorruptArchiveError` for anything else.
`fabricate` writes a tiny archive in the official layout; `imbalanced` draws the paper's
imbalanced training sets. The archive's other files, where the checksums come from and how long
reading takes: chapter 10, section "The data and its paragraph vectors".
"""

from __future__ import annotations

import gzip
import hashlib
import io
import numbers
import os
import re
import tarfile
import tempfile
import urllib.request
import zlib
from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np

from .cache import default_root, md5 as _file_md5

__all__ = [
    "Imdb", "Split", "load", "download", "fabricate", "imbalanced", "CorruptArchiveError",
    "reviews_digest", "URL", "ARCHIVE", "REASSEMBLED", "MD5", "REVIEWS_SHA256", "SIZES",
    "NEGATIVE", "POSITIVE", "CLASSES",
]

URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
ARCHIVE = "aclImdb_v1.tar.gz"
# A copy of the same reviews packed anew (without the bag-of-words files),
# as the project's machines hold it; `load` looks for it when ARCHIVE is absent.
REASSEMBLED = "aclImdb_v1.reassembled.tar.gz"
# md5 of the official archive (its sources: chapter 10).
MD5 = "7c2ac02c03563afcf9b574c7e56c153a"
# The content digest (`reviews_digest`) of the official data set's 100,000
# reviews (how it was computed: chapter 10): an archive whose reviews give
# this digest holds the official reviews, whatever its md5.
REVIEWS_SHA256 = "89af12cafe99666ba1d026405213be16113ccedc30e370bf6cfb7a82db1be8c6"
SIZES = {"train": 25_000, "test": 25_000, "unsup": 50_000}
NEGATIVE, POSITIVE = 0, 1
CLASSES = ("negative", "positive")
_PER_CLASS = 12_500                                  # per class in train and in test
# The data set's rule (its README): negative <= 4 stars, positive >= 7, unsup 0.
_RATINGS = {"pos": range(7, 11), "neg": range(1, 5), "unsup": range(0, 1)}
_REVIEW = re.compile(r"aclImdb/(train|test)/(pos|neg|unsup)/([^/]+)")
_NAME = re.compile(r"(\d+)_(\d+)\.txt")


class CorruptArchiveError(ValueError):
    """An archive refused: the wrong md5 or reviews, or unreadable as a gzipped tar (truncated, corrupted)."""


class Split(NamedTuple):
    texts: list                   # raw review text (str), pos then neg (unsup: all), each by id
    labels: np.ndarray            # [N] int64: POSITIVE, NEGATIVE, or -1 for unsup
    ratings: np.ndarray           # [N] int64 star rating 1..10 from the file name (0 for unsup)
    ids: np.ndarray               # [N] int64 the <id> of <id>_<rating>.txt (unique per folder)


class Imdb(NamedTuple):
    train: Split
    test: Split
    unsup: Split
    md5: str                      # md5 of the archive file read (its packing)
    fabricated: bool              # written by `fabricate` (its README says so)
    digest: str = ""              # `reviews_digest`: identifies the reviews, whatever the packing
    archive: str = ""             # the archive's file name

    @property
    def official(self) -> bool:
        """The official data set's reviews (`REVIEWS_SHA256`), from any archive."""
        return self.digest == REVIEWS_SHA256

    def identity(self) -> dict:
        """Which data a run saw, as its ``result.json`` records it.

        ``{"dataset", "copy", "archive", "archive_md5", "content_sha256", "description"}``; ``copy``
        is "official archive", "reassembled copy" (another archive of the official reviews),
        "fabricated" or "other" (reviews that are not the official ones)."""
        if self.fabricated:
            copy = "fabricated"
        elif self.official:
            copy = "official archive" if self.md5 == MD5 else "reassembled copy"
        else:
            copy = "other"
        description = f"IMDB, {copy}, reviews digest {self.digest[:8]}…"
        return {"dataset": "imdb", "copy": copy, "archive": self.archive, "archive_md5": self.md5,
                "content_sha256": self.digest, "description": description}


def download(root=None, url: str = URL, md5: Optional[str] = MD5, *, progress: bool = True) -> Path:
    """Fetch the archive into ``root`` unless a copy with the right md5 is there; return its path.

    ``root`` defaults to `default_root`. The bytes go to a temporary ``.part`` file beside the
    target, are md5-checked (``md5=None``: not checked), then renamed into place, so the target is
    only ever a complete, verified archive; on a mismatch (`CorruptArchiveError`) or any other
    failure the part file is removed. ``progress`` shows a tqdm bar when the size is known."""
    root = Path(root) if root is not None else default_root()
    target = root / ARCHIVE
    if target.is_file() and (md5 is None or _file_md5(target) == md5):
        return target
    root.mkdir(parents=True, exist_ok=True)
    fd, part = tempfile.mkstemp(dir=root, prefix=ARCHIVE + ".", suffix=".part")
    try:
        digest = hashlib.md5()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            size = response.headers.get("Content-Length")
            bar = None
            if progress and size:
                from tqdm.auto import tqdm
                bar = tqdm(total=int(size), unit="B", unit_scale=True, desc=ARCHIVE)
            try:
                for block in iter(lambda: response.read(1 << 20), b""):
                    out.write(block)
                    digest.update(block)
                    if bar is not None:
                        bar.update(len(block))
            finally:
                if bar is not None:
                    bar.close()
        if md5 is not None and digest.hexdigest() != md5:
            raise CorruptArchiveError(
                f"downloaded {url} has md5 {digest.hexdigest()}, expected {md5}: "
                "the download was incomplete or the file on the server changed; nothing was kept")
        os.chmod(part, 0o644)                 # mkstemp made it private
        os.replace(part, target)
    finally:
        if os.path.exists(part):
            os.remove(part)
    return target


_download = download                  # `load`'s argument ``download`` hides the function
_FABRICATED_MARK = "(FABRICATED by dm.data.imdb.fabricate"   # on the first line of `fabricate`'s README


def reviews_digest(files) -> str:
    r"""The content digest of a set of reviews (64 hex digits), whatever the archive's packing.

    sha256 of the sorted lines ``<path>\t<sha256 of the file's bytes>\n`` over every review's path
    (``aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt`` and ``aclImdb/train/unsup/<id>_0.txt``);
    ``files``: {path: sha256 hex}. Order, times, owners, compression and the other files play no
    part, so two archives of the same reviews have the same digest."""
    lines = "".join(f"{path}\t{files[path]}\n" for path in sorted(files))
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


def _find(root: Path) -> Optional[Path]:
    for name in (ARCHIVE, REASSEMBLED):
        if (root / name).is_file():
            return root / name
    return None


def load(root=None, download: bool = False, md5: Optional[str] = MD5, url: str = URL,
         *, progress: bool = True) -> Imdb:
    """Read the reviews of the official archive, or of another archive of the same reviews.

    Reads ``root/aclImdb_v1.tar.gz``, or else ``root/aclImdb_v1.reassembled.tar.gz`` (``root``
    defaults to `default_root`, i.e. ``$DM_DATA``). With the default ``md5=MD5`` an archive is
    accepted when its md5 is the official archive's, or when its reviews' `reviews_digest` is the
    official reviews' (`REVIEWS_SHA256`): a copy packed anew holds the same data. Another ``md5``
    (e.g. `fabricate`'s) must match the archive's; ``None`` checks nothing. ``download=True``
    fetches the official archive (`download`) when none is found or the one found is refused.

    The official reviews must number exactly `SIZES`, 12,500 per class in train and test. Every
    labelled review's rating must agree with its folder (pos >= 7, neg <= 4) and unsup ratings must
    be 0. Reviews are decoded as UTF-8 and kept raw (``<br />`` tags and all); each split lists the
    positive reviews, then the negative ones, each by numeric id. Raises FileNotFoundError where
    there is no archive; `CorruptArchiveError` (naming both checks) for any other archive, truncated
    or altered; ValueError for a wrong layout, name, rating or count."""
    root = Path(root) if root is not None else default_root()
    path = _find(root)
    if path is None and download:
        path = _download(root, url, md5, progress=progress)
    if path is None:
        raise FileNotFoundError(
            f"{root / ARCHIVE} not found (nor {REASSEMBLED}): call dm.data.imdb.load(download=True) or "
            f"dm.data.imdb.download() to fetch it (about 84 MB) from {url}, or put the archive there.")
    try:
        return _load(path, md5)
    except CorruptArchiveError:
        if not download:
            raise
        return _load(_download(root, url, md5, progress=progress), md5)


def _load(path: Path, md5: Optional[str]) -> Imdb:
    actual = _file_md5(path)
    by_md5 = md5 is None or actual == md5
    if not by_md5 and md5 != MD5:   # a fabricated archive's md5: its bytes are the check
        raise CorruptArchiveError(
            f"{path} has md5 {actual}, expected {md5}: the file is truncated or corrupted "
            "(or not this data set). Delete it, or call load(download=True) to fetch it again.")
    found, digest, fabricated = _read(path, "" if by_md5 else f" (its md5 {actual} is not {md5})")
    if not (by_md5 or digest == REVIEWS_SHA256):
        raise CorruptArchiveError(
            f"{path} is neither the official archive (md5 {actual}, expected {md5}) nor another "
            f"copy of the official reviews (their content digest is {digest}, expected "
            f"{REVIEWS_SHA256}): reviews are missing, altered or added. Delete it, or call "
            "load(download=True) to fetch the official archive.")
    splits = {name: _split(found, name) for name in SIZES}
    if not any(len(s.texts) for s in splits.values()):
        raise ValueError(f"{path} holds no reviews in the aclImdb/{{train,test}}/{{pos,neg}}/ layout")
    if actual == MD5 or digest == REVIEWS_SHA256:
        for name, split in splits.items():
            per_class = [] if name == "unsup" else [int((split.labels == c).sum()) for c in (0, 1)]
            if len(split.texts) != SIZES[name] or any(n != _PER_CLASS for n in per_class):
                raise ValueError(f"{path}: the official archive's {name} split has "
                                 f"{len(split.texts)} reviews (per class {per_class}), "
                                 f"expected {SIZES[name]}")
    return Imdb(splits["train"], splits["test"], splits["unsup"], actual, fabricated, digest, path.name)


def _read(path: Path, why: str = "") -> tuple:
    """Stream the archive: ({(split, folder): {id: (rating, text)}}, `reviews_digest`, fabricated).

    ``why``: added to a corruption error."""
    found: dict = {}
    hashes: dict = {}
    fabricated = False
    try:
        with open(path, "rb") as raw, gzip.GzipFile(fileobj=raw, mode="rb") as stream:
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                for member in tar:
                    tar.members = []          # streaming: keep no list of 100k members
                    if member.name == "aclImdb/README" and member.isfile():
                        fabricated = _FABRICATED_MARK in tar.extractfile(member).readline().decode("utf-8")
                        continue
                    match = _REVIEW.fullmatch(member.name)
                    if not (member.isfile() and match):
                        continue
                    split, folder, name = match.groups()
                    if split == "test" and folder == "unsup":
                        continue
                    parts = _NAME.fullmatch(name)
                    if parts is None:
                        raise ValueError(f"{path}: {member.name} is not named <id>_<rating>.txt")
                    id_, rating = int(parts[1]), int(parts[2])
                    if rating not in _RATINGS[folder]:
                        raise ValueError(f"{path}: {member.name} has rating {rating}, but {folder} "
                                         f"reviews are rated {_RATINGS[folder].start}.."
                                         f"{_RATINGS[folder].stop - 1}")
                    reviews = found.setdefault((split, folder), {})
                    if id_ in reviews:
                        raise ValueError(f"{path}: two reviews with id {id_} in {split}/{folder}")
                    data = tar.extractfile(member).read()
                    hashes[member.name] = hashlib.sha256(data).hexdigest()
                    reviews[id_] = (rating, data.decode("utf-8"))
            # The tar ends before the gzip stream does: read to its end so
            # that gzip checks the length and CRC of everything.
            while stream.read(1 << 20):
                pass
    except (EOFError, zlib.error, gzip.BadGzipFile, tarfile.TarError, UnicodeDecodeError) as error:
        raise CorruptArchiveError(
            f"{path} is truncated or corrupted ({type(error).__name__}: {error}){why}. "
            "Delete it, or call load(download=True) to fetch it again.") from error
    return found, reviews_digest(hashes), fabricated


def _split(found: dict, split: str) -> Split:
    folders = [("unsup", -1)] if split == "unsup" else [("pos", POSITIVE), ("neg", NEGATIVE)]
    split = "train" if split == "unsup" else split
    texts, labels, ratings, ids = [], [], [], []
    for folder, label in folders:
        reviews = found.get((split, folder), {})
        for id_ in sorted(reviews):
            texts.append(reviews[id_][1])
            labels.append(label)
            ratings.append(reviews[id_][0])
            ids.append(id_)
    as_array = lambda values: np.asarray(values, dtype=np.int64)  # noqa: E731
    return Split(texts, as_array(labels), as_array(ratings), as_array(ids))


def imbalanced(labels, ratio: int, seed: int) -> np.ndarray:
    """The paper's imbalanced training set ("P-N 10:1", "P-N 50:1") as sorted int64 indices.

    Indices into ``labels`` (1-D, 0/1) keeping every positive and ``n_pos // ratio`` negatives drawn
    without replacement by ``np.random.default_rng(seed)``. Raises ValueError for a ``ratio`` that
    is not an integer >= 1, other labels, or too few negatives."""
    if isinstance(ratio, bool) or not isinstance(ratio, numbers.Integral) or ratio < 1:
        raise ValueError(f"ratio must be an integer >= 1, got {ratio!r}")
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.isin(labels, (NEGATIVE, POSITIVE)).all():
        raise ValueError("labels must be a 1-D array of 0 (negative) and 1 (positive)")
    positives = np.flatnonzero(labels == POSITIVE)
    negatives = np.flatnonzero(labels == NEGATIVE)
    wanted = positives.size // int(ratio)
    if positives.size == 0 or wanted > negatives.size:
        raise ValueError(f"{positives.size} positives at {ratio}:1 need {wanted} negatives, "
                         f"{negatives.size} available")
    chosen = np.random.default_rng(seed).choice(negatives, size=wanted, replace=False)
    return np.sort(np.concatenate([positives, chosen])).astype(np.int64)


# --- a tiny data set in the official format -----------------------------------

_GOOD = ("great", "wonderful", "brilliant", "excellent", "superb", "moving", "beautiful",
         "funny", "best", "loved", "perfect", "touching", "charming", "masterpiece")
_BAD = ("bad", "awful", "boring", "terrible", "worst", "waste", "dull", "stupid", "poor",
        "horrible", "weak", "mess", "annoying", "pointless")
_NEUTRAL = ("the", "movie", "film", "a", "and", "it", "was", "of", "this", "acting", "plot",
            "story", "actors", "scenes", "director", "ending", "characters", "i", "is", "in",
            "to", "but", "with", "really", "just", "one", "time", "script", "music", "Amélie")
_README = """Large Movie Review Dataset v1.0 (FABRICATED by dm.data.imdb.fabricate: not the real data)

Overview

This dataset contains movie reviews along with their associated binary
sentiment polarity labels. It is intended to serve as a benchmark for
sentiment classification.

Dataset

The core dataset contains {labelled} reviews split evenly into {train} train
and {test} test sets. The overall distribution of labels is balanced. We also
include an additional {unsup} unlabeled documents for unsupervised learning.

In the labeled train/test sets, a negative review has a score <= 4 out of 10,
and a positive review has a score >= 7 out of 10.

Files

There are two top-level directories [train/, test/] corresponding to the
training and test sets. Each contains [pos/, neg/] directories for the reviews
with binary labels positive and negative. Within these directories, reviews
are stored in text files named following the convention [[id]_[rating].txt]
where [id] is a unique id and [rating] is the star rating for that review on a
1-10 scale. The [train/unsup/] directory has 0 for all ratings because the
ratings are omitted for this portion of the dataset.

Reference: Andrew L. Maas, Raymond E. Daly, Peter T. Pham, Dan Huang,
Andrew Y. Ng, and Christopher Potts. (2011). Learning Word Vectors for
Sentiment Analysis. ACL 2011.
"""


def _review(rng, positive: bool) -> str:
    """A fabricated review: a few dozen words in sentences and ``<br /><br />`` paragraphs.

    About one word in six carries sentiment, mostly the review's own."""
    own, other = (_GOOD, _BAD) if positive else (_BAD, _GOOD)
    paragraphs = []
    for _ in range(rng.integers(1, 4)):
        sentences = []
        for _ in range(rng.integers(1, 4)):
            words = []
            for _ in range(rng.integers(4, 12)):
                u = rng.random()
                pool = own if u < 0.14 else other if u < 0.17 else _NEUTRAL
                words.append(pool[rng.integers(len(pool))])
            if len(words) > 5 and rng.random() < 0.4:
                words[rng.integers(2, len(words) - 2)] += ","
            sentence = " ".join(words)
            sentences.append(sentence[0].upper() + sentence[1:] + (".", ".", "!", "...")[rng.integers(4)])
        paragraphs.append(" ".join(sentences))
    return "<br /><br />".join(paragraphs)


def fabricate(root, n_train: int = 40, n_test: int = 40, n_unsup: int = 20, seed: int = 0) -> str:
    """Write a tiny ``root/aclImdb_v1.tar.gz`` in the official layout; return its md5.

    Pass the md5 to `load` as ``md5``. ``n_train`` and ``n_test`` reviews (even numbers, half
    positive, half negative, ids 0..n/2-1 in each of pos/ and neg/) rated 7..10 or 1..4, ``n_unsup``
    in ``train/unsup/`` rated 0, plus ``imdb.vocab``, ``imdbEr.txt``, ``urls_*.txt`` and a README
    like the real ones. Positive and negative reviews use different words, so a classifier can learn
    them. Members are stored in a seeded shuffled order with fixed times and owners, so the archive
    (and its md5) is the same for the same arguments (and zlib). Raises ValueError for an odd or too
    small ``n_train``/``n_test`` or a negative ``n_unsup``."""
    for name, n in (("n_train", n_train), ("n_test", n_test)):
        if n < 2 or n % 2:
            raise ValueError(f"{name} must be an even number >= 2, got {n!r}")
    if n_unsup < 0:
        raise ValueError(f"n_unsup must be >= 0, got {n_unsup!r}")
    rng = np.random.default_rng(seed)
    files = {}
    for split, n in (("train", n_train), ("test", n_test)):
        for folder, ratings in (("pos", (7, 11)), ("neg", (1, 5))):
            for id_ in range(n // 2):
                rating = int(rng.integers(*ratings))
                files[f"{split}/{folder}/{id_}_{rating}.txt"] = _review(rng, folder == "pos")
            files[f"{split}/urls_{folder}.txt"] = "".join(
                f"http://www.imdb.com/title/tt{int(rng.integers(10**6, 10**7)):07d}/usercomments\n"
                for _ in range(n // 2))
    for id_ in range(n_unsup):
        files[f"train/unsup/{id_}_0.txt"] = _review(rng, bool(rng.random() < 0.5))
    files["train/urls_unsup.txt"] = "".join(
        f"http://www.imdb.com/title/tt{int(rng.integers(10**6, 10**7)):07d}/usercomments\n"
        for _ in range(n_unsup))
    vocabulary = _NEUTRAL + _GOOD + _BAD
    files["imdb.vocab"] = "".join(w + "\n" for w in vocabulary)
    files["imdbEr.txt"] = "".join(
        f"{v:.6f}\n" for v in [0.0] * len(_NEUTRAL) + [1.5] * len(_GOOD) + [-1.5] * len(_BAD))
    files["README"] = _README.format(labelled=n_train + n_test, train=n_train, test=n_test,
                                     unsup=n_unsup)

    names = list(files)
    folders = sorted({"aclImdb"} | {"aclImdb/" + "/".join(n.split("/")[:k])
                                    for n in names for k in range(1, n.count("/") + 1)})
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    target = root / ARCHIVE
    part = target.with_name(target.name + ".part")

    def info(name: str, size: int = 0, folder: bool = False) -> tarfile.TarInfo:
        entry = tarfile.TarInfo(name)
        entry.type, entry.mode = (tarfile.DIRTYPE, 0o755) if folder else (tarfile.REGTYPE, 0o644)
        entry.size, entry.mtime = size, 1_308_000_000          # June 2011
        entry.uid = entry.gid = 1000
        entry.uname = entry.gname = "dm"
        return entry

    try:
        with open(part, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
            with tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar:
                for folder in folders:
                    tar.addfile(info(folder, folder=True))
                for i in rng.permutation(len(names)):
                    data = files[names[i]].encode("utf-8")
                    tar.addfile(info("aclImdb/" + names[i], len(data)), io.BytesIO(data))
        os.replace(part, target)
    finally:
        if part.exists():
            part.unlink()
    return _file_md5(target)
