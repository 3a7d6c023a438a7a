r"""Example weights as closed-form functions of p.

An example's **weight** (Wang et al., "Derivative Manipulation for General
Example Weighting", arXiv:1905.11233) is the L1 norm of the loss's derivative
with respect to its logits ``z``, ``w = ||dL/dz||_1``, a function of ``p``,
the softmax probability of its *labelled* class. For every loss here
``dL/dz = a(p) (softmax(z) - onehot(y))`` with ``a(p) >= 0``, so
``w = 2 (1 - p) a(p)``. Every function takes a Python float, a NumPy array
(or anything ``numpy.asarray`` takes) or a torch tensor, and returns the same
kind (a tensor of the same device and floating dtype). They raise
ValueError for a ``p`` outside [0, 1] or a parameter out of its range,
TypeError for a bool or non-real one. The private ``_name(p, pbar, ...)``
forms take ``pbar = 1 - p`` separately: `dm.losses` computes it from the
logits, where it stays exact as p -> 1 (``1 - p`` from a rounded ``p`` does
not). ``q`` is GCE's exponent throughout. Derivations: chapters 2 to 4.
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
    ``w = 2 p (1 - p)``: half the weight of the textbook
    ``||softmax - onehot||_1`` (chapter 2, section "The textbook MAE and
    MSE")."""
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
    so ``RCE = -A (1 - p)``: ``w = 2 (1 - p) (alpha - A beta p)``;
    ``alpha, beta >= 0``. The SL paper's ``A`` (-4, and its code's
    ``log(1e-4)``) and the derivation: chapter 3 of the book."""
    alpha = _checks.nonnegative("alpha", alpha)
    beta = _checks.nonnegative("beta", beta)
    return _with_kind(_sl, p, alpha, beta, _checks.log_zero(A))


# ----------------------------------------------------------------------------
# DM's emphasis density functions (paper eqs. 9-12).
# ----------------------------------------------------------------------------

def dm(p, lam, beta):
    r"""DM's weight, paper eq. 12: ``w = exp(beta * p^lam * (1 - p))``.

    ``lam >= 0`` sets the emphasis mode ``lam / (lam + 1)`` (the p that gets
    the largest weight when ``beta > 0``); real ``beta`` sets the emphasis
    variance (the largest weight over the smallest is
    ``exp(|beta| * max_p p^lam (1 - p))``; ``beta = 0`` weights every example
    alike). The weights are ordered by ``g(p) = p^lam (1 - p)``, not by the
    distance from the mode: for ``beta < 0`` the mode weighs least and
    ``g = 0`` (p = 0 and p = 1, for ``lam > 0``) most. Chapter 4 of the book
    derives all of this, with an example."""
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
