"""dm.weights: closed forms, input and output kinds, bad input."""

import math

import numpy as np
import pytest
import torch

from dm import weights as W


P = np.array([0.0, 1e-12, 0.1, 1 / 3, 0.5, 0.9, 1 - 1e-9, 1.0])

# The paper's formulas, written out independently of dm.
REFERENCE = {
    "cce": (lambda p: 2 * (1 - p), ()),
    "mae": (lambda p: 2 * p * (1 - p), ()),
    "mse": (lambda p: 4 * p * (1 - p) ** 2, ()),
    "gce": (lambda p, q: 2 * p ** q * (1 - p), (0.7,)),
    "sl": (lambda p, a, b, A: 2 * (1 - p) * (a - A * b * p), (0.1, 1.0, -4.0)),
    "dm": (lambda p, lam, beta: np.exp(beta * p ** lam * (1 - p)), (0.5, 8.0)),
    "exponential": (lambda p, beta: np.exp(beta * (1 - p)), (2.0,)),
    "normal": (lambda p, psi, beta: np.exp(-beta * p * (p - 2 * psi)), (0.3, 5.0)),
    "beta_variant": (lambda p, a, e: p ** (a - 1) * (1 - p) ** (e - 1), (2.0, 3.0)),
}


@pytest.mark.parametrize("name", REFERENCE)
def test_closed_form_matches_paper(name):
    reference, args = REFERENCE[name]
    np.testing.assert_allclose(getattr(W, name)(P, *args), reference(P, *args), rtol=1e-14, atol=0)


@pytest.mark.parametrize("name", REFERENCE)
def test_returns_the_kind_it_was_given(name):
    reference, args = REFERENCE[name]
    f = getattr(W, name)
    scalar = f(0.25, *args)
    assert type(scalar) is float and math.isclose(scalar, reference(0.25, *args), rel_tol=1e-14)
    assert isinstance(f(P, *args), np.ndarray) and f(P, *args).dtype == np.float64
    assert f(P.astype(np.float32), *args).dtype == np.float32
    t = f(torch.tensor(P, dtype=torch.float32), *args)
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32
    np.testing.assert_allclose(t.numpy(), reference(P, *args).astype(np.float32), rtol=1e-5, atol=1e-7)
    assert f([0.25, 0.5], *args).shape == (2,)


def test_known_values():
    assert W.cce(0.0) == 2.0 and W.cce(1.0) == 0.0
    assert W.mae(0.5) == 0.5
    assert W.gce(0.5, 1.0) == W.mae(0.5)          # GCE with q = 1 is MAE
    assert W.dm(1.0, 0.5, 8.0) == 1.0             # w(1) = 1 for every lam, beta
    assert W.dm(0.0, 0.5, 8.0) == 1.0             # w(0) = 1 for lam > 0
    assert W.dm(0.0, 0.0, 2.0) == math.exp(2.0)   # lam = 0: the exponential variant
    assert W.dm(0.3, 0.0, 2.0) == W.exponential(0.3, 2.0)
    assert W.dm(0.3, 1.0, 4.0) == pytest.approx(W.normal(0.3, 0.5, 4.0))  # lam = 1 is eq. 9 with psi 1/2
    assert all(W.dm(p, 0.7, 0.0) == 1.0 for p in (0.0, 0.4, 1.0))  # beta = 0: uniform


@pytest.mark.parametrize("lam", [0.0, 0.5, 1.0, 2.0, 7.0])
def test_emphasis_mode_is_the_argmax(lam):
    grid = np.linspace(0, 1, 200_001)
    mode = W.emphasis_mode(lam)
    assert mode == lam / (lam + 1)
    assert abs(grid[np.argmax(W.dm(grid, lam, 3.0))] - mode) < 1e-5


def test_weights_stay_finite_at_the_ends_in_low_precision():
    for dtype in (torch.float32, torch.bfloat16):
        p = torch.tensor([0.0, 1.0], dtype=dtype)
        for name, (_, args) in REFERENCE.items():
            out = getattr(W, name)(p, *args)
            assert out.dtype == dtype and torch.isfinite(out).all(), name


@pytest.mark.parametrize("call, message", [
    (lambda: W.dm(0.5, -0.1, 1.0), "lam must be >= 0, got -0.1"),
    (lambda: W.dm(0.5, float("nan"), 1.0), "lam must be finite"),
    (lambda: W.dm(0.5, 0.5, float("inf")), "beta must be finite"),
    (lambda: W.emphasis_mode(-1), "lam must be >= 0, got -1"),
    (lambda: W.gce(0.5, 0.0), r"q must lie in \(0, 1\], got 0.0"),
    (lambda: W.gce(0.5, 1.5), r"q must lie in \(0, 1\], got 1.5"),
    (lambda: W.sl(0.5, 0.1, 1.0, A=0.0), "A .* must be < 0, got 0.0"),
    (lambda: W.sl(0.5, -0.1, 1.0), "alpha must be >= 0"),
    (lambda: W.normal(0.5, -0.2, 1.0), "psi must be >= 0"),
    (lambda: W.beta_variant(0.5, 0.0, 2.0), "alpha must be > 0"),
    (lambda: W.cce(1.5), r"p must lie in \[0, 1\], found 1.5"),
    (lambda: W.cce(np.array([0.2, -0.1])), r"p must lie in \[0, 1\], found -0.1"),
    (lambda: W.cce(torch.tensor([0.2, float("nan")])), r"p must lie in \[0, 1\], found nan"),
])
def test_bad_values_are_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_bad_types_are_named():
    with pytest.raises(TypeError, match="lam must be a real number"):
        W.dm(0.5, "0.5", 1.0)
    with pytest.raises(TypeError, match="lam must be a real number, got True"):
        W.dm(0.5, True, 1.0)
    with pytest.raises(TypeError, match="p must be"):
        W.cce(True)
    with pytest.raises(TypeError, match="p must be real"):
        W.cce(np.array(["a"]))


def test_one_meaning_per_symbol():
    # pbar is 1 - p; q is GCE's exponent only (as in the GCE paper and dm.GCE(q=...)).
    import inspect

    from dm import losses as L


    for f in (W._cce, W._mae, W._mse, W._gce, W._sl, W._dm_log, W._dm):
        assert list(inspect.signature(f).parameters)[:2] == ["p", "pbar"], f.__name__
    assert list(inspect.signature(W._gce).parameters) == ["p", "pbar", "q"]
    assert list(inspect.signature(W.gce).parameters) == ["p", "q"]
    assert L._Terms._fields == ("p", "pbar", "log_p", "direction")
    for cls in (L.CCE, L.MAE, L.MSE, L.GCE, L.SL):
        assert list(inspect.signature(cls.example_weight).parameters) == ["self", "p", "pbar"], cls.__name__
    p = np.array([0.2, 0.7])
    np.testing.assert_array_equal(W._gce(p, 1 - p, 0.5), W.gce(p, 0.5))
