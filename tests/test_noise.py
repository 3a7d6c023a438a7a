"""dm.noise: exact counts, only other classes, seeding, kinds, bad input."""

import numpy as np
import pytest
import torch

from dm import noise


def labels(n=1000, c=10, seed=0):
    return np.random.default_rng(seed).integers(0, c, n)


@pytest.mark.parametrize("rate", [0.0, 0.2, 0.4, 0.6, 0.999])
def test_symmetric_flips_exactly_round_rate_n_to_other_classes(rate):
    clean = labels()
    noisy = noise.symmetric(clean, rate, 10, seed=1)
    changed = noisy != clean
    assert changed.sum() == round(rate * len(clean))
    assert noise.realised_rate(clean, noisy) == round(rate * len(clean)) / len(clean)
    assert noisy.min() >= 0 and noisy.max() < 10


def test_symmetric_targets_are_uniform_over_the_other_classes():
    clean = np.zeros(90_000, dtype=np.int64)
    noisy = noise.symmetric(clean, 0.5, 10, seed=0)
    counts = np.bincount(noisy[noisy != 0], minlength=10)[1:]
    assert counts.sum() == 45_000
    # Each of the 9 other classes gets 5000 in expectation; 5 sigma is about 350.
    assert np.all(np.abs(counts - 5000) < 350), counts


def test_binary_noise_flips_to_the_opposite_label():
    clean = labels(500, 2)
    noisy = noise.symmetric(clean, 0.3, 2, seed=3)
    flipped = noisy != clean
    assert np.all(noisy[flipped] == 1 - clean[flipped])


def test_seeded_and_deterministic_and_input_untouched():
    clean = labels()
    before = clean.copy()
    a, b = noise.symmetric(clean, 0.4, 10, seed=7), noise.symmetric(clean, 0.4, 10, seed=7)
    assert np.array_equal(a, b) and np.array_equal(clean, before)
    assert not np.array_equal(a, noise.symmetric(clean, 0.4, 10, seed=8))


def test_torch_in_torch_out_same_result():
    clean = labels()
    out = noise.symmetric(torch.as_tensor(clean), 0.4, 10, seed=7)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.int64
    assert np.array_equal(out.numpy(), noise.symmetric(clean, 0.4, 10, seed=7))
    assert noise.symmetric(clean.astype(np.int32), 0.4, 10, seed=7).dtype == np.int32


def test_transition_matrix_of_symmetric_noise():
    clean = np.repeat(np.arange(4), 1000)
    noisy = noise.symmetric(clean, 0.3, 4, seed=0)
    T = noise.transition_matrix(clean, noisy, 4)
    np.testing.assert_allclose(T.sum(1), 1.0)
    assert abs(np.trace(T) / 4 - 0.7) < 1e-12  # exactly 30 % of 4000 flipped
    off = T[~np.eye(4, dtype=bool)]
    assert np.all(np.abs(off - 0.1) < 0.03)
    T_empty = noise.transition_matrix(np.array([0, 0]), np.array([1, 0]), 3)
    np.testing.assert_array_equal(T_empty, [[0.5, 0.5, 0], [0, 0, 0], [0, 0, 0]])


@pytest.mark.parametrize("call, error, message", [
    (lambda: noise.symmetric(labels(), 1.0, 10, 0), ValueError, r"rate must lie in \[0, 1\), got 1.0"),
    (lambda: noise.symmetric(labels(), -0.1, 10, 0), ValueError, r"rate must lie in \[0, 1\), got -0.1"),
    (lambda: noise.symmetric(labels(), float("nan"), 10, 0), ValueError, "rate must be finite"),
    (lambda: noise.symmetric(labels(), 0.2, 5, 0), ValueError, r"labels must lie in \[0, 4\], found 9"),
    (lambda: noise.symmetric(np.array([0, -1]), 0.2, 5, 0), ValueError, "found -1"),
    (lambda: noise.symmetric(np.array([0.0, 1.0]), 0.2, 5, 0), TypeError, "integer class indices.*float64"),
    (lambda: noise.symmetric(torch.tensor([0.0, 1.0]), 0.2, 5, 0), TypeError, "integer class indices"),
    (lambda: noise.symmetric([0, 1], 0.2, 5, 0), TypeError, "NumPy array or a torch tensor, got list"),
    (lambda: noise.symmetric(np.zeros((2, 2), dtype=int), 0.2, 5, 0), ValueError, "1-D"),
    (lambda: noise.symmetric(labels(), 0.2, 1, 0), ValueError, "num_classes must be >= 2, got 1"),
    (lambda: noise.transition_matrix(np.array([0, 1]), np.array([0]), 2), ValueError, "same shape"),
])
def test_bad_input_is_named(call, error, message):
    with pytest.raises(error, match=message):
        call()
