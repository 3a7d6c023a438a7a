"""How long the IMDB experiment (chapter 10, `dm.experiments.imdb`) takes, measured on
data of the real shape, since the real reviews cannot be downloaded here.

    python benchmarks/imdb.py [--threads 1] [--workers N] [--quick]

1. One full run of the paper's solver (10,000 iterations, batch 100, the
   8-unit network) on 25,000 synthetic 100-dimensional vectors, for CCE, DM
   and DM with class weights: seconds per run, and the time of all 49 runs
   of Table 5 at that pace.
2. gensim's training speed with iclr15's settings (`dm.data.paragraph_vectors.ICLR15`)
   on a synthetic corpus (Zipf-distributed words over a 100,000-word
   vocabulary, 270 words per review), in words per second, and the time that
   implies for 20 epochs over the real corpus. ``REAL_WORDS`` is an estimate
   of the real corpus's size (100,000 reviews of about 230 words, a little
   more after iclr15 splits off punctuation), not a count.
3. Reading an archive with 100,000 reviews in aclImdb's layout
   (`dm.data.imdb.fabricate`, shorter reviews than the real ones) with `dm.data.imdb.load`.

``--quick`` shrinks everything to a few seconds (a smoke check of the script).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import tempfile
import time

import numpy as np
import torch

import dm.data.imdb
import dm.data.paragraph_vectors as pv
import dm.experiments.imdb as st
import dm.experiments.tables

REAL_WORDS = 27e6  # estimated words in all 100,000 reviews after iclr15's normalisation


def run_times(iterations: int, n: int) -> dict:
    rng = np.random.default_rng(0)
    y = np.repeat([1, 0], n // 2)
    x = (rng.normal(size=(n, 100)) + 0.3 * (2 * y[:, None] - 1)).astype(np.float32)
    data = st.Dataset(x, y, x.copy(), y.copy(), "synthetic", True)
    base = dataclasses.replace(st.PAPER_IMDB, iterations=iterations, features="synthetic")
    times = {}
    for label, (row, column) in {"CCE": ("r = 0.0", "CCE"), "DM (r = 0.4)": ("r = 0.4", "DM"),
                                 "DM + class weights (P-N 10:1)": ("P-N 10:1", "DM + class weights")}.items():
        with tempfile.TemporaryDirectory() as runs_dir:
            result = st.run(dm.experiments.tables.table5_config(row, column, "synthetic", base), runs_dir, data, progress=False)
        times[label] = result["wall_seconds"]
    return times


def gensim_words_per_second(documents: int, workers: int) -> float:
    from gensim.models.doc2vec import Doc2Vec, TaggedDocument

    rng = np.random.default_rng(0)
    vocabulary = 100_000
    p = 1 / np.arange(1, vocabulary + 1) ** 1.07
    words = np.array([f"w{i}" for i in range(vocabulary)], dtype=object)
    corpus = [TaggedDocument(list(words[rng.choice(vocabulary, 270, p=p / p.sum())]), [i])
              for i in range(documents)]
    s = pv.ICLR15
    model = Doc2Vec(dm=0, dbow_words=int(s.dbow_words), vector_size=s.vector_size, window=s.window,
                    negative=s.negative, hs=s.hs, sample=s.sample, min_count=s.min_count,
                    alpha=s.alpha, min_alpha=s.min_alpha, seed=s.seed, workers=workers)
    model.build_vocab(corpus)
    start = time.perf_counter()
    model.train(corpus, total_examples=len(corpus), epochs=1)
    return 270 * documents / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the runs (default 1)")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="gensim threads (default: every core)")
    parser.add_argument("--quick", action="store_true", help="a few seconds: checks the script, not the speed")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    iterations, n, documents, reviews = (200, 2_000, 500, 2_000) if args.quick else (10_000, 25_000, 10_000, 100_000)
    start = time.perf_counter()
    print(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"torch {torch.__version__}, {args.threads} thread(s)" + ("; --quick" if args.quick else ""))

    print(f"1. one run: {iterations} iterations, batch {st.PAPER_IMDB.batch_size}, {n} vectors of 100")
    times = run_times(iterations, n)
    for label, seconds in times.items():
        print(f"  {label:<31} {seconds:6.2f} s")
    print(f"  all 49 runs of Table 5 at the slowest pace: {49 * max(times.values()) / 60:.1f} min")

    print(f"2. PV-DBOW (iclr15's settings), {args.workers} gensim worker(s), one epoch over {documents} synthetic reviews")
    speed = gensim_words_per_second(documents, args.workers)
    epochs = pv.ICLR15.epochs
    print(f"  {speed:,.0f} words/s; {epochs} epochs over ~{REAL_WORDS / 1e6:.0f}M words (estimated size of "
          f"the real corpus): ~{epochs * REAL_WORDS / speed / 60:.0f} min")

    print(f"3. dm.data.imdb.load of a fabricated archive with {reviews} reviews in aclImdb's layout")
    with tempfile.TemporaryDirectory() as root:
        split = reviews // 4
        md5 = dm.data.imdb.fabricate(root, n_train=split, n_test=split, n_unsup=2 * split)
        t0 = time.perf_counter()
        dm.data.imdb.load(root, md5=md5, progress=False)
        print(f"  {time.perf_counter() - t0:.1f} s for {os.path.getsize(os.path.join(root, dm.data.imdb.ARCHIVE)) / 1e6:.0f} MB")
    print(f"total: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
