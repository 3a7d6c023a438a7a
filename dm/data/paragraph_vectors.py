"""PV-DBOW paragraph vectors of the IMDB reviews, as the paper's Table 5 uses them, cached.

Each review becomes a paragraph vector (Le and Mikolov 2014) trained as Mesnil et al.'s iclr15
code does: gensim's `Doc2Vec` with ``dm=0`` (PV-DBOW) on the text of all 100,000 reviews,
without labels, with iclr15's settings and text preprocessing (`ICLR15`, each field with its
source). Vectors are cached in ``<cache_dir>/pv-dbow-<key>.npz``, the key (`cache_key`) a hash
of the settings, the reviews' content digest (`dm.data.imdb.reviews_digest`) and this module's
format version: a rerun loads them at once, and a changed setting or other reviews never reuse
stale vectors. `logistic_regression_accuracy` is iclr15's check of the vectors. What iclr15
does and where gensim differs: chapter 10, section "What iclr15 did, and what we do".
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import time
from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np

from . import imdb
from ..hardware import cpu_model
from .cache import atomic_write, default_root

__all__ = ["Settings", "ICLR15", "normalize_text", "tokens", "cache_key", "Features",
           "paragraph_vectors", "logistic_regression_accuracy", "ICLR15_ACCURACY"]

# Bump when the corpus or the saved format changes, so old caches are not reused.
FORMAT_VERSION = 2   # 2: keyed by the reviews' content digest, not the archive's md5

# Mesnil et al. 2015, Table 1: "Sentence Vectors", logistic regression (liblinear).
ICLR15_ACCURACY = 0.8873


@dataclasses.dataclass(frozen=True)
class Settings:
    """Doc2Vec settings; the defaults (`ICLR15`) are iclr15's word2vec command line.

    iclr15's ``scripts/paragraph.sh`` runs ``word2vec -cbow 0 -size 100 -window 10 -negative 5``
    ``-hs 1 -sample 1e-3 -threads 40 -binary 0 -iter 20 -min-count 1 -sentence-vectors 1``."""

    vector_size: int = 100      # -size 100
    window: int = 10            # -window 10 (word2vec shrinks it at random per word, as gensim does)
    negative: int = 5           # -negative 5 (negative sampling...)
    hs: int = 1                 # -hs 1 (...and hierarchical softmax, both at once; gensim logs a warning)
    sample: float = 1e-3        # -sample 1e-3 (sub-sampling of frequent words)
    min_count: int = 1          # -min-count 1 (every word kept)
    epochs: int = 20            # -iter 20
    # -cbow 0 with -sentence-vectors 1: skip-gram over the words with the
    # review's own vector added to every context, so word vectors are trained
    # alongside the paragraph vectors: gensim's dm=0 with dbow_words=1.
    dbow_words: bool = True
    # word2vec's default starting rate for skip-gram (-alpha not given), decayed
    # linearly to starting_alpha * 1e-4 (word2vec.c's floor) over all epochs.
    alpha: float = 0.025
    min_alpha: float = 0.025 * 1e-4
    # iclr15 shuffles the lines once (`shuf alldata-id.txt`) and trains on that
    # order; here a seeded permutation. Also Doc2Vec's own seed.
    seed: int = 123


ICLR15 = Settings()

# iclr15's scripts/data.sh, `normalize_text` (its rules: chapter 10).
_SPACED = re.compile(r'([.",()!?;:])')


def normalize_text(text: str) -> str:
    """A review as iclr15's ``normalize_text`` leaves it, punctuation split from words.

    Lower case; line breaks (``<br />``) become spaces; ``. " , ( ) ! ? ; :`` get a space on each
    side."""
    text = text.lower().replace("<br />", " ")
    return _SPACED.sub(r" \1 ", text)


def tokens(text: str) -> list:
    """The words word2vec trains on for a review: `normalize_text`, split on whitespace."""
    return normalize_text(text).split()


def cache_key(settings: Settings, reviews_sha256: str) -> str:
    """The cache key (16 hex digits) of the vectors of ``settings`` on the given reviews.

    ``reviews_sha256``: the reviews' content digest (`dm.data.imdb.reviews_digest`). Raises
    TypeError for ``settings`` that are not `Settings`, ValueError for a digest that is not 64 hex
    digits."""
    if not isinstance(settings, Settings):
        raise TypeError(f"settings must be a dm.data.paragraph_vectors.Settings, got {type(settings).__name__}")
    if not (isinstance(reviews_sha256, str) and re.fullmatch(r"[0-9a-f]{64}", reviews_sha256)):
        raise ValueError(f"reviews_sha256 must be 64 hex digits, got {reviews_sha256!r}")
    blob = json.dumps({"settings": dataclasses.asdict(settings), "reviews_sha256": reviews_sha256,
                       "format": FORMAT_VERSION}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


class Features(NamedTuple):
    """Paragraph vectors of the three splits, rows in the order of their `dm.data.imdb.Split`."""
    train: np.ndarray   # float32 [25000, vector_size]
    test: np.ndarray    # float32 [25000, vector_size]
    unsup: np.ndarray   # float32 [50000, vector_size]
    key: str            # `cache_key`: identifies settings and data
    meta: dict          # settings, data checksum, gensim version, hardware, seconds


def _corpus(data: imdb.Imdb):
    # All reviews, in the order train, test, unsup; repeated words share one
    # string object (100k reviews hold ~27M words but ~250k distinct ones).
    table, documents = {}, []
    for split in (data.train, data.test, data.unsup):
        for text in split.texts:
            documents.append([table.setdefault(w, w) for w in tokens(text)])
    return documents


def _alpha(settings: Settings, epoch: int) -> float:
    # word2vec's learning rate at the start of ``epoch``: a linear decay from
    # alpha to min_alpha over all epochs.
    return settings.alpha - (settings.alpha - settings.min_alpha) * epoch / settings.epochs


def _train(data: imdb.Imdb, settings: Settings, workers: int, progress: bool, partial: Path,
           stop_after: Optional[int] = None):
    # One epoch per call of gensim's train, with the learning rate of that
    # stretch of word2vec's linear schedule, and the whole model saved after
    # each epoch to ``partial``: an interrupted training resumes at the
    # epoch it had reached. ``stop_after`` (tests): return None after that
    # many epochs, as an interruption would. Returns (vectors, {"vocabulary_seconds",
    # "epoch_seconds": one per epoch, over all sessions}).
    from gensim.models.doc2vec import Doc2Vec, TaggedDocument

    documents = _corpus(data)
    order = np.random.default_rng(settings.seed).permutation(len(documents))
    corpus = [TaggedDocument(documents[i], [int(i)]) for i in order]
    if partial.exists():
        model = Doc2Vec.load(str(partial))
        model.workers = workers
    else:
        start = time.perf_counter()
        model = Doc2Vec(dm=0, dbow_words=int(settings.dbow_words), vector_size=settings.vector_size,
                        window=settings.window, negative=settings.negative, hs=settings.hs,
                        sample=settings.sample, min_count=settings.min_count, alpha=settings.alpha,
                        min_alpha=settings.min_alpha, seed=settings.seed, workers=workers)
        model.build_vocab(corpus)
        model.dm_epochs_done, model.dm_epoch_seconds = 0, []
        model.dm_vocabulary_seconds = time.perf_counter() - start
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=settings.epochs, initial=model.dm_epochs_done, desc="PV-DBOW epochs", leave=False)
    for epoch in range(model.dm_epochs_done, settings.epochs):
        start = time.perf_counter()
        model.train(corpus, total_examples=len(corpus), epochs=1,
                    start_alpha=_alpha(settings, epoch), end_alpha=_alpha(settings, epoch + 1))
        model.dm_epochs_done = epoch + 1
        model.dm_epoch_seconds.append(time.perf_counter() - start)
        if bar is not None:
            bar.update(1)
        if epoch + 1 < settings.epochs:
            def save(path, model=model):
                with open(path, "wb") as f:  # one file: a handle makes gensim pickle the arrays inline
                    model.save(f)
            atomic_write(partial, save)
        if stop_after is not None and epoch + 1 >= stop_after and epoch + 1 < settings.epochs:
            if bar is not None:
                bar.close()
            return None
    if bar is not None:
        bar.close()
    times = {"vocabulary_seconds": round(model.dm_vocabulary_seconds, 1),
             "epoch_seconds": [round(t, 1) for t in model.dm_epoch_seconds]}
    return np.asarray(model.dv.vectors[np.arange(len(documents))], dtype=np.float32), times


def paragraph_vectors(data: imdb.Imdb, settings: Settings = ICLR15, cache_dir=None, *,
                      workers: Optional[int] = None, progress: bool = True,
                      stop_after: Optional[int] = None) -> Optional[Features]:
    """The PV-DBOW vectors of every review of ``data``: loaded from the cache, or trained and cached.

    ``cache_dir`` defaults to ``<dm.data.cache.default_root()>/paragraph-vectors``. Training uses no
    labels and all review texts (train, test and unlabelled, as iclr15 does) and saves the model
    after every epoch (``pv-dbow-<key>.partial`` beside the cache file), so an interrupted training
    resumes where it stopped; it takes hours (chapter 10, "Before you run"). ``workers``: gensim's
    threads (default: every core). With more than one, gensim's result depends on thread scheduling,
    so two trainings differ slightly; with one, a resumed training gives the same vectors as an
    uninterrupted one. The cache keeps a notebook's numbers stable once trained. Returns `Features`;
    ``stop_after`` (for tests): stop after that many epochs, as an interruption would, and return
    None.
    """
    key = cache_key(settings, data.digest)
    folder = Path(cache_dir) if cache_dir is not None else default_root() / "paragraph-vectors"
    path = folder / f"pv-dbow-{key}.npz"
    if path.exists():
        with np.load(path) as stored:
            meta = json.loads(str(stored["meta"]))
            return Features(stored["train"], stored["test"], stored["unsup"], key, meta)
    import gensim

    workers = workers or os.cpu_count() or 1
    partial = path.with_name(path.stem + ".partial")
    folder.mkdir(parents=True, exist_ok=True)
    trained = _train(data, settings, workers, progress, partial, stop_after)
    if trained is None:
        return None
    vectors, times = trained
    sizes = [len(data.train.texts), len(data.test.texts), len(data.unsup.texts)]
    train, test, unsup = np.split(vectors, np.cumsum(sizes)[:2])
    meta = {"settings": dataclasses.asdict(settings), "data": data.identity(),
            "reviews_sha256": data.digest,
            "fabricated_data": bool(data.fabricated), "format": FORMAT_VERSION,
            "gensim": gensim.__version__, "workers": workers,
            "hardware": f"CPU ({cpu_model()}, {os.cpu_count()} cores)",
            # gensim's time: building the vocabulary, then each epoch (over all sessions)
            "seconds": round(times["vocabulary_seconds"] + sum(times["epoch_seconds"]), 1), **times}
    atomic_write(path, lambda p: _save(p, train, test, unsup, meta))
    partial.unlink(missing_ok=True)
    return Features(train, test, unsup, key, meta)


def _save(path: Path, train, test, unsup, meta) -> None:
    with open(path, "wb") as f:  # a file object: np.savez would append ".npz" to a name
        np.savez(f, train=train, test=test, unsup=unsup, meta=np.array(json.dumps(meta)))


def logistic_regression_accuracy(features: Features, data: imdb.Imdb) -> float:
    """iclr15's check of the vectors: logistic regression's test accuracy, a float in [0, 1].

    L2-regularised logistic regression (liblinear ``-s 0``, C = 1, no bias term, liblinear's
    default) fitted on the training vectors, accuracy on the test vectors. Mesnil et al. report
    88.73 % (`ICLR15_ACCURACY`)."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=1.0, solver="liblinear", fit_intercept=False)
    model.fit(features.train, data.train.labels)
    return float((model.predict(features.test) == data.test.labels).mean())
