"""dm.data.paragraph_vectors: iclr15's preprocessing and settings, the cache key,
the cache, resuming an interrupted training, and that the vectors carry the
reviews' sentiment."""

import dataclasses

import numpy as np
import pytest

from dm.data import imdb
from dm.data import paragraph_vectors as pv

FAST = pv.Settings(epochs=4)


@pytest.fixture(scope="module")
def reviews(tmp_path_factory):
    root = tmp_path_factory.mktemp("aclimdb")
    md5 = imdb.fabricate(root, n_train=200, n_test=100, n_unsup=50, seed=1)
    return imdb.load(root, md5=md5, progress=False)


def test_normalize_text_is_iclr15s_sed():
    # scripts/data.sh: tolower; ' . ' for '.'; '<br />' removed; ' " ', ' , ', ' ( ', ' ) ',
    # ' ! ', ' ? ', ' ; ', ' : ' around each; apostrophes and hyphens stay in the word.
    text = 'Great MOVIE.<br /><br />I "loved" it, (really)! Why? Yes; no: don\'t re-watch'
    assert pv.tokens(text) == [
        "great", "movie", ".", "i", '"', "loved", '"', "it", ",", "(", "really", ")", "!",
        "why", "?", "yes", ";", "no", ":", "don't", "re-watch"]
    assert pv.tokens("Wow...") == ["wow", ".", ".", "."]


def test_settings_are_iclr15s_paragraph_sh():
    s = pv.ICLR15
    # -cbow 0 -size 100 -window 10 -negative 5 -hs 1 -sample 1e-3 -iter 20 -min-count 1 -sentence-vectors 1
    assert (s.vector_size, s.window, s.negative, s.hs, s.sample, s.epochs, s.min_count) == \
        (100, 10, 5, 1, 1e-3, 20, 1)
    assert s.dbow_words is True
    assert s.alpha == 0.025 and s.min_alpha == pytest.approx(0.025e-4)


def test_cache_key_changes_with_every_setting_and_the_data():
    md5 = "0" * 64   # the reviews' content digest (a sha256)
    key = pv.cache_key(pv.ICLR15, md5)
    assert key == pv.cache_key(pv.Settings(), md5)
    assert pv.cache_key(pv.ICLR15, "1" * 64) != key
    for field in dataclasses.fields(pv.Settings):
        value = getattr(pv.ICLR15, field.name)
        changed = (not value) if isinstance(value, bool) else value * 2 + 1
        assert pv.cache_key(dataclasses.replace(pv.ICLR15, **{field.name: changed}), md5) != key, field.name
    with pytest.raises(ValueError, match="64 hex digits, got 'abc'"):
        pv.cache_key(pv.ICLR15, "abc")
    with pytest.raises(ValueError, match="64 hex digits"):   # an archive's md5 is not the reviews' identity
        pv.cache_key(pv.ICLR15, "0" * 32)
    with pytest.raises(TypeError, match="Settings"):
        pv.cache_key({"vector_size": 100}, md5)


def test_vectors_are_cached_and_a_rerun_does_not_train(reviews, tmp_path, monkeypatch):
    first = pv.paragraph_vectors(reviews, FAST, tmp_path, workers=1, progress=False)
    assert first.train.shape == (200, 100) and first.test.shape == (100, 100) and first.unsup.shape == (50, 100)
    assert first.train.dtype == np.float32 and np.isfinite(first.train).all()
    assert first.key == pv.cache_key(FAST, reviews.digest)
    assert first.meta["reviews_sha256"] == reviews.digest and first.meta["fabricated_data"] is True
    assert first.meta["data"]["copy"] == "fabricated"
    assert len(first.meta["epoch_seconds"]) == 4 and first.meta["vocabulary_seconds"] >= 0
    assert first.meta["settings"]["epochs"] == 4 and first.meta["gensim"]
    assert [p.name for p in tmp_path.iterdir()] == [f"pv-dbow-{first.key}.npz"]

    def no_training(*args, **kwargs):
        raise AssertionError("trained again despite the cache")

    monkeypatch.setattr(pv, "_train", no_training)
    again = pv.paragraph_vectors(reviews, FAST, tmp_path, workers=1, progress=False)
    assert again.key == first.key and np.array_equal(again.train, first.train)
    assert again.meta == first.meta
    with pytest.raises(AssertionError, match="trained again"):  # another setting: not the stale file
        pv.paragraph_vectors(reviews, dataclasses.replace(FAST, window=5), tmp_path, progress=False)


def test_an_interrupted_training_resumes_to_the_same_vectors(reviews, tmp_path):
    whole = pv.paragraph_vectors(reviews, FAST, tmp_path / "a", workers=1, progress=False)
    assert pv.paragraph_vectors(reviews, FAST, tmp_path / "b", workers=1, progress=False,
                                stop_after=2) is None
    assert [p.suffix for p in (tmp_path / "b").iterdir()] == [".partial"]
    resumed = pv.paragraph_vectors(reviews, FAST, tmp_path / "b", workers=1, progress=False)
    assert np.array_equal(resumed.train, whole.train) and np.array_equal(resumed.unsup, whole.unsup)
    assert [p.suffix for p in (tmp_path / "b").iterdir()] == [".npz"]


def test_vectors_carry_the_sentiment(reviews, tmp_path):
    # iclr15's check (logistic regression, train -> test) on the fabricated
    # reviews, whose words lean positive or negative: well above chance.
    # With iclr15's 20 epochs (4 are too few for 350 short reviews: 0.66).
    features = pv.paragraph_vectors(reviews, pv.ICLR15, tmp_path, workers=1, progress=False)
    accuracy = pv.logistic_regression_accuracy(features, reviews)
    assert accuracy >= 0.75, accuracy
