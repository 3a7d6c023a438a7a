"""dm.losses: gradients against autograd and finite differences, DN's and DM's
designed direction and magnitude, the ends p -> 0 and p -> 1 in low precision,
bad input, autocast and torch.compile."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import dm
from dm import weights as W

torch.set_num_threads(2)


def batch(b=7, c=5, dtype=torch.float64, seed=0, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    z = (scale * torch.randn(b, c, generator=g, dtype=torch.float64)).to(dtype).requires_grad_()
    y = torch.randint(0, c, (b,), generator=g)
    return z, y


def per_example_grad(loss, z, y):
    """Gradient of the summed per-example terms: each row is that example's gradient."""
    (g,) = torch.autograd.grad(loss(z, y).sum(), z)
    return g


def label_prob(z, y):
    return torch.softmax(z.detach().double(), 1).gather(1, y[:, None]).squeeze(1)


# Independent textbook implementations, differentiated by autograd.
TEXTBOOK = {
    "CCE": (dm.CCE(reduction="sum"), lambda z, y: F.cross_entropy(z, y, reduction="sum")),
    "MAE": (dm.MAE(reduction="sum"), lambda z, y: (1 - torch.softmax(z, 1).gather(1, y[:, None])).sum()),
    "MSE": (dm.MSE(reduction="sum"), lambda z, y: ((1 - torch.softmax(z, 1).gather(1, y[:, None])) ** 2).sum()),
    "GCE": (dm.GCE(0.7, reduction="sum"),
            lambda z, y: ((1 - torch.softmax(z, 1).gather(1, y[:, None]) ** 0.7) / 0.7).sum()),
    "SL": (dm.SL(6.0, 0.1, A=-4.0, reduction="sum"),
           lambda z, y: (6.0 * F.cross_entropy(z, y, reduction="none")
                         + 0.1 * 4.0 * (1 - torch.softmax(z, 1).gather(1, y[:, None]).squeeze(1))).sum()),
}
CLOSED_FORM = {"CCE": W.cce, "MAE": W.mae, "MSE": W.mse,
               "GCE": lambda p: W.gce(p, 0.7), "SL": lambda p: W.sl(p, 6.0, 0.1, -4.0)}


@pytest.mark.parametrize("name", TEXTBOOK)
def test_value_and_gradient_match_textbook_autograd(name):
    loss, textbook = TEXTBOOK[name]
    z, y = batch()
    value, (grad,) = loss(z, y), torch.autograd.grad(loss(z, y), z)
    ref_value, (ref_grad,) = textbook(z, y), torch.autograd.grad(textbook(z, y), z)
    torch.testing.assert_close(value, ref_value, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", TEXTBOOK)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_gradient_matches_float64_finite_differences(name, reduction):
    # The value and the gradient are computed separately in dm.losses (the
    # gradient from the closed-form weight), so this checks one against the other.
    loss = type(TEXTBOOK[name][0])(**_args(TEXTBOOK[name][0]), reduction=reduction)
    z, y = batch(b=4, c=3)
    assert torch.autograd.gradcheck(lambda z: loss(z, y), (z,), eps=1e-6, atol=1e-8, rtol=1e-6)


def _args(loss):
    return {k: getattr(loss, k) for k in ("q", "alpha", "beta", "A") if hasattr(loss, k)}


@pytest.mark.parametrize("name", TEXTBOOK)
def test_gradient_is_weight_times_cce_direction(name):
    loss = TEXTBOOK[name][0]
    z, y = batch(b=16, c=6)
    g = per_example_grad(loss, z, y)
    direction = torch.softmax(z.detach(), 1) - F.one_hot(y, 6).double()
    p = label_prob(z, y)
    # Parallel to CCE's direction with a non-negative factor ...
    factor = (g * direction).sum(1) / (direction * direction).sum(1)
    torch.testing.assert_close(g, factor[:, None] * direction, rtol=1e-10, atol=1e-13)
    assert (factor >= 0).all()
    # ... and of L1 norm equal to the closed-form weight.
    torch.testing.assert_close(g.abs().sum(1), CLOSED_FORM[name](p), rtol=1e-10, atol=1e-13)


def test_cce_is_torch_cross_entropy_in_float32():
    z, y = batch(b=64, c=100, dtype=torch.float32, scale=5.0)
    torch.testing.assert_close(dm.CCE()(z, y), F.cross_entropy(z, y))
    torch.testing.assert_close(torch.autograd.grad(dm.CCE()(z, y), z)[0],
                               torch.autograd.grad(F.cross_entropy(z, y), z)[0])


@pytest.mark.parametrize("inner", [dm.CCE(), dm.MAE(), dm.MSE(), dm.GCE(0.5), dm.SL(0.1, 1.0)])
def test_dn_normalises_the_batch_and_keeps_directions(inner):
    z, y = batch(b=10, c=4, seed=3)
    g_dn = per_example_grad(dm.DN(inner), z, y)
    g_plain = per_example_grad(type(inner)(**_args(inner), reduction="sum"), z, y)
    norms = g_plain.abs().sum(1)
    # The batch's gradient L1 norms sum to one ...
    torch.testing.assert_close(g_dn.abs().sum(), torch.tensor(1.0, dtype=torch.float64))
    # ... each example's gradient is its loss gradient divided by the batch's total weight.
    torch.testing.assert_close(g_dn, g_plain / norms.sum(), rtol=1e-10, atol=1e-14)
    # The value logged is the wrapped loss's batch mean.
    torch.testing.assert_close(dm.DN(inner)(z, y), type(inner)(**_args(inner))(z, y))


def test_dn_is_invariant_to_the_weight_scale():
    # Textbook MAE ||p - y||_1 = 2(1 - p) is twice the paper's: same DN gradient.
    z, y = batch()
    mae_dn = per_example_grad(dm.DN(dm.MAE()), z, y)
    sl_pure_rce = per_example_grad(dm.DN(dm.SL(0.0, 3.0, A=-7.0)), z, y)  # RCE = -A * MAE
    torch.testing.assert_close(mae_dn, sl_pure_rce)


def test_dn_with_all_weights_zero_gives_zero_gradient_not_nan():
    z = torch.tensor([[200.0, 0.0], [0.0, 200.0]], requires_grad=True)
    y = torch.tensor([0, 1])  # p == 1 exactly in float32: MAE's weights underflow to 0
    (g,) = torch.autograd.grad(dm.DN(dm.MAE())(z, y), z)
    assert torch.isfinite(g).all()


@pytest.mark.parametrize("lam, beta", [(0.0, 2.0), (0.5, 8.0), (1.0, 16.0), (2.0, 24.0), (0.0, -0.52), (0.3, 6.5)])
@pytest.mark.parametrize("eps", [0.0, 1e-6, 0.1])
def test_dm_gradient_has_designed_direction_and_magnitude(lam, beta, eps):
    z, y = batch(b=32, c=10, seed=1, scale=3.0)
    g = per_example_grad(dm.DMLoss(lam, beta, eps=eps), z, y)
    p = label_prob(z, y)
    w = W.dm(p, lam, beta)
    expected_norm = w / w.sum() * 2 * (1 - p) / (2 * (1 - p) + eps)
    direction = torch.softmax(z.detach(), 1) - F.one_hot(y, 10).double()
    expected = (expected_norm / direction.abs().sum(1))[:, None] * direction
    torch.testing.assert_close(g, expected, rtol=1e-10, atol=1e-15)
    if eps == 0:
        torch.testing.assert_close(g.abs().sum(), torch.tensor(1.0, dtype=torch.float64))


def test_dm_value_is_the_dm_weighted_cross_entropy():
    z, y = batch(b=32, c=10, seed=2)
    p = label_prob(z, y)
    w = W.dm(p, 0.5, 8.0)
    expected = (w * -torch.log(p)).sum() / w.sum()
    torch.testing.assert_close(dm.DMLoss(0.5, 8.0)(z, y), expected)
    terms = dm.DMLoss(0.5, 8.0, reduction="none")(z, y)
    assert terms.shape == (32,)
    torch.testing.assert_close(terms.sum(), expected)
    torch.testing.assert_close(per_example_grad(dm.DMLoss(0.5, 8.0, reduction="none"), z, y),
                               per_example_grad(dm.DMLoss(0.5, 8.0), z, y))


def test_dm_with_beta_zero_weights_every_example_alike():
    # The paper's "DM (beta = 0)" row: CCE's direction at magnitude 1/B for every example.
    z, y = batch(b=12, c=5, seed=4)
    g = per_example_grad(dm.DMLoss(0.7, 0.0, eps=0.0), z, y)
    torch.testing.assert_close(g.abs().sum(1), torch.full((12,), 1 / 12, dtype=torch.float64))


def test_dm_large_beta_does_not_overflow():
    z, y = batch(b=8, c=3, dtype=torch.float32, seed=5)
    g = per_example_grad(dm.DMLoss(0.5, 500.0), z, y)
    assert torch.isfinite(g).all() and math.isclose(float(g.abs().sum()), 1.0, rel_tol=1e-4)


EXTREME = torch.tensor([[60.0, 0, 0, 0], [-60.0, 0, 0, 0], [1e4, 0, 0, 0], [0.0, 0, 0, 0], [30.0, -30, 0, 5]])
TARGET = torch.zeros(5, dtype=torch.int64)
ALL_LOSSES = [dm.CCE(), dm.MAE(), dm.MSE(), dm.GCE(0.7), dm.SL(0.1, 1.0), dm.DN(dm.CCE()), dm.DN(dm.MAE()),
              dm.DMLoss(0.5, 8.0), dm.DMLoss(0.5, 8.0, eps=0.0), dm.DMLoss(0.0, -0.5)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("loss", ALL_LOSSES, ids=repr)
def test_extreme_logits_give_finite_values_and_gradients(loss, dtype):
    z = EXTREME.to(dtype).requires_grad_()
    value = loss(z, TARGET)
    (g,) = torch.autograd.grad(value, z)
    assert value.dtype == torch.float32 and g.dtype == dtype
    assert torch.isfinite(value) and torch.isfinite(g).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_dm_exact_as_p_goes_to_one(dtype):
    # With p this close to 1, 1 - softmax(z)_y is 0 in float32 and bfloat16.
    z = torch.tensor([[1e4, 0.0, 0.0], [40.0, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=dtype, requires_grad=True)
    y = torch.zeros(3, dtype=torch.int64)
    assert float(1 - torch.softmax(z.detach().float(), 1)[1, 0]) == 0.0
    g_exact = per_example_grad(dm.DMLoss(0.5, 8.0, eps=0.0), z, y).float()
    # eps = 0: magnitude is the normalised weight w_i / sum_j w_j even where 1 - p underflows,
    # split half on the labelled logit, half over the others.
    w = torch.tensor([1.0, 1.0, math.exp(8.0 * (1 / 3) ** 0.5 * (2 / 3))])
    torch.testing.assert_close(g_exact.abs().sum(1), w / w.sum(), rtol=1e-2, atol=0)
    torch.testing.assert_close(g_exact[:, 0], -g_exact[:, 1:].sum(1), rtol=1e-2, atol=0)
    # The default eps: the push on fitted examples fades to nothing.
    g_default = per_example_grad(dm.DMLoss(0.5, 8.0), z, y).float()
    assert g_default[0].abs().sum() == 0 and g_default[1].abs().sum() < 1e-7
    torch.testing.assert_close(g_default[2], g_exact[2], rtol=1e-2, atol=1e-6)


def test_cce_gradient_keeps_its_labelled_component_near_p_one():
    z = torch.tensor([[20.0, 0.0, 0.0]], requires_grad=True)
    y = torch.tensor([0])
    (g,) = torch.autograd.grad(dm.CCE()(z, y), z)
    # Exactly -(1 - p) = -2 exp(-20) / (1 + 2 exp(-20)), not the 0 that p - 1 rounds to.
    assert g[0, 0] < 0
    torch.testing.assert_close(g[0, 0], torch.tensor(-2 * math.exp(-20)), rtol=1e-5, atol=0)
    torch.testing.assert_close(g.sum(), torch.tensor(0.0), rtol=0, atol=1e-15)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_matches_float32(dtype):
    torch.manual_seed(0)
    model = torch.nn.Linear(20, 10)
    x, y = torch.randn(64, 20), torch.randint(0, 10, (64,))
    for loss in (dm.CCE(), dm.GCE(0.7), dm.DMLoss(0.5, 8.0), dm.DN(dm.MSE())):
        model.zero_grad()
        loss(model(x), y).backward()
        reference = model.weight.grad.clone()
        model.zero_grad()
        with torch.autocast("cpu", dtype=dtype):
            logits = model(x)
            value = loss(logits, y)
        assert logits.dtype == dtype and value.dtype == torch.float32
        value.backward()
        assert model.weight.grad.dtype == torch.float32
        torch.testing.assert_close(model.weight.grad, reference, rtol=0.05, atol=2e-3)


@pytest.mark.parametrize("loss", [dm.CCE(check_inputs=False), dm.DN(dm.GCE(0.7, check_inputs=False)),
                                  dm.DMLoss(0.5, 8.0, check_inputs=False)], ids=repr)
def test_compiles_as_one_graph_without_input_checks(loss):
    # fullgraph=True fails on any graph break, e.g. a host sync reading values.
    z, y = batch(b=16, c=10, dtype=torch.float32, seed=6)
    compiled = torch.compile(lambda z, y: loss(z, y), backend="aot_eager", fullgraph=True)
    value = compiled(z, y)
    (g,) = torch.autograd.grad(value, z)
    torch.testing.assert_close(value, loss(z, y))
    torch.testing.assert_close(g, torch.autograd.grad(loss(z, y), z)[0])


def test_input_checks_break_the_graph():
    compiled = torch.compile(lambda z, y: dm.CCE()(z, y), backend="aot_eager", fullgraph=True)
    z, y = batch(dtype=torch.float32)
    with pytest.raises(Exception):
        compiled(z, y)


GOOD_Z, GOOD_Y = torch.zeros(3, 4), torch.tensor([0, 1, 3])


@pytest.mark.parametrize("logits, targets, error, message", [
    (torch.zeros(3, 4, 1), GOOD_Y, ValueError, r"logits must be 2-D .* got shape \(3, 4, 1\)"),
    (torch.zeros(4), GOOD_Y, ValueError, "logits must be 2-D"),
    (torch.tensor([[0.0, float("nan")], [0.0, 0.0], [0, 0]]), GOOD_Y.clamp(max=1), ValueError,
     "logits must be finite, found nan"),
    (torch.tensor([[0.0, float("inf")], [0.0, 0.0], [0, 0]]), GOOD_Y.clamp(max=1), ValueError,
     "logits must be finite, found inf"),
    (torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64), ValueError, "empty batch"),
    (torch.zeros(3, 1), torch.zeros(3, dtype=torch.int64), ValueError, "at least 2 classes"),
    (torch.zeros(3, 4, dtype=torch.int64), GOOD_Y, TypeError, "floating-point"),
    (GOOD_Z, GOOD_Y.float(), TypeError, "targets must be an integer tensor.*float32"),
    (GOOD_Z, torch.tensor([0, 1, 4]), ValueError, r"targets must lie in \[0, 3\], found 4"),
    (GOOD_Z, torch.tensor([0, -1, 2]), ValueError, r"targets must lie in \[0, 3\], found -1"),
    (GOOD_Z, torch.tensor([0, 1]), ValueError, r"targets must have shape \(3,\).* got \(2,\)"),
    (GOOD_Z, torch.tensor([[0, 1, 2]]), ValueError, r"targets must have shape \(3,\)"),
    (GOOD_Z.numpy(), GOOD_Y, TypeError, "logits must be a torch.Tensor"),
])
@pytest.mark.parametrize("loss", [dm.CCE(), dm.DN(dm.MAE()), dm.DMLoss(0.5, 8.0)], ids=repr)
def test_bad_input_is_named(loss, logits, targets, error, message):
    with pytest.raises(error, match=message):
        loss(logits, targets)


@pytest.mark.parametrize("make, message", [
    (lambda: dm.DMLoss(-0.5, 1.0), "lam must be >= 0, got -0.5"),
    (lambda: dm.DMLoss(float("inf"), 1.0), "lam must be finite"),
    (lambda: dm.DMLoss(0.5, float("nan")), "beta must be finite"),
    (lambda: dm.DMLoss(0.5, 1.0, eps=-1e-6), "eps must be >= 0, got -1e-06"),
    (lambda: dm.DMLoss(0.5, 1.0, reduction="sum"), "reduction must be one of"),
    (lambda: dm.GCE(0.0), r"q must lie in \(0, 1\], got 0.0"),
    (lambda: dm.GCE(1.01), r"q must lie in \(0, 1\]"),
    (lambda: dm.SL(0.1, 1.0, A=4.0), "must be < 0, got 4.0"),
    (lambda: dm.SL(0.1, float("inf")), "beta must be finite"),
    (lambda: dm.CCE(reduction="avg"), r"reduction must be one of \('mean', 'sum', 'none'\), got 'avg'"),
    (lambda: dm.DN(dm.CCE(), reduction="sum"), "reduction must be one of"),
])
def test_bad_hyper_parameters_are_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_dn_rejects_losses_without_a_closed_form_weight():
    with pytest.raises(TypeError, match="DN wraps one of .* got CrossEntropyLoss"):
        dm.DN(torch.nn.CrossEntropyLoss())


def test_skipping_value_checks_skips_only_value_checks():
    loss = dm.CCE(check_inputs=False)
    with pytest.raises(ValueError, match="2-D"):
        loss(torch.zeros(4), GOOD_Y)
    assert torch.isnan(loss(torch.tensor([[float("nan"), 0.0]]), torch.tensor([0])))


def test_reductions_agree():
    z, y = batch(b=9, c=4, seed=7)
    for cls in (dm.CCE, dm.MAE, dm.MSE):
        none = cls(reduction="none")(z, y)
        assert none.shape == (9,)
        torch.testing.assert_close(cls(reduction="sum")(z, y), none.sum())
        torch.testing.assert_close(cls()(z, y), none.mean())
    torch.testing.assert_close(dm.DN(dm.CCE(), reduction="none")(z, y).sum(), dm.DN(dm.CCE())(z, y))


def test_works_on_cuda_when_available():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device on this machine")
    z, y = batch(b=32, c=10, dtype=torch.float32)
    zc = z.detach().cuda().requires_grad_()
    for loss in ALL_LOSSES:
        (g,) = torch.autograd.grad(loss(zc, y.cuda()), zc)
        torch.testing.assert_close(g.cpu(), torch.autograd.grad(loss(z, y), z)[0], rtol=1e-4, atol=1e-6)


def test_compiles_with_inductor():
    # The default backend generates and compiles C++ on CPU (about 20 s here).
    loss = dm.DMLoss(0.5, 8.0, check_inputs=False)
    z, y = batch(b=16, c=10, dtype=torch.float32, seed=8)
    compiled = torch.compile(lambda z, y: loss(z, y), fullgraph=True)
    value = compiled(z, y)
    (g,) = torch.autograd.grad(value, z)
    torch.testing.assert_close(value, loss(z, y))
    torch.testing.assert_close(g, torch.autograd.grad(loss(z, y), z)[0])
