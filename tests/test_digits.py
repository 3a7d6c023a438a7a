"""The selection protocol of `dm.experiments.digits` (chapter 7): fit on 80 % of the noisy
training data, choose on the clean 20 %, retrain on all of it, test once."""

import numpy as np
import pytest
import torch

import dm
from dm.experiments import digits
from dm.experiments.digits import Setting

torch.set_num_threads(1)

FAST = dict(steps=40, lr=0.05)
GRID = [Setting("DM", lam=0.0, beta=1.0), Setting("DM", lam=0.5, beta=8.0),
        Setting("DM", lam=2.0, beta=16.0)]
METHODS = {"CCE": [Setting("CCE")], "GCE": [Setting("GCE", gce_q=0.7)], "DM": GRID,
           "DM (lam > 0)": GRID[1:]}


@pytest.fixture(scope="module")
def noisy():
    return digits.load(noise_rate=0.4, seed=0)


@pytest.fixture(scope="module")
def outcome(noisy):
    return digits.select_and_retrain(noisy, METHODS, seed=0, **FAST)


def test_setting_builds_the_dm_losses():
    assert isinstance(Setting("CCE").make(), dm.CCE)
    gce = Setting("GCE", gce_q=0.7).make()
    assert isinstance(gce, dm.GCE) and gce.q == 0.7
    loss = Setting("DM", lam=0.5, beta=8.0).make()
    assert isinstance(loss, dm.DMLoss) and (loss.lam, loss.beta, loss.eps) == (0.5, 8.0, 1e-6)
    assert Setting("DM", lam=2.0, beta=1.0).psi == dm.weights.emphasis_mode(2.0) == 2 / 3
    assert Setting("CCE").psi is None
    with pytest.raises(ValueError, match="unknown method"):
        Setting("MAE").make()


def test_selection_split_is_a_seeded_partition():
    fit, val = digits.selection_split(1257, 0.2, seed=3)
    assert (len(fit), len(val)) == (1006, 251)
    assert sorted(torch.cat([fit, val]).tolist()) == list(range(1257))
    again = digits.selection_split(1257, 0.2, seed=3)
    assert torch.equal(fit, again[0]) and torch.equal(val, again[1])
    assert not torch.equal(val, digits.selection_split(1257, 0.2, seed=4)[1])
    with pytest.raises(ValueError):
        digits.selection_split(10, 1.0)


def test_train_many_is_train_for_each_loss(noisy):
    # Same initialisation, same batches: each stacked model is `train` with its
    # own loss, up to float rounding.
    settings = [Setting("CCE"), Setting("DM", lam=0.5, beta=8.0)]
    stacked = digits.train_many([s.make() for s in settings], noisy.x_train, noisy.y_train,
                                steps=50, lr=0.05, seed=2)
    for setting, model in zip(settings, stacked):
        alone = digits.train(setting.make(), noisy, steps=50, lr=0.05, seed=2, record_every=50)["model"]
        torch.testing.assert_close(model(noisy.x_test), alone(noisy.x_test), rtol=1e-4, atol=1e-4)
    # independent models, and training moved them away from the shared initialisation
    assert not torch.equal(stacked[0][0].weight, stacked[1][0].weight)
    assert not torch.equal(stacked[0][0].weight, digits.mlp(64, 2)[0].weight)


def test_selected_setting_is_the_first_argmax_of_clean_validation_accuracy(noisy, outcome):
    # Recompute the validation accuracies independently: fit on the 80 %, score
    # against the *clean* labels of the 20 %.
    fit, val = digits.selection_split(len(noisy.y_train), 0.2, seed=0)
    models = digits.train_many([s.make() for s in GRID], noisy.x_train[fit], noisy.y_train[fit],
                               seed=0, **FAST)
    expected = [digits.accuracy(m, noisy.x_train[val], noisy.y_train_clean[val]) for m in models]
    assert outcome["DM"]["val_accuracy"] == expected
    assert outcome["DM"]["selected"] == GRID[int(np.argmax(expected))]
    sub = outcome["DM (lam > 0)"]
    assert sub["val_accuracy"] == expected[1:]
    assert sub["selected"] == GRID[1 + int(np.argmax(expected[1:]))]
    # the clean labels matter: against the noisy ones the scores would differ
    noisy_scores = [digits.accuracy(m, noisy.x_train[val], noisy.y_train[val]) for m in models]
    assert noisy_scores != expected


def test_ties_go_to_the_first_setting_in_the_methods_order(noisy):
    # With beta = 0 every example weighs the same whatever lam is, so these two
    # settings train identically and tie exactly.
    a, b = Setting("DM", lam=0.0, beta=0.0), Setting("DM", lam=1.0, beta=0.0)
    for order in ([a, b], [b, a]):
        result = digits.select_and_retrain(noisy, {"DM": order}, seed=0, **FAST)["DM"]
        assert result["val_accuracy"][0] == result["val_accuracy"][1]
        assert result["selected"] == order[0]


def test_selection_never_reads_the_test_split(noisy, outcome):
    generator = torch.Generator().manual_seed(0)
    scrambled = noisy._replace(
        x_test=torch.randn(noisy.x_test.shape, generator=generator),
        y_test=noisy.y_test[torch.randperm(len(noisy.y_test), generator=generator)])
    other = digits.select_and_retrain(scrambled, METHODS, seed=0, **FAST)
    for name in METHODS:
        assert other[name]["val_accuracy"] == outcome[name]["val_accuracy"]
        assert other[name]["selected"] == outcome[name]["selected"]
    # ... while the test accuracy does come from the (here scrambled) test split
    assert other["DM"]["test_accuracy"] != outcome["DM"]["test_accuracy"]


def test_the_selected_setting_is_retrained_on_all_the_noisy_training_data(noisy, outcome):
    for name in ("CCE", "DM"):
        chosen = outcome[name]["selected"]
        (model,) = digits.train_many([chosen.make()], noisy.x_train, noisy.y_train, seed=0, **FAST)
        assert outcome[name]["test_accuracy"] == pytest.approx(
            digits.accuracy(model, noisy.x_test, noisy.y_test), abs=2 / len(noisy.y_test))
    # methods without a choice skip the selection runs
    assert outcome["CCE"]["val_accuracy"] is None and outcome["GCE"]["val_accuracy"] is None
    # memorisation is measured on the corrupted training labels
    fit = outcome["CCE"]
    assert 0 <= fit["train_accuracy_corrupted"] <= 1 and 0 <= fit["train_accuracy_intact"] <= 1


def test_select_and_retrain_is_deterministic(noisy, outcome):
    again = digits.select_and_retrain(noisy, METHODS, seed=0, **FAST)
    assert again == outcome
    different_seed = digits.select_and_retrain(noisy, METHODS, seed=1, **FAST)
    assert different_seed["DM"]["val_accuracy"] != outcome["DM"]["val_accuracy"]


def test_a_method_needs_a_candidate(noisy):
    with pytest.raises(ValueError, match="at least one candidate"):
        digits.select_and_retrain(noisy, {"DM": []}, seed=0, **FAST)


def testfit_measures_split_the_training_set_by_its_corrupted_labels(noisy):
    model = digits.mlp(64, 0)
    measured = digits.fit_measures(model, noisy)
    predicted = model(noisy.x_train).argmax(1)
    corrupted = noisy.y_train != noisy.y_train_clean
    share = corrupted.float().mean().item()
    assert measured["train_accuracy_corrupted"] == (predicted == noisy.y_train)[corrupted].float().mean().item()
    # the whole set against the noisy labels is the parts' average, weighted by their sizes
    assert measured["train_accuracy_noisy_labels"] == pytest.approx(
        share * measured["train_accuracy_corrupted"] + (1 - share) * measured["train_accuracy_intact"])
    assert measured["train_accuracy_clean_labels"] == (predicted == noisy.y_train_clean).float().mean().item()


def test_train_pack_gives_each_run_its_own_data_seed_and_loss():
    # Three runs on different data sets and seeds, trained together, each equal
    # to `train` alone with the same data, seed, loss and weight decay.
    tasks = [(digits.load(0.2, seed=1), 1, Setting("CCE")), (digits.load(0.4, seed=2), 2, Setting("GCE", gce_q=0.7)),
             (digits.load(0.4, seed=2), 5, Setting("DM", lam=0.5, beta=8.0))]
    runs = [digits.Learner(s.make(), d.x_train, d.y_train, seed) for d, seed, s in tasks]
    together = digits.train_pack(runs, steps=60, lr=0.05, weight_decay=5e-4)
    for (data, seed, setting), model in zip(tasks, together):
        alone = digits.train(setting.make(), data, steps=60, lr=0.05, weight_decay=5e-4, seed=seed,
                             record_every=60)["model"]
        torch.testing.assert_close(model(data.x_test), alone(data.x_test), rtol=1e-4, atol=1e-4)
    # weight decay is applied: without it the weights differ
    (plain,) = digits.train_pack(runs[:1], steps=60, lr=0.05)
    assert not torch.allclose(plain[0].weight, together[0][0].weight)
    with pytest.raises(ValueError, match="same number of examples"):
        digits.train_pack([runs[0], runs[0]._replace(x=runs[0].x[:-1], y=runs[0].y[:-1])], steps=1)


def test_select_and_retrain_many_is_select_and_retrain_per_task(outcome):
    tasks = {(0.4, 0): (digits.load(noise_rate=0.4, seed=0), 0), (0.2, 3): (digits.load(noise_rate=0.2, seed=3), 3)}
    together = digits.select_and_retrain_many(tasks, METHODS, **FAST)
    alone = digits.select_and_retrain(tasks[0.2, 3][0], METHODS, seed=3, **FAST)
    for key, result in ((0.4, 0), outcome), ((0.2, 3), alone):
        for name in METHODS:
            assert together[key][name]["selected"] == result[name]["selected"]
            # float rounding of the batched products may move an accuracy by an image
            if result[name]["val_accuracy"] is not None:
                np.testing.assert_allclose(together[key][name]["val_accuracy"], result[name]["val_accuracy"], atol=2 / 251)
            assert together[key][name]["test_accuracy"] == pytest.approx(result[name]["test_accuracy"], abs=2 / 540)


def test_select_and_retrain_many_in_two_processes_gives_the_numbers_of_one():
    tasks = {(0.4, 0): (digits.load(noise_rate=0.4, seed=0), 0), (0.2, 1): (digits.load(noise_rate=0.2, seed=1), 1),
             (0.6, 2): (digits.load(noise_rate=0.6, seed=2), 2)}
    one = digits.select_and_retrain_many(tasks, METHODS, **FAST)
    two = digits.select_and_retrain_many(tasks, METHODS, workers=2, **FAST)
    assert list(two) == list(tasks) and two == one
    with pytest.raises(ValueError, match="workers must be a positive integer, got 0"):
        digits.select_and_retrain_many(tasks, METHODS, workers=0, **FAST)


def test_measure_is_what_train_records(noisy):
    run = digits.train(dm.CCE(), noisy, steps=20, lr=0.05, record_every=20)
    measured = digits.measure(run["model"], noisy)
    assert set(measured) == set(digits.HISTORY)
    assert all(run[name][-1] == measured[name] or (name == "val_accuracy" and np.isnan(measured[name]))
               for name in digits.HISTORY)
