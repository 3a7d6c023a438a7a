r"""Losses as designed derivatives.

Each module is called as ``loss(logits, targets)`` with ``logits`` of shape
``[B, C]`` (any floating dtype, any device) and ``targets`` an int64 tensor of
shape ``[B]`` holding class indices.

Every loss here has a derivative with respect to an example's logits ``z`` of
the form ``w(p) * d``, where ``p`` is the softmax probability of the labelled
class, ``w(p)`` the example's weight (`dm.weights`) and

.. math:: d = \tfrac12 \bigl(\mathrm{softmax}_{\neg y}(z) - \mathrm{onehot}(y)\bigr),
          \qquad \lVert d \rVert_1 = 1,

CCE's direction ``softmax(z) - onehot(y)`` scaled to unit L1 norm
(``softmax_{not y}`` is the softmax over the other classes, equal to
``softmax(z)_j / (1 - p)`` for ``j != y``). So each module computes its value
and its gradient from closed forms rather than by differentiating the value:
that is Derivative Manipulation's point of view (Wang et al.,
arXiv:1905.11233), and it keeps the gradient exact where the textbook route
divides or subtracts rounded numbers. Internally ``p`` and ``1 - p`` are both
computed from the logits in float32 (float64 for float64 logits): ``1 - p`` is
the sum of the other classes' probabilities, so it stays exact as p -> 1 in
float32 and bfloat16, and nothing divides by it. The value is returned in
that compute dtype (float32 for float16 and bfloat16 logits); the gradient in
the logits' dtype.

Input checks: shapes and dtypes are always checked. Finite logits and targets
in range are checked when ``check_inputs=True`` (the default); reading those
values costs a device synchronisation, so a training loop that has validated
its data can pass ``check_inputs=False`` and its step then has no host sync.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from . import _checks
from . import weights as _w

__all__ = ["CCE", "MAE", "MSE", "GCE", "SL", "DN", "DMLoss"]


class _Terms(NamedTuple):
    p: torch.Tensor          # [B] probability of the labelled class
    q: torch.Tensor          # [B] 1 - p, the other classes' total probability
    log_p: torch.Tensor      # [B] log p, exact also as p -> 1
    direction: torch.Tensor  # [B, C] unit-L1 direction d (see module docstring)


def _terms(logits: torch.Tensor, targets: torch.Tensor) -> _Terms:
    """p, 1 - p, log p and the unit direction, computed without autograd.

    With ``s`` the log-sum-exp of the *other* classes' logits,
    ``log p = -softplus(s - z_y)`` and ``log(1 - p) = -softplus(z_y - s)``:
    both exact at either end, with no subtraction of rounded probabilities.
    """
    dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
    z = logits.detach().to(dtype)
    # A comparison, not F.one_hot: one_hot reads the targets' values (a host sync).
    is_target = torch.arange(z.shape[1], device=z.device) == targets[:, None]
    z_y = z.gather(1, targets[:, None]).squeeze(1)
    others = z.masked_fill(is_target, -math.inf)
    top = others.amax(dim=1, keepdim=True)      # finite: there are >= 2 classes
    e = torch.exp(others - top)                 # 0 at the labelled class
    total = e.sum(dim=1)                        # in [1, C - 1]
    log_sum_others = top.squeeze(1) + torch.log(total)
    log_p = -F.softplus(log_sum_others - z_y)
    q = torch.exp(-F.softplus(z_y - log_sum_others))
    direction = 0.5 * (e / total[:, None] - is_target.to(dtype))
    return _Terms(log_p.exp(), q, log_p, direction)


class _DesignedGradient(torch.autograd.Function):
    """Returns ``value`` ([B]); backward gives ``grad_value[:, None] * rows``
    for the logits, in the logits' dtype."""

    @staticmethod
    def forward(ctx, logits, value, rows):
        ctx.save_for_backward(rows)
        ctx.logits_dtype = logits.dtype
        return value.clone()

    @staticmethod
    def backward(ctx, grad_value):
        (rows,) = ctx.saved_tensors
        return (grad_value[:, None].to(rows.dtype) * rows).to(ctx.logits_dtype), None, None


def _reduce(values: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    return values


class _LogitLoss(nn.Module):
    """A loss of p alone: subclasses give its value and its weight."""

    def __init__(self, reduction: str = "mean", check_inputs: bool = True):
        super().__init__()
        self.reduction = _checks.reduction(reduction, ("mean", "sum", "none"))
        self.check_inputs = bool(check_inputs)

    def value(self, t: _Terms) -> torch.Tensor:
        """The per-example loss L(p), shape [B]."""
        raise NotImplementedError

    def weight(self, p, q):
        """The per-example weight ||dL/dz||_1 as a function of p and q = 1 - p."""
        raise NotImplementedError

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The loss of ``logits`` [B, C] for class indices ``targets`` [B]; its
        backward pass gives the designed gradient (see the class docstring)."""
        _checks.logits_and_targets(logits, targets, self.check_inputs)
        t = _terms(logits, targets)
        rows = self.weight(t.p, t.q)[:, None] * t.direction
        return _reduce(_DesignedGradient.apply(logits, self.value(t), rows), self.reduction)


class CCE(_LogitLoss):
    r"""Categorical cross entropy, ``L = -log p``; gradient ``softmax(z) - onehot(y)``,
    weight ``2 (1 - p)``. Same values and gradients as
    ``torch.nn.CrossEntropyLoss``."""

    def value(self, t):
        return -t.log_p

    def weight(self, p, q):
        return _w._cce(p, q)


class MAE(_LogitLoss):
    r"""Mean absolute error as the paper defines it, ``L = 1 - p``;
    gradient ``p (softmax(z) - onehot(y))``, weight ``2 p (1 - p)``."""

    def value(self, t):
        return t.q

    def weight(self, p, q):
        return _w._mae(p, q)


class MSE(_LogitLoss):
    r"""Mean squared error as the paper defines it, ``L = (1 - p)^2``;
    gradient ``2 p (1 - p) (softmax(z) - onehot(y))``, weight ``4 p (1 - p)^2``."""

    def value(self, t):
        return t.q ** 2

    def weight(self, p, q):
        return _w._mse(p, q)


class GCE(_LogitLoss):
    r"""Generalised cross entropy (Zhang and Sabuncu 2018),
    ``L = (1 - p^q) / q`` with ``q`` in (0, 1]; gradient
    ``p^q (softmax(z) - onehot(y))``, weight ``2 p^q (1 - p)``."""

    def __init__(self, q: float = 0.7, reduction: str = "mean", check_inputs: bool = True):
        super().__init__(reduction, check_inputs)
        self.q = _checks.gce_q(q)

    def value(self, t):
        return -torch.expm1(self.q * t.log_p) / self.q

    def weight(self, p, q):
        return _w._gce(p, q, self.q)

    def extra_repr(self):
        return f"q={self.q}"


class SL(_LogitLoss):
    r"""Symmetric cross entropy (Wang et al. 2019), ``L = alpha * CCE + beta * RCE``
    with ``RCE = -sum_k p_k log y_k`` and ``log 0 = A < 0``, i.e.
    ``L = -alpha log p - beta A (1 - p)``; gradient
    ``(alpha - A beta p) (softmax(z) - onehot(y))``, weight
    ``2 (1 - p) (alpha - A beta p)``. The SL paper's settings: CIFAR-10
    alpha = 0.1, beta = 1; CIFAR-100 alpha = 6, beta = 0.1; A = -4."""

    def __init__(self, alpha: float, beta: float, A: float = -4.0,
                 reduction: str = "mean", check_inputs: bool = True):
        super().__init__(reduction, check_inputs)
        self.alpha = _checks.nonnegative("alpha", alpha)
        self.beta = _checks.nonnegative("beta", beta)
        self.A = _checks.log_zero(A)

    def value(self, t):
        return -self.alpha * t.log_p - self.beta * self.A * t.q

    def weight(self, p, q):
        return _w._sl(p, q, self.alpha, self.beta, self.A)

    def extra_repr(self):
        return f"alpha={self.alpha}, beta={self.beta}, A={self.A}"


class DN(nn.Module):
    r"""Derivative normalisation of a loss (paper eq. 8; the "-DN" rows of its
    tables).

    Each example keeps its loss's gradient direction; its weight ``w_i`` is
    divided by the batch's total, so the gradient for example i is
    ``w_i / sum_j w_j * d_i`` and the L1 norms of the batch's gradients sum to
    one (see `DMLoss` for why that scale fits the paper's learning rates).
    The normaliser is a constant for the backward pass, as in the authors'
    layer. If every weight in the batch is exactly zero (all p in {0, 1} for
    MAE, say) the sum is clamped to the smallest normal float, so the
    gradient is zero rather than 0/0.

    The value returned is the wrapped loss's batch mean, so logs of ``DN(CCE())``
    read like those of ``CCE()``. It is for logging: its own autograd gradient
    is not the one backward returns. ``reduction="none"`` returns the
    per-example terms ``L_i / B``, whose *sum* has the designed gradient.
    """

    def __init__(self, loss: _LogitLoss, reduction: str = "mean"):
        super().__init__()
        if not isinstance(loss, _LogitLoss):
            raise TypeError(
                f"DN wraps one of dm.losses' CCE, MAE, MSE, GCE, SL, got {type(loss).__name__}")
        self.loss = loss
        self.reduction = _checks.reduction(reduction, ("mean", "none"))

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The loss of ``logits`` [B, C] for class indices ``targets`` [B]; its
        backward pass gives the designed gradient (see the class docstring)."""
        _checks.logits_and_targets(logits, targets, self.loss.check_inputs)
        t = _terms(logits, targets)
        w = self.loss.weight(t.p, t.q)
        total = w.sum().clamp_min(torch.finfo(w.dtype).tiny)
        rows = (w / total)[:, None] * t.direction
        values = _DesignedGradient.apply(logits, self.loss.value(t) / len(w), rows)
        return values.sum() if self.reduction == "mean" else values


class DMLoss(nn.Module):
    r"""Derivative Manipulation, paper eq. 7 with eq. 12's weight and
    derivative normalisation over the batch.

    No loss is differentiated. The gradient for example i is

    .. math:: g_i = \frac{w_i}{\sum_j w_j}\,
                    \frac{2(1 - p_i)}{2(1 - p_i) + \epsilon}\, d_i,
              \qquad w_i = \exp\bigl(\beta\, p_i^{\lambda} (1 - p_i)\bigr),

    with ``d_i`` CCE's direction at unit L1 norm, so ``||g_i||_1`` is example
    i's normalised DM weight times ``2(1-p)/(2(1-p)+eps)``.

    ``eps``: with ``eps=0`` this is eq. 7 exactly (magnitude ``w_i``). DM's
    weight does not vanish as p -> 1 (``w(1) = 1``), so then the push on
    examples the model already fits never stops and the logits grow without
    bound (chapter 5 of the book measures it). The default ``1e-6`` is what
    the authors' Caffe layer does (it divides CCE's gradient by
    ``2 - 2p + 1e-6``): the push fades once ``1 - p`` is near ``eps``.

    Scale: the weights are normalised to sum to one over the batch (computed
    as a softmax of ``beta p^lam (1-p)``, so a large ``beta`` cannot
    overflow), so the L1 norms of the batch's gradients sum to at most one
    (exactly one while every ``1 - p_i >> eps``). Mean-reduced CCE's sum to
    the batch mean of ``2 (1 - p_i)``: about 2 at initialisation, shrinking as
    the model fits. This sum-to-one scale is the one the authors' layer uses
    with the paper's learning rates (SGD, lr 0.1 on CIFAR), so those rates
    carry over unchanged; a per-example mean would make every step B times
    smaller.

    Value: the DM-weighted cross entropy ``sum_i w_i (-log p_i) / sum_j w_j``,
    as the authors' layer reports; it is on CCE's scale and meaningful to
    log, but it is not the loss whose gradient backward returns (DM has no
    such loss in closed form; chapter 5). ``reduction="none"`` returns the
    per-example terms ``w_i (-log p_i) / sum_j w_j``, whose *sum* has the
    designed gradient.
    """

    def __init__(self, lam: float, beta: float, eps: float = 1e-6,
                 reduction: str = "mean", check_inputs: bool = True):
        super().__init__()
        self.lam = _checks.nonnegative("lam", lam)
        self.beta = _checks.real("beta", beta)
        self.eps = _checks.nonnegative("eps", eps)
        self.reduction = _checks.reduction(reduction, ("mean", "none"))
        self.check_inputs = bool(check_inputs)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The loss of ``logits`` [B, C] for class indices ``targets`` [B]; its
        backward pass gives the designed gradient (see the class docstring)."""
        _checks.logits_and_targets(logits, targets, self.check_inputs)
        t = _terms(logits, targets)
        normalised = torch.softmax(_w._dm_log(t.p, t.q, self.lam, self.beta), dim=0)
        magnitude = normalised
        if self.eps > 0:
            magnitude = normalised * (2 * t.q / (2 * t.q + self.eps))
        rows = magnitude[:, None] * t.direction
        values = _DesignedGradient.apply(logits, normalised * -t.log_p, rows)
        return values.sum() if self.reduction == "mean" else values

    def extra_repr(self):
        return f"lam={self.lam}, beta={self.beta}, eps={self.eps}"
