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


# --- asymmetric noise -------------------------------------------------------

# CIFAR-100's superclasses as the data set's web page lists them (coarse name:
# its five fine classes), written independently of dm's numeric table.
SUPERCLASSES = {
    "aquatic_mammals": "beaver dolphin otter seal whale",
    "fish": "aquarium_fish flatfish ray shark trout",
    "flowers": "orchid poppy rose sunflower tulip",
    "food_containers": "bottle bowl can cup plate",
    "fruit_and_vegetables": "apple mushroom orange pear sweet_pepper",
    "household_electrical_devices": "clock keyboard lamp telephone television",
    "household_furniture": "bed chair couch table wardrobe",
    "insects": "bee beetle butterfly caterpillar cockroach",
    "large_carnivores": "bear leopard lion tiger wolf",
    "large_man-made_outdoor_things": "bridge castle house road skyscraper",
    "large_natural_outdoor_scenes": "cloud forest mountain plain sea",
    "large_omnivores_and_herbivores": "camel cattle chimpanzee elephant kangaroo",
    "medium_mammals": "fox porcupine possum raccoon skunk",
    "non-insect_invertebrates": "crab lobster snail spider worm",
    "people": "baby boy girl man woman",
    "reptiles": "crocodile dinosaur lizard snake turtle",
    "small_mammals": "hamster mouse rabbit shrew squirrel",
    "trees": "maple_tree oak_tree palm_tree pine_tree willow_tree",
    "vehicles_1": "bicycle bus motorcycle pickup_truck train",
    "vehicles_2": "lawn_mower rocket streetcar tank tractor",
}


def test_cifar100_fine_to_coarse_table_matches_the_superclass_lists():
    assert list(noise.CIFAR100_FINE) == sorted(noise.CIFAR100_FINE) and len(noise.CIFAR100_FINE) == 100
    assert list(noise.CIFAR100_COARSE) == sorted(SUPERCLASSES)
    table = np.asarray(noise.CIFAR100_FINE_TO_COARSE)
    assert table.shape == (100,) and np.all(np.bincount(table, minlength=20) == 5)
    for coarse, fines in SUPERCLASSES.items():
        for fine in fines.split():
            assert noise.CIFAR100_COARSE[table[noise.CIFAR100_FINE.index(fine)]] == coarse, fine


def cifar100_labels(per_class=500):
    return np.repeat(np.arange(100), per_class)


@pytest.mark.parametrize("rate", [0.2, 0.3, 0.4])
def test_asymmetric_cifar100_swaps_two_subclasses_per_superclass(rate):
    clean = cifar100_labels()
    noisy = noise.asymmetric_cifar100(clean, rate, seed=123)
    table = np.asarray(noise.CIFAR100_FINE_TO_COARSE)
    changed = noisy != clean
    # Flips stay inside the superclass, and touch exactly 40 classes in 20 swapped pairs.
    assert np.all(table[noisy] == table[clean])
    sources = np.unique(clean[changed])
    assert sources.size == 40
    assert np.all(np.bincount(table[sources], minlength=20) == 2)
    for s in sources:
        targets = np.unique(noisy[changed & (clean == s)])
        assert targets.size == 1
        t = targets[0]
        assert np.all(noisy[changed & (clean == t)] == s)  # a swap, not a cycle
        assert (changed & (clean == s)).sum() == round(rate * 500)
    assert noise.realised_rate(clean, noisy) == pytest.approx(0.4 * round(rate * 500) / 500)


def test_asymmetric_cifar100_bernoulli_option_is_close_to_rate():
    clean = cifar100_labels()
    noisy = noise.asymmetric_cifar100(clean, 0.4, seed=1, exact=False)
    per_class = [np.mean(noisy[clean == s] != s) for s in np.unique(clean[noisy != clean])]
    assert len(per_class) == 40
    assert abs(np.mean(per_class) - 0.4) < 0.02


def test_asymmetric_cifar100_seeded_and_pairs_vary_with_seed():
    clean = cifar100_labels(20)
    a = noise.asymmetric_cifar100(clean, 0.4, seed=5)
    assert np.array_equal(a, noise.asymmetric_cifar100(clean, 0.4, seed=5))
    b = noise.asymmetric_cifar100(clean, 0.4, seed=6)
    assert set(np.unique(clean[a != clean])) != set(np.unique(clean[b != clean]))


def test_asymmetric_cifar10_mapping():
    clean = np.repeat(np.arange(10), 1000)
    noisy = noise.asymmetric_cifar10(torch.as_tensor(clean), 0.3, seed=0).numpy()
    T = noise.transition_matrix(clean, noisy, 10)
    names = noise.CIFAR10_CLASSES
    for src, dst in [("truck", "automobile"), ("bird", "airplane"), ("deer", "horse"), ("cat", "dog"), ("dog", "cat")]:
        i, j = names.index(src), names.index(dst)
        assert T[i, j] == pytest.approx(0.3) and T[i, i] == pytest.approx(0.7)
    for name in ("airplane", "automobile", "frog", "horse", "ship"):
        i = names.index(name)
        assert T[i, i] == 1.0
    assert noise.realised_rate(clean, noisy) == pytest.approx(0.15)


@pytest.mark.parametrize("fn, n", [(noise.asymmetric_cifar10, 10), (noise.asymmetric_cifar100, 100)])
def test_asymmetric_bad_input(fn, n):
    good = np.arange(n)
    for rate in (-0.1, 1.0, float("nan")):
        with pytest.raises(ValueError, match="rate"):
            fn(good, rate, seed=0)
    with pytest.raises(ValueError, match=f"labels must lie in \\[0, {n - 1}\\], found {n}"):
        fn(np.array([0, n]), 0.2, seed=0)
    with pytest.raises(TypeError, match="integer"):
        fn(good.astype(float), 0.2, seed=0)
    assert np.array_equal(fn(good, 0.0, seed=0), good)


def test_symmetric_bernoulli_option():
    clean = labels(20_000)
    noisy = noise.symmetric(clean, 0.4, 10, seed=2, exact=False)
    rate = noise.realised_rate(clean, noisy)
    assert rate != 0.4 and abs(rate - 0.4) < 0.015  # 4 sigma is about 0.014
    assert np.all(noisy[noisy != clean] != clean[noisy != clean])
    assert np.array_equal(noisy, noise.symmetric(clean, 0.4, 10, seed=2, exact=False))
