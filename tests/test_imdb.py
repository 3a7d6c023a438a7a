"""dm.data.imdb: fabricated archives in the official aclImdb layout, loading them
straight from the tar.gz, the download through a file:// URL, damaged and
malformed archives, and the paper's imbalanced sampler."""

import gzip
import hashlib
import io
import os
import re
import tarfile
import time
import urllib.request

import numpy as np
import pytest

from dm.data import imdb


@pytest.fixture
def fabricated(tmp_path):
    root = tmp_path / "source"
    return root, imdb.fabricate(root, n_train=40, n_test=20, n_unsup=10, seed=3)


def _members(path):
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}


def test_fabricate_load_round_trip(fabricated):
    root, md5 = fabricated
    data = imdb.load(root, md5=md5)
    assert data.md5 == md5 and data.fabricated
    members = _members(root / imdb.ARCHIVE)
    for split, name, folders, n in [(data.train, "train", ("pos", "neg"), 40),
                                    (data.test, "test", ("pos", "neg"), 20),
                                    (data.unsup, "train", ("unsup",), 10)]:
        assert len(split.texts) == split.labels.size == split.ratings.size == split.ids.size == n
        assert all(a.dtype == np.int64 for a in (split.labels, split.ratings, split.ids))
        k = n // len(folders)
        # Order: pos, then neg (or unsup), each by numeric id (stored shuffled).
        np.testing.assert_array_equal(split.ids, np.tile(np.arange(k), len(folders)))
        expected = {"pos": imdb.POSITIVE, "neg": imdb.NEGATIVE, "unsup": -1}
        np.testing.assert_array_equal(split.labels, np.repeat([expected[f] for f in folders], k))
        for i, (text, label, rating, id_) in enumerate(zip(*split)):
            folder = folders[i // k]
            assert text == members[f"aclImdb/{name}/{folder}/{id_}_{rating}.txt"].decode("utf-8")
            assert rating in {"pos": range(7, 11), "neg": range(1, 5), "unsup": [0]}[folder]
    assert all(isinstance(t, str) for t in data.train.texts)
    assert any("<br /><br />" in t for t in data.train.texts)
    assert any("Amélie" in t for s in data[:3] for t in s.texts)        # decoded as UTF-8
    assert {"aclImdb/imdb.vocab", "aclImdb/README", "aclImdb/train/urls_pos.txt"} <= set(members)


def test_fabricated_reviews_separate_the_classes(fabricated):
    """Counting the fabricated sentiment words beats chance on the test set."""
    root, md5 = fabricated
    test = imdb.load(root, md5=md5).test
    score = [sum(w.strip(".,!") in imdb._GOOD for w in t.lower().split())
             - sum(w.strip(".,!") in imdb._BAD for w in t.lower().split()) for t in test.texts]
    assert np.mean((np.asarray(score) > 0) == (test.labels == imdb.POSITIVE)) >= 0.8


def test_fabricate_md5_is_reproducible(tmp_path, monkeypatch):
    a = imdb.fabricate(tmp_path / "a", seed=5)
    monkeypatch.setattr(time, "time", lambda: 2e9)           # no clock in the archive
    assert imdb.fabricate(tmp_path / "b", seed=5) == a
    assert imdb.fabricate(tmp_path / "c", seed=6) != a
    assert a != imdb.MD5
    with pytest.raises(ValueError, match="even"):
        imdb.fabricate(tmp_path / "d", n_train=41)


def test_download_through_a_file_url(fabricated, tmp_path, monkeypatch):
    root, md5 = fabricated
    url = (root / imdb.ARCHIVE).as_uri()
    cache = tmp_path / "cache"
    path = imdb.download(cache, url=url, md5=md5, progress=False)
    assert path == cache / imdb.ARCHIVE and os.listdir(cache) == [imdb.ARCHIVE]
    assert path.read_bytes() == (root / imdb.ARCHIVE).read_bytes()

    def offline(*args, **kwargs):
        raise AssertionError("downloaded again")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    assert imdb.download(cache, url=url, md5=md5, progress=False) == path
    assert imdb.load(cache, download=True, md5=md5, url=url).md5 == md5
    monkeypatch.undo()
    # A damaged copy in the cache is replaced by a verified download.
    path.write_bytes(path.read_bytes()[:100])
    assert imdb.load(cache, download=True, md5=md5, url=url, progress=False).md5 == md5
    assert os.listdir(cache) == [imdb.ARCHIVE]


def test_download_with_a_wrong_md5_keeps_nothing(fabricated, tmp_path):
    root, md5 = fabricated
    url = (root / imdb.ARCHIVE).as_uri()
    cache = tmp_path / "cache"
    with pytest.raises(imdb.CorruptArchiveError) as error:
        imdb.download(cache, url=url, md5="0" * 32, progress=False)
    assert md5 in str(error.value) and "0" * 32 in str(error.value) and url in str(error.value)
    assert os.listdir(cache) == []


@pytest.mark.parametrize("damage", ["truncated", "corrupted"])
@pytest.mark.parametrize("check", [True, False])
def test_damaged_archive_raises_a_clear_error(fabricated, tmp_path, damage, check):
    root, md5 = fabricated
    data = bytearray((root / imdb.ARCHIVE).read_bytes())
    middle = len(data) // 2
    if damage == "truncated":
        data = data[:middle]
    else:
        data[middle:middle + 16] = bytes(b ^ 0xFF for b in data[middle:middle + 16])
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / imdb.ARCHIVE).write_bytes(bytes(data))
    with pytest.raises(imdb.CorruptArchiveError, match="truncated or corrupted") as error:
        imdb.load(cache, md5=md5 if check else None)
    assert str(cache / imdb.ARCHIVE) in str(error.value)
    if check:
        assert md5 in str(error.value) and "download=True" in str(error.value)
    assert os.listdir(cache) == [imdb.ARCHIVE]


def test_missing_archive(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(imdb.URL)) as error:
        imdb.load(tmp_path)
    assert "download=True" in str(error.value)
    assert os.listdir(tmp_path) == []


def _rename(path, old, new):
    """Rewrite the archive with member ``old`` renamed to ``new``."""
    members = _members(path)
    members[new] = members.pop(old)
    _rewrite(path, members)


@pytest.mark.parametrize("old, new, message", [
    ("train/pos/0_{}.txt", "train/pos/0_3.txt", "rating 3"),
    ("test/neg/1_{}.txt", "test/neg/1_7.txt", "rating 7"),
    ("train/unsup/2_0.txt", "train/unsup/2_5.txt", "rating 5"),
    ("test/pos/3_{}.txt", "test/pos/3.txt", "not named"),
    ("train/neg/4_{}.txt", "train/neg/5_0.txt", "rating 0"),
])
def test_malformed_archive_is_rejected(fabricated, old, new, message):
    root, md5 = fabricated
    path = root / imdb.ARCHIVE
    old = next(n for n in _members(path) if re.fullmatch("aclImdb/" + old.format(r"\d+"), n))
    _rename(path, old, "aclImdb/" + new)
    with pytest.raises(ValueError, match=message):
        imdb.load(root, md5=None)


def test_duplicate_id_is_rejected(fabricated):
    root, md5 = fabricated
    path = root / imdb.ARCHIVE
    names = _members(path)
    rating = next(int(n[-5]) for n in names if n.startswith("aclImdb/train/neg/5_"))
    old = next(n for n in names if n.startswith("aclImdb/train/neg/4_"))
    _rename(path, old, f"aclImdb/train/neg/5_{rating % 4 + 1}.txt")
    with pytest.raises(ValueError, match="two reviews with id 5 in train/neg"):
        imdb.load(root, md5=None)


def test_official_md5_requires_the_official_sizes(fabricated, monkeypatch):
    root, md5 = fabricated
    monkeypatch.setattr(imdb, "MD5", md5)
    with pytest.raises(ValueError, match="expected 25000"):
        imdb.load(root, md5=md5)


@pytest.fixture
def balanced():
    return np.random.default_rng(0).permutation(np.repeat([0, 1], 12_500))


@pytest.mark.parametrize("ratio, negatives", [(10, 1_250), (50, 250), (1, 12_500)])
def test_imbalanced_counts(balanced, ratio, negatives):
    chosen = imdb.imbalanced(balanced, ratio, seed=0)
    assert chosen.dtype == np.int64 and np.all(np.diff(chosen) > 0)
    assert (balanced[chosen] == 1).sum() == 12_500 and (balanced[chosen] == 0).sum() == negatives
    assert set(np.flatnonzero(balanced == 1)) <= set(chosen)


def test_imbalanced_is_seeded(balanced):
    a = imdb.imbalanced(balanced, 10, seed=1)
    np.testing.assert_array_equal(a, imdb.imbalanced(balanced, 10, seed=1))
    assert not np.array_equal(a, imdb.imbalanced(balanced, 10, seed=2))


@pytest.mark.parametrize("labels, ratio, message", [
    (np.repeat([0, 1], 100), 0, "integer >= 1"),
    (np.repeat([0, 1], 100), 2.5, "integer >= 1"),
    (np.repeat([0, 1], 100), 10.0, "integer >= 1"),
    (np.array([0, 1, 2]), 1, "0 \\(negative\\) and 1"),
    (np.array([1] * 100 + [0] * 5), 10, "need 10 negatives, 5 available"),
])
def test_imbalanced_errors(labels, ratio, message):
    with pytest.raises(ValueError, match=message):
        imdb.imbalanced(labels, ratio, seed=0)


def test_identity_by_content_not_by_packing(fabricated, tmp_path, monkeypatch):
    """An archive is the official data when its md5 is, or when its reviews'
    content digest is: another packing of the same reviews (other order,
    times, compression, a file left out) has the same digest; one changed
    review has another and is refused, naming both checks."""
    root, md5 = fabricated
    data = imdb.load(root, md5=md5)
    assert data.fabricated and data.identity()["copy"] == "fabricated" and len(data.digest) == 64
    repacked = tmp_path / "repacked"
    repacked.mkdir()
    members = _members(root / imdb.ARCHIVE)
    members.pop("aclImdb/imdbEr.txt")
    with gzip.open(repacked / imdb.REASSEMBLED, "wb", compresslevel=1) as gz, \
            tarfile.open(fileobj=gz, mode="w") as tar:
        for name in sorted(members, reverse=True):
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(members[name]), 12345
            tar.addfile(info, io.BytesIO(members[name]))
    again = imdb.load(repacked, md5=None)
    assert again.digest == data.digest and again.md5 != data.md5 and again.archive == imdb.REASSEMBLED
    # Not the official reviews: refused under the default check, naming both digests.
    with pytest.raises(imdb.CorruptArchiveError, match=f"content digest is {data.digest}, expected "
                                                       f"{imdb.REVIEWS_SHA256}"):
        imdb.load(repacked)
    # Were they the official reviews, the default check would take them, and
    # then hold them to the official sizes.
    monkeypatch.setattr(imdb, "REVIEWS_SHA256", data.digest)
    with pytest.raises(ValueError, match="expected 25000"):
        imdb.load(repacked)
    # One review changed: another digest.
    name = next(n for n in members if n.startswith("aclImdb/train/pos/"))
    members[name] = members[name] + b" Changed."
    _rewrite(repacked / imdb.REASSEMBLED, members)
    assert imdb.load(repacked, md5=None).digest != data.digest


def _rewrite(path, members):
    with gzip.open(path, "wb") as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_reviews_digest_is_the_documented_recipe():
    files = {"aclImdb/train/pos/1_9.txt": "b" * 64, "aclImdb/test/neg/0_1.txt": "a" * 64}
    expected = hashlib.sha256(("aclImdb/test/neg/0_1.txt\t" + "a" * 64 + "\n"
                               "aclImdb/train/pos/1_9.txt\t" + "b" * 64 + "\n").encode()).hexdigest()
    assert imdb.reviews_digest(files) == expected
