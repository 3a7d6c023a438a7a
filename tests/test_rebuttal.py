"""The helpers chapter 11 (the rebuttal, checked) adds to `dm.experiments.digits`: linear
models (``hidden=0``) and the probabilities of the labels recorded during
training (`dm.experiments.digits.label_probabilities`)."""

import pytest
import torch

from dm.experiments import digits
from dm.experiments.digits import Setting

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def noisy():
    return digits.load(noise_rate=0.4, seed=0)


def test_hidden_zero_is_a_linear_model():
    model = digits.mlp(0, seed=3)
    assert len(model) == 1 and isinstance(model[0], torch.nn.Linear)
    assert (model[0].in_features, model[0].out_features) == (64, 10)
    torch.testing.assert_close(model[0].weight, digits.mlp(0, seed=3)[0].weight)
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="hidden"):
            digits.mlp(bad)


def test_train_pack_trains_linear_models_as_train_does(noisy):
    settings = [Setting("CCE"), Setting("DM", lam=0.5, beta=8.0)]
    runs = [digits.Learner(s.make(), noisy.x_train, noisy.y_train, 4) for s in settings]
    together = digits.train_pack(runs, steps=50, lr=0.05, hidden=0)
    for setting, model in zip(settings, together):
        assert len(model) == 1
        alone = digits.train(setting.make(), noisy, steps=50, lr=0.05, hidden=0, seed=4, record_every=50)["model"]
        torch.testing.assert_close(model(noisy.x_test), alone(noisy.x_test), rtol=1e-4, atol=1e-4)


def test_label_probabilities_are_the_models_p_of_the_noisy_labels(noisy):
    other = digits.load(noise_rate=0.2, seed=1)
    runs = [digits.Learner(Setting("CCE").make(), noisy.x_train, noisy.y_train, 0),
            digits.Learner(Setting("GCE", gce_q=0.7).make(), other.x_train, other.y_train, 1)]
    models, p = digits.label_probabilities(runs, record_at=(0, 10, 30), lr=0.05)
    assert p.shape == (3, 2, len(noisy.y_train)) and p.dtype == torch.float64
    assert bool(((p > 0) & (p < 1)).all())
    # recording does not change training: the models are train_pack'
    plain = digits.train_pack(runs, steps=30, lr=0.05)
    for k, (run, model) in enumerate(zip(runs, models)):
        torch.testing.assert_close(model(run.x), plain[k](run.x))
        # the last record is the final model's p of the labels trained on
        expected = torch.softmax(model(run.x).double(), -1).gather(1, run.y[:, None])[:, 0]
        torch.testing.assert_close(p[-1, k], expected, rtol=1e-5, atol=1e-6)
        # step 0 is the initialisation; step 10 is a 10-step train_pack
        at_init = torch.softmax(digits.mlp(64, run.seed)(run.x).double(), -1).gather(1, run.y[:, None])[:, 0]
        torch.testing.assert_close(p[0, k], at_init, rtol=1e-5, atol=1e-6)
        (ten,) = digits.train_pack([run], steps=10, lr=0.05)
        at_ten = torch.softmax(ten(run.x).double(), -1).gather(1, run.y[:, None])[:, 0]
        torch.testing.assert_close(p[1, k], at_ten, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="record_at"):
        digits.label_probabilities(runs, record_at=(5, 40), steps=30)


def test_bound_adds_a_non_linear_last_layer_and_changes_no_initialisation(noisy):
    for hidden in (64, 0):
        plain, bounded = digits.mlp(hidden, seed=2), digits.mlp(hidden, seed=2, bound=5.0)
        assert isinstance(bounded[-1], digits.Bounded) and not isinstance(plain[-1], digits.Bounded)
        for (name, a), (other, b) in zip(plain.named_parameters(), bounded.named_parameters()):
            assert name == other
            torch.testing.assert_close(a, b)
        z = plain(noisy.x_test)
        torch.testing.assert_close(bounded(noisy.x_test), 5 * torch.tanh(z / 5))
    for bad in (0, -1.0, float("inf"), True, "5"):
        with pytest.raises(ValueError, match="bound"):
            digits.mlp(64, bound=bad)


def test_train_pack_trains_bounded_models_as_train_does(noisy):
    settings = [Setting("CCE"), Setting("DM", lam=0.5, beta=8.0)]
    runs = [digits.Learner(s.make(), noisy.x_train, noisy.y_train, 4) for s in settings]
    together = digits.train_pack(runs, steps=100, lr=0.05, bound=2.0)
    for setting, model in zip(settings, together):
        assert isinstance(model[-1], digits.Bounded)
        logits = model(noisy.x_test)
        assert float(logits.abs().max()) <= 2.0  # tanh rounds to 1 in float32 when saturated
        alone = digits.train(setting.make(), noisy, steps=100, lr=0.05, bound=2.0, seed=4, record_every=100)["model"]
        torch.testing.assert_close(logits, alone(noisy.x_test), rtol=1e-4, atol=1e-4)
    # the bound changes training: the same runs without it end elsewhere
    unbounded = digits.train_pack(runs, steps=100, lr=0.05)
    assert not torch.allclose(unbounded[0](noisy.x_test), together[0](noisy.x_test), atol=1e-2)
