"""dm.losses: gradients against autograd and finite differences, DN's and DM's
designed direction and magnitude, the ends p -> 0 and p -> 1 in low precision,
bad input, autocast and torch.compile; per-class weights; negative beta;
construction by name."""

import ast
import functools
import itertools
import math
from pathlib import Path

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


WEIGHT10 = torch.linspace(0.0, 2.0, 10)  # class 0 has weight 0


@pytest.mark.parametrize("loss", [dm.CCE(check_inputs=False), dm.DN(dm.GCE(0.7, check_inputs=False)),
                                  dm.DMLoss(0.5, 8.0, check_inputs=False),
                                  dm.CCE(check_inputs=False, weight=WEIGHT10),
                                  dm.DN(dm.GCE(0.7, check_inputs=False, weight=WEIGHT10)),
                                  dm.DMLoss(0.5, 8.0, check_inputs=False, weight=WEIGHT10)], ids=repr)
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


# ---------------------------------------------------------------------------
# Per-class weights (the meaning of torch.nn.CrossEntropyLoss(weight=...)).
# ---------------------------------------------------------------------------

def class_weight(c=5, seed=10):
    g = torch.Generator().manual_seed(seed)
    return 0.1 + 2 * torch.rand(c, generator=g)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cce_class_weight_is_torch_cross_entropy_weight(dtype, reduction):
    z, y = batch(b=64, c=10, dtype=dtype, seed=11, scale=4.0)
    w = class_weight(10)
    ours = dm.CCE(weight=w, reduction=reduction)(z, y)
    ref = torch.nn.CrossEntropyLoss(weight=w.to(dtype), reduction=reduction)(z, y)
    torch.testing.assert_close(ours, ref.to(ours.dtype))
    upstream = torch.randn(ref.shape, generator=torch.Generator().manual_seed(1), dtype=dtype)
    torch.testing.assert_close(torch.autograd.grad((ours * upstream).sum(), z)[0],
                               torch.autograd.grad((ref * upstream).sum(), z)[0])


@functools.lru_cache
def torch_reference(name):
    """A reference function of torch's own test suite,
    ``torch/testing/_internal/common_nn.py``, run verbatim. The module is not
    imported: that needs the test-only package expecttest, and its
    ``common_utils`` calls ``torch.backends.disable_global_flags()``, which
    would make every later assignment to a ``torch.backends`` flag in this
    process an error. So the functions' source is read from torch's file and
    run in a namespace holding what they use."""
    import torch.testing._internal as internal

    source = (Path(internal.__file__).parent / "common_nn.py").read_text()
    wanted = {"cross_entropy_loss_reference", "cross_entropy_loss_prob_target_reference",
              "cross_entropy_loss_indices_target_reference", "nllloss_reference"}
    functions = [node for node in ast.parse(source).body
                 if isinstance(node, ast.FunctionDef) and node.name in wanted]
    assert {f.name for f in functions} == wanted, "torch moved its reference functions"
    namespace = {"torch": torch, "F": F, "product": itertools.product}
    exec(compile(ast.Module(functions, type_ignores=[]), "common_nn.py", "exec"), namespace)
    return namespace[name]


# Weights that float32 cannot represent: rounding them shows at 1e-8.
THIRDS = [1 / 3, 2 / 3, 1 / 7, 5 / 3, 0.1, 1 / 9, 2.0, 1 / 11, 0.7, 1 / 13]


@pytest.mark.parametrize("weight", [None, THIRDS, torch.tensor(THIRDS, dtype=torch.float64)],
                         ids=["no weight", "Python floats", "float64 tensor"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cce_is_torchs_reference_cross_entropy_in_float64(weight, reduction):
    # torch keeps the class weight as given; so must dm (it once rounded it to float32).
    z, y = batch(b=64, c=10, seed=11, scale=4.0)
    w64 = None if weight is None else torch.as_tensor(weight, dtype=torch.float64)
    ours = dm.CCE(weight=weight, reduction=reduction)(z, y)
    ref = torch_reference("cross_entropy_loss_reference")(z, y, weight=w64, reduction=reduction)
    loop = torch_reference("nllloss_reference")(torch.log_softmax(z.detach(), 1), y, weight=w64,
                                                reduction=reduction)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=0)
    torch.testing.assert_close(ours.detach(), loop, rtol=1e-12, atol=0)
    upstream = torch.randn(ref.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    torch.testing.assert_close(torch.autograd.grad((ours * upstream).sum(), z)[0],
                               torch.autograd.grad((ref * upstream).sum(), z)[0], rtol=1e-12, atol=0)


WEIGHT_KINDS = {"float32 tensor": lambda c: class_weight(c),
                "Python floats": lambda c: THIRDS[:c]}


@pytest.mark.parametrize("kind", WEIGHT_KINDS)
@pytest.mark.parametrize("name", TEXTBOOK)
def test_class_weight_scales_each_example_and_means_by_the_total(name, kind):
    # c_y in float64: as given, not rounded to float32 (the Python floats would show it).
    plain = TEXTBOOK[name][0]
    z, y = batch(b=12, c=5, seed=12)
    w = WEIGHT_KINDS[kind](5)
    c = torch.as_tensor(w, dtype=torch.float64)[y]
    make = lambda reduction: type(plain)(**_args(plain), reduction=reduction, weight=w)
    none = type(plain)(**_args(plain), reduction="none")(z, y)
    torch.testing.assert_close(make("none")(z, y), c * none, rtol=1e-12, atol=0)
    torch.testing.assert_close(make("sum")(z, y), (c * none).sum(), rtol=1e-12, atol=0)
    torch.testing.assert_close(make("mean")(z, y), (c * none).sum() / c.sum(), rtol=1e-12, atol=0)
    g_plain = per_example_grad(plain, z, y)  # plain has reduction="sum"
    torch.testing.assert_close(per_example_grad(make("none"), z, y), c[:, None] * g_plain, rtol=1e-12, atol=0)
    (g_mean,) = torch.autograd.grad(make("mean")(z, y), z)
    torch.testing.assert_close(g_mean, c[:, None] * g_plain / c.sum(), rtol=1e-12, atol=0)


def dm_by_hand(z, y, c, lam, beta, eps):
    """DM's gradient and value from the formulas, in float64, nothing shared with dm.losses."""
    s = torch.softmax(z.detach().double(), 1)
    p = s.gather(1, y[:, None]).squeeze(1)
    w = c * torch.exp(beta * p ** lam * (1 - p))
    d = (s - F.one_hot(y, z.shape[1]).double()) / (2 * (1 - p))[:, None]
    g = (w / w.sum() * 2 * (1 - p) / (2 * (1 - p) + eps))[:, None] * d
    return g, (w * -torch.log(p)).sum() / w.sum()


@pytest.mark.parametrize("w", [torch.tensor([0.5, 3.0, 1.0, 0.0, 2.0, 0.25]), [1 / 3, 3.0, 1 / 7, 0.0, 2 / 3, 0.1]],
                         ids=["float32 tensor", "Python floats"])
@pytest.mark.parametrize("lam, beta", [(0.5, 8.0), (0.0, -0.52), (1.0, 16.0)])
@pytest.mark.parametrize("eps", [0.0, 1e-6])
def test_class_weighted_dm_matches_hand_computation(lam, beta, eps, w):
    z, y = batch(b=32, c=6, seed=13, scale=3.0)
    loss = dm.DMLoss(lam, beta, eps=eps, weight=w)
    g_ref, value_ref = dm_by_hand(z, y, torch.as_tensor(w, dtype=torch.float64)[y], lam, beta, eps)
    torch.testing.assert_close(per_example_grad(loss, z, y), g_ref, rtol=1e-10, atol=1e-15)
    torch.testing.assert_close(loss(z, y), value_ref, rtol=1e-12, atol=0)
    terms = dm.DMLoss(lam, beta, eps=eps, weight=w, reduction="none")(z, y)
    torch.testing.assert_close(terms.sum(), value_ref, rtol=1e-12, atol=0)


@pytest.mark.parametrize("w", [torch.tensor([2.0, 0.0, 0.5, 1.0]), [2 / 3, 0.0, 1 / 7, 1 / 3]],
                         ids=["float32 tensor", "Python floats"])
@pytest.mark.parametrize("inner", [dm.CCE, dm.MAE, dm.MSE, lambda **k: dm.GCE(0.5, **k),
                                   lambda **k: dm.SL(6.0, 0.1, **k)])
def test_class_weighted_dn_multiplies_each_weight_before_normalising(inner, w):
    z, y = batch(b=20, c=4, seed=14)
    c = torch.as_tensor(w, dtype=torch.float64)[y]
    g_plain = per_example_grad(inner(reduction="none"), z, y)  # each row: w(p_i) d_i
    expected = c[:, None] * g_plain / (c * g_plain.abs().sum(1)).sum()
    torch.testing.assert_close(per_example_grad(dm.DN(inner(weight=w)), z, y), expected, rtol=1e-10, atol=1e-15)
    torch.testing.assert_close(dm.DN(inner(weight=w))(z, y), inner(weight=w)(z, y), rtol=1e-12, atol=0)


ONES_CASES = [lambda **k: dm.CCE(**k), lambda **k: dm.MAE(reduction="sum", **k),
              lambda **k: dm.MSE(reduction="none", **k), lambda **k: dm.GCE(0.7, **k),
              lambda **k: dm.SL(0.1, 1.0, **k), lambda **k: dm.DN(dm.CCE(**k)),
              lambda **k: dm.DN(dm.MAE(**k), reduction="none"), lambda **k: dm.DMLoss(0.5, 8.0, **k),
              lambda **k: dm.DMLoss(0.0, -0.52, eps=0.0, reduction="none", **k)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("make", ONES_CASES)
def test_class_weight_of_all_ones_is_no_weight_exactly(make, dtype):
    z, y = batch(b=16, c=5, dtype=dtype, seed=15)
    plain, ones = make(), make(weight=torch.ones(5))
    assert torch.equal(ones(z, y), plain(z, y))
    assert torch.equal(torch.autograd.grad(ones(z, y).sum(), z)[0], torch.autograd.grad(plain(z, y).sum(), z)[0])


@pytest.mark.parametrize("make", [lambda **k: dm.CCE(**k), lambda **k: dm.DN(dm.MSE(**k)),
                                  lambda **k: dm.DMLoss(0.5, 8.0, **k)])
@pytest.mark.parametrize("c", [0.01, 0.3, 7.0, 1e4])
def test_one_class_batch_gradient_does_not_depend_on_its_class_weight(make, c):
    # The mean / normalisation divides c out.
    z, _ = batch(b=10, c=3, seed=16)
    y = torch.full((10,), 2)
    g = torch.autograd.grad(make(weight=[5.0, 0.0, c])(z, y), z)[0]
    torch.testing.assert_close(g, torch.autograd.grad(make()(z, y), z)[0], rtol=1e-12, atol=1e-16)


WEIGHTED = {
    "CCE": lambda w: dm.CCE(weight=w),
    "SL-sum": lambda w: dm.SL(0.1, 1.0, reduction="sum", weight=w),
    "GCE-DN": lambda w: dm.DN(dm.GCE(0.7, weight=w)),
    "MAE-DN": lambda w: dm.DN(dm.MAE(weight=w)),
    "DM": lambda w: dm.DMLoss(0.5, 8.0, weight=w),
    "DM-eps0": lambda w: dm.DMLoss(0.5, 8.0, eps=0.0, weight=w),
    "DM-neg": lambda w: dm.DMLoss(0.0, -0.52, weight=w),
}


@pytest.mark.parametrize("name", WEIGHTED)
def test_zero_class_weight_examples_get_zero_gradient_and_drop_out(name):
    z, y = batch(b=24, c=4, seed=17, scale=3.0)
    w = torch.tensor([1.5, 0.0, 0.5, 1.0])
    loss = WEIGHTED[name](w)
    (g,) = torch.autograd.grad(loss(z, y), z)
    dropped = y == 1
    assert dropped.sum() >= 3 and (g[dropped] == 0).all() and (g[~dropped] != 0).any()
    # The rest are as if the zero-weight examples were not in the batch.
    kept = z.detach()[~dropped].requires_grad_()
    torch.testing.assert_close(loss(z, y), loss(kept, y[~dropped]), rtol=1e-12, atol=0)
    torch.testing.assert_close(g[~dropped], torch.autograd.grad(loss(kept, y[~dropped]), kept)[0],
                               rtol=1e-10, atol=1e-16)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("name", WEIGHTED)
def test_all_zero_class_weight_batch_gives_zero_gradient_not_nan(name, dtype):
    z, _ = batch(b=6, c=4, dtype=dtype, seed=18)
    y = torch.tensor([1, 3, 1, 1, 3, 3])
    loss = WEIGHTED[name](torch.tensor([1.0, 0.0, 2.0, 0.0]))
    value = loss(z, y)
    (g,) = torch.autograd.grad(value, z)
    assert torch.isfinite(value) and value == 0
    assert (g == 0).all()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("name", WEIGHTED)
def test_low_precision_logits_with_class_weight_give_finite_gradients(name, dtype):
    z = EXTREME.to(dtype).requires_grad_()
    y = torch.tensor([0, 1, 0, 2, 3])
    loss = WEIGHTED[name](torch.tensor([2.0, 0.0, 1e-3, 50.0]))
    value = loss(z, y)
    (g,) = torch.autograd.grad(value, z)
    assert value.dtype == torch.float32 and g.dtype == dtype
    assert torch.isfinite(value) and torch.isfinite(g).all() and (g[1] == 0).all() and (g != 0).any()


@pytest.mark.parametrize("weight, error, message", [
    ([[1.0, 2.0]], ValueError, r"weight must be 1-D .* got shape \(1, 2\)"),
    ([1.0], ValueError, r"weight must be 1-D .*at least 2.* got shape \(1,\)"),
    ([1.0, -0.5, 2.0], ValueError, r"weight must be >= 0, got -0.5 for class 1"),
    ([1.0, 2.0, float("nan")], ValueError, "weight must be finite, got nan for class 2"),
    (torch.tensor([float("inf"), 1.0]), ValueError, "weight must be finite, got inf for class 0"),
    ([0.0, 0.0, 0.0], ValueError, r"weight must have an entry > 0, its largest is 0.0"),
    (torch.tensor([0.0, -0.0], dtype=torch.float64), ValueError, r"weight must have an entry > 0"),
    ("heavy", TypeError, "weight must be a 1-D tensor or sequence of floats, got 'heavy'"),
    ([True, False], TypeError, "weight must hold real numbers, got dtype torch.bool"),
])
@pytest.mark.parametrize("make", [lambda w: dm.CCE(weight=w), lambda w: dm.GCE(0.7, weight=w),
                                  lambda w: dm.DMLoss(0.5, 8.0, weight=w)])
def test_bad_class_weights_are_named(make, weight, error, message):
    with pytest.raises(error, match=message):
        make(weight)


@pytest.mark.parametrize("loss", [dm.CCE(weight=[1.0, 2.0, 3.0], check_inputs=False),
                                  dm.DN(dm.MAE(weight=[1.0, 2.0, 3.0])),
                                  dm.DMLoss(0.5, 8.0, weight=[1.0, 2.0, 3.0], check_inputs=False)], ids=repr)
def test_class_weight_must_match_the_logits(loss):
    with pytest.raises(ValueError, match="weight has 3 entries but the logits have 4 classes"):
        loss(GOOD_Z, GOOD_Y)
    with pytest.raises(ValueError, match="weight is on cpu but the logits are on meta"):
        loss(torch.zeros(3, 3, device="meta"), torch.zeros(3, dtype=torch.int64, device="meta"))


@pytest.mark.parametrize("given, dtype", [
    (torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64, requires_grad=True), torch.float64),
    (torch.tensor([1.0, 2.0, 3.0], requires_grad=True), torch.float32),
    (torch.tensor([1.0, 2.0, 3.0], dtype=torch.bfloat16), torch.bfloat16),
    (np.array([1.0, 2.0, 3.0], dtype=np.float32), torch.float32),
    (np.array([1.0, 2.0, 3.0]), torch.float64),
    ([1.0, 2.0, 3.0], torch.float64),                     # Python floats are doubles
    ((1, 2, 3), torch.float64),                           # integers: float64, exact up to 2**53
    (torch.tensor([1, 2, 3]), torch.float64),
    (np.array([1, 2, 3], dtype=np.int32), torch.float64),
], ids=["float64 tensor", "float32 tensor", "bfloat16 tensor", "float32 array", "float64 array",
        "Python floats", "Python ints", "int64 tensor", "int32 array"])
def test_class_weight_is_a_buffer_copy_in_the_given_precision(given, dtype):
    for make in (lambda w: dm.CCE(weight=w), lambda w: dm.DMLoss(0.5, 8.0, weight=w)):
        loss = make(given)
        assert loss.weight.dtype == dtype and not loss.weight.requires_grad
        assert "weight" in dict(loss.named_buffers())
        assert torch.equal(loss.state_dict()["weight"], torch.tensor([1.0, 2.0, 3.0], dtype=dtype))
        if isinstance(given, (torch.Tensor, np.ndarray)):   # a copy: changing the input changes nothing
            with torch.no_grad():
                given[0] = 9
            assert loss.weight[0] == 1.0
            with torch.no_grad():
                given[0] = 1
    assert dm.CCE().weight is None and dm.DMLoss(0.5, 8.0).weight is None and dm.CCE().state_dict() == {}


def test_python_float_class_weights_are_not_rounded_to_float32():
    assert dm.CCE(weight=THIRDS).weight.tolist() == THIRDS
    assert dm.DMLoss(0.5, 8.0, weight=THIRDS).weight.tolist() == THIRDS
    assert torch.tensor(THIRDS).double().tolist() != THIRDS   # what a float32 buffer would hold


@pytest.mark.parametrize("make", [lambda w, **k: dm.CCE(weight=w, **k), lambda w, **k: dm.DN(dm.MAE(weight=w, **k)),
                                  lambda w, **k: dm.DMLoss(0.5, 8.0, weight=w, **k)])
@pytest.mark.parametrize("weight, message", [
    ([1e39, 1.0], r"weight must fit in float32 to be used with torch\.float32 logits .* got 1e\+39"),
    ([1e-50, 0.0], r"weight must have an entry > 0 in float32 to be used with torch\.float32 logits"
                   r" .* its largest is 1e-50"),
])
def test_float64_class_weight_beyond_float32_works_in_float64_only(make, weight, message):
    # Such a weight matters only where it is cast to float32: with float32 (or
    # lower-precision) logits; it is checked there with the other value checks.
    loss = make(weight)
    z, y = batch(b=8, c=2, seed=20)
    y[:2] = torch.tensor([0, 1])
    value = loss(z, y)
    (g,) = torch.autograd.grad(value, z)
    assert torch.isfinite(value) and torch.isfinite(g).all()
    if isinstance(loss, dm.CCE):
        reference = torch.nn.CrossEntropyLoss(weight=torch.tensor(weight, dtype=torch.float64))(z, y)
        torch.testing.assert_close(value, reference, rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match=message):
        loss(z.detach().float(), y)
    with pytest.raises(ValueError, match=message.replace("float32 logits", "bfloat16 logits")):
        loss(z.detach().bfloat16(), y)
    make(weight, check_inputs=False)(z.detach().float(), y)   # unchecked, like non-finite logits


@pytest.mark.parametrize("given", [THIRDS[:5], class_weight(5)], ids=["float64", "float32"])
def test_module_dtype_casts_treat_the_class_weight_as_torch_does(given):
    # A buffer like torch's CrossEntropyLoss.weight: the module's dtype casts cast it.
    for cast in (lambda m: m.half(), lambda m: m.double(), lambda m: m.to(torch.float32)):
        ours = cast(dm.CCE(weight=given)).weight
        torchs = cast(torch.nn.CrossEntropyLoss(weight=torch.as_tensor(given, dtype=ours.dtype))).weight
        assert ours.dtype == torchs.dtype
        torch.testing.assert_close(ours, torchs, rtol=0, atol=0)


@pytest.mark.parametrize("make", [lambda w: dm.CCE(weight=w), lambda w: dm.DN(dm.GCE(0.7, weight=w)),
                                  lambda w: dm.DMLoss(0.5, 8.0, weight=w)])
def test_class_weight_moves_with_the_module(make):
    w = class_weight(5)
    z, y = batch(b=12, c=5, seed=19)
    loss = make(w)
    (meta,) = make(w).to("meta").buffers()   # a device move, testable without a GPU
    assert meta.device.type == "meta"
    if torch.cuda.is_available():
        cuda = make(w).cuda()
        assert next(cuda.buffers()).is_cuda
        zc = z.detach().float().cuda().requires_grad_()
        torch.testing.assert_close(torch.autograd.grad(cuda(zc, y.cuda()), zc)[0].cpu().double(),
                                   torch.autograd.grad(loss(z, y), z)[0], rtol=1e-4, atol=1e-6)


def test_repr_names_the_class_weight():
    assert "weight=[1, 0.5, 2] (3 classes)" in repr(dm.CCE(weight=[1.0, 0.5, 2.0]))
    assert "q=0.7, weight=[1, 0.5, 2]" in repr(dm.GCE(weight=[1.0, 0.5, 2.0]))
    assert "weight=[0, 1, 2, 3, 4, ...] (7 classes)" in repr(dm.DMLoss(0.5, 8.0, weight=range(7)))
    assert "weight" not in repr(dm.DMLoss(0.5, 8.0)) and "weight" not in repr(dm.DN(dm.CCE()))


# ---------------------------------------------------------------------------
# Negative beta: DM favouring easy examples.
# ---------------------------------------------------------------------------

def test_dm_negative_beta_gives_larger_weights_to_larger_p():
    z, y = batch(b=40, c=5, seed=20, scale=3.0)
    g = per_example_grad(dm.DMLoss(0.0, -0.52, eps=0.0), z, y)
    normalised, p = g.abs().sum(1), label_prob(z, y)  # with eps = 0, ||g_i||_1 is the normalised weight
    order = torch.argsort(p)
    assert p[order].diff().min() > 0 and normalised[order].diff().min() > 0
    torch.testing.assert_close(normalised.sum(), torch.tensor(1.0, dtype=torch.float64))


@pytest.mark.parametrize("eps", [0.0, 1e-6, 0.1])
def test_dm_negative_beta_gradient_matches_the_formula(eps):
    z, y = batch(b=32, c=7, seed=21, scale=3.0)
    g_ref, value_ref = dm_by_hand(z, y, torch.ones(32, dtype=torch.float64), 0.0, -0.52, eps)
    torch.testing.assert_close(per_example_grad(dm.DMLoss(0.0, -0.52, eps=eps), z, y), g_ref,
                               rtol=1e-10, atol=1e-15)
    torch.testing.assert_close(dm.DMLoss(0.0, -0.52, eps=eps)(z, y), value_ref, rtol=1e-12, atol=0)


def test_dm_negative_beta_trains_on_a_separable_problem():
    g = torch.Generator().manual_seed(22)
    centres = 3 * torch.randn(3, 8, generator=g)
    y = torch.randint(0, 3, (300,), generator=g)
    x = centres[y] + torch.randn(300, 8, generator=g)
    model = torch.nn.Linear(8, 3)
    torch.nn.init.zeros_(model.weight), torch.nn.init.zeros_(model.bias)
    loss, opt = dm.DMLoss(0.0, -0.52), torch.optim.SGD(model.parameters(), lr=0.5)
    values = []
    for _ in range(60):
        opt.zero_grad()
        value = loss(model(x), y)
        value.backward()
        opt.step()
        values.append(value.item())
    assert values[0] == pytest.approx(math.log(3)) and values[-1] < 0.1 * values[0]
    assert all(b <= a + 1e-6 for a, b in zip(values[10:], values[11:]))
    assert (model(x).argmax(1) == y).float().mean() > 0.99


# ---------------------------------------------------------------------------
# Construction by name.
# ---------------------------------------------------------------------------

MADE = {"CCE": lambda w: dm.CCE(weight=w), "GCE": lambda w: dm.GCE(0.4, weight=w),
        "MAE": lambda w: dm.MAE(weight=w), "MSE": lambda w: dm.MSE(weight=w),
        "CCE-DN": lambda w: dm.DN(dm.CCE(weight=w)), "GCE-DN": lambda w: dm.DN(dm.GCE(0.4, weight=w)),
        "MAE-DN": lambda w: dm.DN(dm.MAE(weight=w)), "MSE-DN": lambda w: dm.DN(dm.MSE(weight=w)),
        "DM": lambda w: dm.DMLoss(0.3, -2.0, weight=w)}


@pytest.mark.parametrize("method", dm.losses.METHODS)
def test_make_builds_each_table_row(method):
    w = [1.0, 2.0, 0.5]
    loss, expected = dm.losses.make(method, lam=0.3, beta=-2.0, q=0.4, weight=w, check_inputs=False), MADE[method](w)
    assert type(loss) is type(expected) and repr(loss) == repr(expected)
    inner = loss.loss if method.endswith("-DN") else loss
    assert inner.check_inputs is False and torch.equal(inner.weight, torch.tensor(w))
    z, y = batch(b=6, c=3, seed=23)
    assert torch.equal(loss(z, y), expected(z, y))
    assert torch.equal(torch.autograd.grad(loss(z, y), z)[0], torch.autograd.grad(expected(z, y), z)[0])
    plain = dm.losses.make(method)
    inner = plain.loss if method.endswith("-DN") else plain
    assert inner.weight is None and inner.check_inputs is True
    if method == "DM":
        assert (plain.lam, plain.beta, plain.eps) == (0.0, 0.0, 1e-6)
    if method.startswith("GCE"):
        assert inner.q == 0.7


def test_make_rejects_unknown_names():
    assert dm.losses.METHODS == ("CCE", "GCE", "MAE", "MSE", "CCE-DN", "GCE-DN", "MAE-DN", "MSE-DN", "DM")
    assert {"make", "METHODS"} <= set(dm.losses.__all__)
    for bad in ("cce", "DM-DN", "SL", "DN", None):
        with pytest.raises(ValueError, match=r"method must be one of \('CCE', 'GCE', .*'DM'\), got"):
            dm.losses.make(bad)
