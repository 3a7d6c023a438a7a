r"""Example weights as closed-form functions of p.

Notation (Wang et al., "Derivative Manipulation for General Example
Weighting", arXiv:1905.11233): ``z`` are an example's logits, ``p`` the softmax
probability of its *labelled* class, and an example's **weight** is the L1 norm
of the loss's derivative with respect to the logits,

.. math:: w = \lVert \partial L / \partial z \rVert_1 .

For every loss here that derivative is ``a(p) * (softmax(z) - onehot(y))``
for some scalar ``a(p) >= 0``, and ``||softmax(z) - onehot(y)||_1 = 2(1 - p)``,
so ``w = 2 (1 - p) a(p)``: the direction is CCE's and only the magnitude
differs. Derivations: chapters 2-4 of the book.

Every function accepts a Python float, a NumPy array (or anything
``numpy.asarray`` takes) or a torch tensor, and returns the same kind
(a float, a NumPy array, a tensor of the same device and floating dtype).
``p`` must lie in [0, 1]. The private ``_name(p, pbar, ...)`` forms take
``pbar = 1 - p`` separately: `dm.losses` computes ``pbar`` from the logits,
which stays exact as p -> 1 where ``1 - p`` computed from a rounded ``p`` does
not. (``q`` is GCE's exponent throughout, as in the GCE paper.)
"""

from __future__ import annotations

import numbers

import numpy as np
import torch

from . import _checks

__all__ = [
    "cce", "mae", "mse", "gce", "sl",
    "dm", "exponential", "normal", "beta_variant", "emphasis_mode",
]


# ----------------------------------------------------------------------------
# Formulas in (p, pbar = 1 - p). One place for each; the public functions and
# dm.losses both call these.
# ----------------------------------------------------------------------------

def _exp(x):
    return torch.exp(x) if isinstance(x, torch.Tensor) else np.exp(x)


def _cce(p, pbar):
    return 2 * pbar


def _mae(p, pbar):
    return 2 * p * pbar


def _mse(p, pbar):
    return 4 * p * pbar ** 2


def _gce(p, pbar, q):
    return 2 * p ** q * pbar


def _sl(p, pbar, alpha, beta, A):
    return 2 * pbar * (alpha - A * beta * p)


def _dm_log(p, pbar, lam, beta):
    """log of DM's weight, beta * p^lam * (1 - p) (exact, never overflows)."""
    return beta * p ** lam * pbar


def _dm(p, pbar, lam, beta):
    return _exp(_dm_log(p, pbar, lam, beta))


# ----------------------------------------------------------------------------
# Input and output kinds.
# ----------------------------------------------------------------------------

def _with_kind(formula, p, *args):
    """Evaluate ``formula(p, 1 - p, *args)`` on p's kind, after checking p."""
    if isinstance(p, torch.Tensor):
        t = p if p.is_floating_point() else p.to(torch.get_default_dtype())
        if t.numel() and not bool(((t >= 0) & (t <= 1)).all()):
            bad = t[~((t >= 0) & (t <= 1))][0].item()
            raise ValueError(f"p must lie in [0, 1], found {bad}")
        return formula(t, 1 - t, *args)
    if isinstance(p, bool):
        raise TypeError(f"p must be a probability, got {p!r}")
    scalar = isinstance(p, numbers.Real)
    a = np.asarray(p)
    if a.dtype.kind in "iu":
        a = a.astype(np.float64)
    if a.dtype.kind != "f":
        raise TypeError(f"p must be real, got dtype {a.dtype}")
    if a.size and not np.all((a >= 0) & (a <= 1)):
        bad = a[~((a >= 0) & (a <= 1))].flat[0]
        raise ValueError(f"p must lie in [0, 1], found {bad}")
    out = formula(a, 1 - a, *args)
    return float(out) if scalar else np.asarray(out, dtype=a.dtype)


# ----------------------------------------------------------------------------
# Weights of the losses (paper eqs. 1-6 and appendix B).
# ----------------------------------------------------------------------------

def cce(p):
    r"""Categorical cross entropy, ``L = -log p``: ``w = 2 (1 - p)``."""
    return _with_kind(_cce, p)


def mae(p):
    r"""Mean absolute error as the paper defines it, ``L = 1 - p``:
    ``w = 2 p (1 - p)``.

    (The textbook ``||softmax - onehot||_1 = 2 (1 - p)`` has twice this weight;
    chapter 2 of the book compares the two.)"""
    return _with_kind(_mae, p)


def mse(p):
    r"""Mean squared error as the paper defines it, ``L = (1 - p)^2``:
    ``w = 4 p (1 - p)^2``."""
    return _with_kind(_mse, p)


def gce(p, q):
    r"""Generalised cross entropy, ``L = (1 - p^q) / q`` with ``q`` in (0, 1]:
    ``w = 2 p^q (1 - p)``. ``q -> 0`` gives CCE, ``q = 1`` gives MAE."""
    return _with_kind(_gce, p, _checks.gce_q(q))


def sl(p, alpha, beta, A=-4.0):
    r"""Symmetric cross entropy, ``L = alpha * CCE + beta * RCE``, where
    ``RCE = -sum_k p_k log y_k`` with the one-hot label's ``log 0 = A < 0``,
    so ``RCE = -A (1 - p)``: ``w = 2 (1 - p) (alpha - A beta p)``.

    The SL paper uses ``A = -4``; its code clamps the one-hot label at 1e-4,
    i.e. ``A = log(1e-4)``. Chapter 3 of the book derives this and checks
    the authors' rebuttal formula against it."""
    alpha = _checks.nonnegative("alpha", alpha)
    beta = _checks.nonnegative("beta", beta)
    return _with_kind(_sl, p, alpha, beta, _checks.log_zero(A))


# ----------------------------------------------------------------------------
# DM's emphasis density functions (paper eqs. 9-12).
# ----------------------------------------------------------------------------

def dm(p, lam, beta):
    r"""DM's weight, paper eq. 12: ``w = exp(beta * p^lam * (1 - p))``.

    ``lam >= 0`` sets the emphasis mode ``lam / (lam + 1)`` (the p that gets
    the largest weight when ``beta > 0``); ``beta`` sets the emphasis
    variance, how much the examples' weights differ (the largest over the
    smallest is ``exp(|beta| * max_p p^lam (1 - p))``): 0 weights every
    example alike, a larger ``beta > 0`` favours the examples near the mode
    more strongly. The weights are ordered by ``g(p) = p^lam (1 - p)``, not by
    the distance from the mode: for ``beta < 0`` the smaller ``g``, the larger
    the weight, so p = 0 and p = 1 (``g = 0``, for ``lam > 0``) weigh most and
    the mode least; e.g. with ``lam = 0.5, beta = -8`` (mode 1/3), p = 0.9
    gets 0.468 and p = 0 gets 1 although p = 0.9 is further from the mode.
    Chapter 4 of the book derives all of this."""
    lam = _checks.nonnegative("lam", lam)
    beta = _checks.real("beta", beta)
    return _with_kind(_dm, p, lam, beta)


def exponential(p, beta):
    r"""Exponential variant, paper eq. 10: ``w = exp(beta (1 - p))``
    (``dm`` with ``lam = 0``). ``beta > 0`` favours hard examples,
    ``beta < 0`` easy ones."""
    beta = _checks.real("beta", beta)
    return _with_kind(lambda p, pbar: _exp(beta * pbar), p)


def normal(p, psi, beta):
    r"""Normal variant, paper eq. 9: ``w = exp(-beta p (p - 2 psi))``, a
    Gaussian in p with mode ``psi >= 0`` (for ``beta > 0``)."""
    psi = _checks.nonnegative("psi", psi)
    beta = _checks.real("beta", beta)
    return _with_kind(lambda p, pbar: _exp(-beta * p * (p - 2 * psi)), p)


def beta_variant(p, alpha, eta):
    r"""Beta variant, paper eq. 11: ``w = p^(alpha - 1) (1 - p)^(eta - 1)``,
    ``alpha, eta > 0``. CCE is (1, 2), MAE (2, 2), MSE (2, 3), GCE (q + 1, 2),
    up to constant factors that derivative normalisation removes."""
    alpha = _checks.positive("alpha", alpha)
    eta = _checks.positive("eta", eta)
    return _with_kind(lambda p, pbar: p ** (alpha - 1) * pbar ** (eta - 1), p)


def emphasis_mode(lam):
    r"""The emphasis mode of DM's weight, ``lam / (lam + 1)`` in [0, 1): the
    p at which ``p^lam (1 - p)`` (hence the weight, for ``beta > 0``) is
    largest. Derived with sympy in chapter 4 of the book."""
    lam = _checks.nonnegative("lam", lam)
    return lam / (lam + 1.0)
