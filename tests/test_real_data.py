"""The real data on the project's machines (``../shared/data``, beside the
clone): the reassembled IMDB archive and CIFAR-10's JPEG copy load as what
they are. A user's clone has no ``../shared``: these tests are skipped there."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dm.data import cifar
from dm.data import imdb

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
DATA = SHARED / "data"
IMDB_COPY = DATA / imdb.REASSEMBLED
CIFAR_JPEG = DATA / "cifar10-jpeg.tar.gz"
CONVERTER = SHARED / "tools" / "cifar10_jpeg_to_python.py"

needs_imdb = pytest.mark.skipif(not IMDB_COPY.is_file(),
                                reason=f"the real IMDB reviews are not here ({IMDB_COPY}: only on the project's machines)")
needs_cifar = pytest.mark.skipif(not (CIFAR_JPEG.is_file() and CONVERTER.is_file()),
                                 reason=f"CIFAR-10's JPEG copy is not here ({CIFAR_JPEG}: only on the project's machines)")


@pytest.fixture(scope="module")
def reviews():
    return imdb.load(DATA)


@needs_imdb
def test_the_imdb_copy_holds_the_official_reviews(reviews):
    assert [len(reviews.train.texts), len(reviews.test.texts), len(reviews.unsup.texts)] == [25_000, 25_000, 50_000]
    for split in (reviews.train, reviews.test):
        assert np.bincount(split.labels).tolist() == [12_500, 12_500]
    assert reviews.digest == imdb.REVIEWS_SHA256 and reviews.official and not reviews.fabricated
    assert reviews.archive == imdb.REASSEMBLED and reviews.md5 != imdb.MD5
    identity = reviews.identity()
    assert identity["copy"] == "reassembled copy"
    assert identity["description"] == "IMDB, reassembled copy, reviews digest 89af12ca…"
    # train/pos/0_9.txt, the first positive training review
    assert reviews.train.ids[0] == 0 and reviews.train.ratings[0] == 9
    assert reviews.train.texts[0].startswith("Bromwell High is a cartoon comedy")


@needs_imdb
def test_the_copy_under_the_official_name_loads_as_the_real_reviews(tmp_path):
    """Renamed aclImdb_v1.tar.gz in another folder, the copy is recognised by
    its reviews' digest, not its md5."""
    os.symlink(IMDB_COPY, tmp_path / imdb.ARCHIVE)
    data = imdb.load(tmp_path)
    assert data.official and data.archive == imdb.ARCHIVE
    assert data.identity()["copy"] == "reassembled copy"


@pytest.fixture(scope="module")
def jpeg_copy(tmp_path_factory):
    out = tmp_path_factory.mktemp("cifar10-jpeg")
    subprocess.run([sys.executable, str(CONVERTER), str(out)], check=True, capture_output=True, timeout=600)
    return out


@needs_cifar
def test_the_cifar_jpeg_copy_loads_as_a_named_copy(jpeg_copy):
    data = cifar.load("cifar10", jpeg_copy)
    assert data.x_train.shape == (50_000, 3, 32, 32) and data.x_test.shape == (10_000, 3, 32, 32)
    assert data.x_train.dtype == np.uint8
    assert np.bincount(data.y_train).tolist() == [5_000] * 10
    assert np.bincount(data.y_test).tolist() == [1_000] * 10
    assert data.y_train[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]   # the official order
    means = data.x_train.reshape(50_000, 3, -1).mean(axis=(0, 2))
    np.testing.assert_allclose(means, [125.3, 123.0, 113.9], atol=0.1)
    assert data.copy == "JPEG copy" and not data.fabricated
    assert data.identity()["description"].startswith("CIFAR-10, JPEG copy, content digest ")


@needs_cifar
def test_an_altered_jpeg_copy_is_refused(jpeg_copy, tmp_path):
    """One changed label makes the content no known copy: refused, naming the digest."""
    import pickle

    folder = tmp_path / "cifar-10-batches-py"
    shutil.copytree(jpeg_copy / "cifar-10-batches-py", folder)
    with open(folder / "data_batch_5", "rb") as f:
        batch = pickle.load(f, encoding="latin1")
    batch["labels"][-1] = (batch["labels"][-1] + 1) % 10
    with open(folder / "data_batch_5", "wb") as f:
        pickle.dump(batch, f)
    with pytest.raises(RuntimeError, match="content digest [0-9a-f]{64} is no known copy"):
        cifar.load("cifar10", tmp_path)
