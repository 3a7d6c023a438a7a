r"""Losses as designed derivatives (Wang et al., arXiv:1905.11233).

Each module is called as ``loss(logits, targets)``, with ``logits`` of shape
``[B, C]`` (any floating dtype, any device) and ``targets`` int64 class indices
of shape ``[B]``. No module differentiates its value: each loss's derivative
with respect to an example's logits ``z`` is ``w(p) * d``, with ``p`` the
softmax probability of the labelled class ``y``, ``w(p)`` the example's weight
(`dm.weights`) and ``d = (softmax_{not y}(z) - onehot(y)) / 2`` CCE's
direction at unit L1 norm (``softmax_{not y}``: the softmax over the other
classes). The modules compute in float32 (float64 for float64 logits) and
return the value in that dtype, the gradient in the logits' dtype.
``weight``: optional per-class weights ``c_k`` (finite, >= 0, one > 0) with the
meaning of ``torch.nn.CrossEntropyLoss(weight=...)``: example i's value and
gradient are multiplied by ``c_{y_i}``, and a division by the batch size ``B``
becomes one by ``sum_i c_{y_i}``; a buffer, kept in the precision given.
``check_inputs``: shapes and dtypes are always checked; finite logits, targets
in range and a float64 ``weight`` that fits float32 (for logits computed in
float32) only when it is true (the default), as reading values costs a device
sync. How the terms and the weights are computed: chapter 6, section "Inside
dm.losses".
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from . import _checks
from . import weights as _w

__all__ = ["CCE", "MAE", "MSE", "GCE", "SL", "DN", "DMLoss", "METHODS", "make"]


class _Terms(NamedTuple):
    p: torch.Tensor          # [B] probability of the labelled class
    pbar: torch.Tensor       # [B] 1 - p, the other classes' total probability
    log_p: torch.Tensor      # [B] log p, exact also as p -> 1
    direction: torch.Tensor  # [B, C] softmax_others - onehot(y) = 2 d (see module docstring)


def _terms(logits: torch.Tensor, targets: torch.Tensor) -> _Terms:
    """p, pbar = 1 - p, log p and CCE's direction (`_Terms`), computed without
    autograd in float32 (float64 for float64 logits), for logits [..., C] and
    targets [...] (the terms then have shape [...]). One softmax over the other
    classes gives the direction and their log-sum-exp ``s``; with
    ``b = z_y - s``, ``p = sigmoid(b)``, ``pbar = sigmoid(-b)`` and
    ``log p = logsigmoid(b)``, each exact at either end. Why: chapter 6,
    section "Inside dm.losses"."""
    dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
    z = logits.detach().to(dtype)
    index = targets.unsqueeze(-1)
    # A scatter, not F.one_hot: one_hot reads the targets' values (a host sync).
    others = z.scatter(-1, index, -math.inf)
    direction = torch.softmax(others, dim=-1)  # finite: there are >= 2 classes; 0 at the labelled class
    s = others.amax(-1) - torch.log(direction.amax(-1))
    direction.scatter_(-1, index, -1.0)
    b = z.gather(-1, index).squeeze(-1) - s
    return _Terms(torch.sigmoid(b), torch.sigmoid(-b), F.logsigmoid(b), direction)


class _DesignedGradient(torch.autograd.Function):
    """Returns ``value`` (the loss: a scalar, [B], or [K] for K stacked
    batches); backward gives the logits ([B, C], or [K, B, C]), in their
    dtype, the gradient ``grad_value * magnitude * d`` row by row:
    ``magnitude`` ([B] or [K, B]) is each example's gradient L1 norm for a
    unit ``grad_value``, and ``direction = 2 d`` (`_Terms`)."""

    @staticmethod
    def forward(ctx, logits, value, magnitude, direction):
        ctx.save_for_backward(magnitude, direction)
        ctx.logits_dtype = logits.dtype
        return value

    @staticmethod
    def backward(ctx, grad_value):
        magnitude, direction = ctx.saved_tensors
        half = 0.5 * grad_value.reshape(grad_value.shape + (1,) * (magnitude.dim() - grad_value.dim()))
        return (direction * (half * magnitude).unsqueeze(-1)).to(ctx.logits_dtype), None, None, None


def _class_weights(weight: torch.Tensor, targets: torch.Tensor, dtype) -> torch.Tensor:
    """``c_{y_i}`` for each example, shape [B], in the compute dtype."""
    return weight.to(dtype)[targets]


def _total(w: torch.Tensor, dim=None) -> torch.Tensor:
    """``w.sum()`` (over ``dim``, kept, if given), clamped to the smallest
    normal float so that a batch whose weights are all exactly zero gets a
    zero gradient rather than 0/0, with no host sync."""
    total = w.sum() if dim is None else w.sum(dim, keepdim=True)
    return total.clamp_min(torch.finfo(w.dtype).tiny)


def _world_size(owner: str) -> int:
    """The number of processes in torch.distributed's default process group,
    over whose global batch a loss with ``distributed=True`` normalises."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError(
            f"{owner}(distributed=True) normalises over the global batch of all processes and needs "
            "torch.distributed's default process group, but none is initialised: call "
            "torch.distributed.init_process_group() first (under torchrun too), or pass distributed=False")
    return dist.get_world_size()


def _all_reduce(x: torch.Tensor, op) -> torch.Tensor:
    """A copy of ``x`` reduced over all processes; ``x`` needs no gradient,
    so the result is a constant for the backward pass."""
    x = x.clone()
    torch.distributed.all_reduce(x, op=op)
    return x


def _softmax(x: torch.Tensor, distributed: bool) -> torch.Tensor:
    """``softmax(x)`` over the batch, ``x`` of shape [B]; with ``distributed``
    over the global batch of all N processes, times N (see `DMLoss`). The
    global maximum is subtracted first (all-reduce MAX, then SUM), so a large
    ``x`` cannot overflow; where every ``x`` is -inf (class weights all 0)
    the result is NaN, as torch.softmax's, for the caller to mask."""
    if not distributed:
        return torch.softmax(x, dim=0)
    world = _world_size("DMLoss")
    top = _all_reduce(x.amax(), torch.distributed.ReduceOp.MAX)
    e = torch.exp(x - torch.where(torch.isfinite(top), top, 0.0))
    return e / (_all_reduce(e.sum(), torch.distributed.ReduceOp.SUM) / world)


def _global_totals(w: torch.Tensor, count: torch.Tensor):
    """The global batch's ``sum_i w_i`` and ``count`` over the number of
    processes N, each clamped as `_total` does (one all-reduce; see `DN`)."""
    world = _world_size("DN")
    totals = _all_reduce(torch.stack([w.sum(), count.to(w.dtype)]), torch.distributed.ReduceOp.SUM) / world
    return totals.clamp_min(torch.finfo(w.dtype).tiny).unbind()


def _weight_repr(weight) -> str:
    if weight is None:
        return ""
    shown = ", ".join(f"{v:g}" for v in weight[:5].tolist())
    return f"weight=[{shown}{', ...' if len(weight) > 5 else ''}] ({len(weight)} classes)"


class _LogitLoss(nn.Module):
    """A loss of p alone: subclasses give its value and its example weight.

    ``weight``: optional per-class weight ``c`` (see the module docstring),
    the meaning of ``torch.nn.CrossEntropyLoss(weight=...)``: example i's
    value and gradient are multiplied by ``c_{y_i}``; ``"mean"`` divides by
    ``sum_i c_{y_i}`` (torch's weighted mean), ``"sum"`` sums, ``"none"``
    returns ``c_{y_i} L_i``. Where every example of a batch has class weight 0,
    ``"mean"`` gives value 0 and a zero gradient (torch gives NaN).
    """

    hyperparameters: tuple = ()
    """The names of the attributes the formulas (`value`, `example_weight`)
    read: `dm.packed` stacks them to evaluate many losses of a class at once."""

    def __init__(self, reduction: str = "mean", check_inputs: bool = True, *, weight=None):
        super().__init__()
        self.reduction = _checks.reduction(reduction, ("mean", "sum", "none"))
        self.check_inputs = bool(check_inputs)
        self.register_buffer("weight", _checks.class_weight(weight))

    def value(self, t: _Terms) -> torch.Tensor:
        """The per-example loss L(p), shape [B]."""
        raise NotImplementedError

    def example_weight(self, p, pbar):
        """The per-example weight ||dL/dz||_1 as a function of p and pbar = 1 - p."""
        raise NotImplementedError

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The loss of ``logits`` [B, C] for class indices ``targets`` [B]; its
        backward pass gives the designed gradient (see the class docstring)."""
        _checks.logits_and_targets(logits, targets, self.check_inputs, self.weight)
        t = _terms(logits, targets)
        value, w = self.value(t), self.example_weight(t.p, t.pbar)
        if self.weight is not None:
            c = _class_weights(self.weight, targets, value.dtype)
            value, w = c * value, c * w
        if self.reduction == "mean" and self.weight is None:
            value, w = value.mean(), w / len(w)
        elif self.reduction == "mean":  # torch's weighted mean
            total = _total(c)
            value, w = value.sum() / total, w / total
        elif self.reduction == "sum":
            value = value.sum()
        return _DesignedGradient.apply(logits, value, w, t.direction)

    def extra_repr(self):
        return _weight_repr(self.weight)


class CCE(_LogitLoss):
    r"""Categorical cross entropy, ``L = -log p``; gradient ``softmax(z) - onehot(y)``,
    weight ``2 (1 - p)``. Same values and gradients as
    ``torch.nn.CrossEntropyLoss``."""

    def value(self, t):
        return -t.log_p

    def example_weight(self, p, pbar):
        return _w._cce(p, pbar)


class MAE(_LogitLoss):
    r"""Mean absolute error as the paper defines it, ``L = 1 - p``;
    gradient ``p (softmax(z) - onehot(y))``, weight ``2 p (1 - p)``."""

    def value(self, t):
        return t.pbar

    def example_weight(self, p, pbar):
        return _w._mae(p, pbar)


class MSE(_LogitLoss):
    r"""Mean squared error as the paper defines it, ``L = (1 - p)^2``;
    gradient ``2 p (1 - p) (softmax(z) - onehot(y))``, weight ``4 p (1 - p)^2``."""

    def value(self, t):
        return t.pbar ** 2

    def example_weight(self, p, pbar):
        return _w._mse(p, pbar)


class GCE(_LogitLoss):
    r"""Generalised cross entropy (Zhang and Sabuncu 2018),
    ``L = (1 - p^q) / q`` with ``q`` in (0, 1]; gradient
    ``p^q (softmax(z) - onehot(y))``, weight ``2 p^q (1 - p)``."""

    hyperparameters = ("q",)

    def __init__(self, q: float = 0.7, reduction: str = "mean", check_inputs: bool = True, *, weight=None):
        super().__init__(reduction, check_inputs, weight=weight)
        self.q = _checks.gce_q(q)

    def value(self, t):
        return -torch.expm1(self.q * t.log_p) / self.q

    def example_weight(self, p, pbar):
        return _w._gce(p, pbar, self.q)

    def extra_repr(self):
        return ", ".join(filter(None, (f"q={self.q}", super().extra_repr())))


class SL(_LogitLoss):
    r"""Symmetric cross entropy (Wang et al. 2019), ``L = alpha * CCE + beta * RCE``
    with ``RCE = -sum_k p_k log y_k`` and ``log 0 = A < 0``, i.e.
    ``L = -alpha log p - beta A (1 - p)``; gradient
    ``(alpha - A beta p) (softmax(z) - onehot(y))``, weight
    ``2 (1 - p) (alpha - A beta p)``. The SL paper's settings: CIFAR-10
    alpha = 0.1, beta = 1; CIFAR-100 alpha = 6, beta = 0.1; A = -4."""

    hyperparameters = ("alpha", "beta", "A")

    def __init__(self, alpha: float, beta: float, A: float = -4.0,
                 reduction: str = "mean", check_inputs: bool = True, *, weight=None):
        super().__init__(reduction, check_inputs, weight=weight)
        self.alpha = _checks.nonnegative("alpha", alpha)
        self.beta = _checks.nonnegative("beta", beta)
        self.A = _checks.log_zero(A)

    def value(self, t):
        return -self.alpha * t.log_p - self.beta * self.A * t.pbar

    def example_weight(self, p, pbar):
        return _w._sl(p, pbar, self.alpha, self.beta, self.A)

    def extra_repr(self):
        return ", ".join(filter(None, (f"alpha={self.alpha}, beta={self.beta}, A={self.A}",
                                       super().extra_repr())))


class DN(nn.Module):
    r"""Derivative normalisation of a loss (paper eq. 8; the "-DN" rows of its
    tables).

    The gradient for example i is ``w_i / sum_j w_j * d_i``: the wrapped loss's
    direction, and its weight ``w_i`` (times the class weight ``c_{y_i}``, if
    the loss has one) over the batch's total, a constant for backward. So the
    L1 norms of the batch's gradients sum to one; a batch whose weights are all
    exactly zero (all p in {0, 1} for MAE, say) gets a zero gradient. The
    value, for logging (its autograd gradient is not the one backward
    returns), is the wrapped loss's batch mean (with class weights,
    ``sum_i c_{y_i} L_i / sum_j c_{y_j}``), so ``DN(CCE())`` logs like
    ``CCE()``; ``reduction="none"`` returns its terms (``L_i / B``), whose
    *sum* has the designed gradient.

    ``distributed=True`` (under `torch.nn.parallel.DistributedDataParallel`):
    the normaliser (and the value's ``B`` or ``sum_j c_{y_j}``) is the global
    batch's, summed over the default process group's N processes by one
    all-reduce, and each example's gradient is multiplied by N, so that DDP's
    average is exactly one process's gradient on the whole batch; the value is
    then N times this process's share. With one process it equals the default,
    which normalises each process's slice on its own (a different method).
    Raises TypeError if ``loss`` is not a `CCE`, `MAE`, `MSE`, `GCE` or `SL`,
    TypeError or ValueError for a bad ``reduction`` or input, RuntimeError for
    ``distributed=True`` without an initialised default process group. DDP in
    practice: the how-to page, section "Under DDP: distributed=True".
    """

    def __init__(self, loss: _LogitLoss, reduction: str = "mean", *, distributed: bool = False):
        super().__init__()
        if not isinstance(loss, _LogitLoss):
            raise TypeError(
                f"DN wraps one of dm.losses' CCE, MAE, MSE, GCE, SL, got {type(loss).__name__}")
        self.loss = loss
        self.reduction = _checks.reduction(reduction, ("mean", "none"))
        self.distributed = bool(distributed)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The loss of ``logits`` [B, C] for class indices ``targets`` [B]; its
        backward pass gives the designed gradient (see the class docstring)."""
        _checks.logits_and_targets(logits, targets, self.loss.check_inputs, self.loss.weight)
        t = _terms(logits, targets)
        w, value = self.loss.example_weight(t.p, t.pbar), self.loss.value(t)
        if self.loss.weight is not None:
            c = _class_weights(self.loss.weight, targets, w.dtype)
            w, value = c * w, c * value
        if self.distributed:
            total, count = _global_totals(w, w.new_tensor(len(w)) if self.loss.weight is None else c.sum())
        else:
            total, count = _total(w), len(w) if self.loss.weight is None else _total(c)
        value = value / count
        if self.reduction == "mean":
            value = value.sum()
        return _DesignedGradient.apply(logits, value, w / total, t.direction)

    def extra_repr(self):
        return "distributed=True" if self.distributed else ""


class DMLoss(nn.Module):
    r"""Derivative Manipulation, paper eq. 7 with eq. 12's weight and
    derivative normalisation over the batch. No loss is differentiated: the
    gradient for example i is

    .. math:: g_i = \frac{w_i}{\sum_j w_j}\,
                    \frac{2(1 - p_i)}{2(1 - p_i) + \epsilon}\, d_i,
              \qquad w_i = \exp\bigl(\beta\, p_i^{\lambda} (1 - p_i)\bigr),

    with ``d_i`` CCE's direction at unit L1 norm, so the L1 norms of the
    batch's gradients sum to at most one (exactly one while every
    ``1 - p_i >> eps``). ``eps=0`` is eq. 7 exactly; the default ``1e-6``, the
    authors' Caffe layer's, fades the push on examples the model fits
    (``1 - p`` near ``eps``), which DM's weight alone (``w(1) = 1``) never
    stops. ``lam >= 0``; ``beta < 0`` inverts the ranking (with ``lam=0`` the
    weight then grows with p, favouring easy examples, e.g. ``beta=-0.52``).
    ``weight``: optional per-class weight ``c`` with the meaning of
    ``torch.nn.CrossEntropyLoss(weight=...)``, multiplying ``w_i`` by
    ``c_{y_i}`` before the normalisation: an example of class weight 0 gets
    exactly zero gradient, and a batch of such examples alone a zero gradient
    and value 0.

    The value, for logging, is the DM-weighted cross entropy
    ``sum_i w_i (-log p_i) / sum_j w_j``: on CCE's scale, but not the loss
    whose gradient backward returns. ``reduction="none"`` returns its terms,
    whose *sum* has the designed gradient. ``distributed=True`` (under
    `torch.nn.parallel.DistributedDataParallel`) normalises over the global
    batch of the default process group's N processes and multiplies each
    example's gradient by N, so that DDP's average is exactly one process's
    gradient on the whole batch; the value (and the terms) is then N times
    this process's share, and with one process it equals ``distributed=False``
    to float rounding. Raises TypeError or ValueError for a bad argument or
    input, RuntimeError for ``distributed=True`` without an initialised
    default process group.

    The authors' code and where `dm` differs from it: chapter 6, section
    "dm.DMLoss and the authors' code". The learning rate, ``eps`` and DDP in
    practice: the how-to page, "Pitfalls".
    """

    hyperparameters = ("lam", "beta", "eps")
    """The attributes `log_weight` and `fade` read (see `_LogitLoss.hyperparameters`)."""

    def __init__(self, lam: float, beta: float, eps: float = 1e-6,
                 reduction: str = "mean", check_inputs: bool = True, *, weight=None,
                 distributed: bool = False):
        super().__init__()
        self.lam = _checks.nonnegative("lam", lam)
        self.beta = _checks.real("beta", beta)
        self.eps = _checks.nonnegative("eps", eps)
        self.reduction = _checks.reduction(reduction, ("mean", "none"))
        self.check_inputs = bool(check_inputs)
        self.register_buffer("weight", _checks.class_weight(weight))
        self.distributed = bool(distributed)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The loss of ``logits`` [B, C] for class indices ``targets`` [B]; its
        backward pass gives the designed gradient (see the class docstring)."""
        _checks.logits_and_targets(logits, targets, self.check_inputs, self.weight)
        t = _terms(logits, targets)
        log_w = self.log_weight(t.p, t.pbar)
        if self.weight is None:
            normalised = _softmax(log_w, self.distributed)
        else:
            c = _class_weights(self.weight, targets, log_w.dtype)
            # log 0 = -inf gives weight 0; if all are -inf the softmax is NaN,
            # and the mask turns it into zeros (no host sync).
            normalised = torch.where(c > 0, _softmax(log_w + torch.log(c), self.distributed), 0.0)
        value = normalised * -t.log_p
        if self.reduction == "mean":
            value = value.sum()
        return _DesignedGradient.apply(logits, value, normalised * self.fade(t.pbar), t.direction)

    def log_weight(self, p, pbar):
        """log of eq. 12's weight, ``beta p^lam (1 - p)`` (`dm.weights`)."""
        return _w._dm_log(p, pbar, self.lam, self.beta)

    def fade(self, pbar):
        """The share of the normalised weight that reaches the gradient,
        ``2(1 - p) / (2(1 - p) + eps)``, computed as ``(1 - p) / ((1 - p) + eps/2)``
        (the same float); exactly 1 where ``eps = 0``."""
        if isinstance(self.eps, torch.Tensor):  # dm.packed's stacked eps, [K, 1]
            return torch.where(self.eps > 0, pbar / (pbar + self.eps / 2), 1.0)
        return pbar / (pbar + self.eps / 2) if self.eps > 0 else torch.ones_like(pbar)

    def extra_repr(self):
        return ", ".join(filter(None, (f"lam={self.lam}, beta={self.beta}, eps={self.eps}",
                                       _weight_repr(self.weight),
                                       "distributed=True" if self.distributed else "")))


METHODS = ("CCE", "GCE", "MAE", "MSE", "CCE-DN", "GCE-DN", "MAE-DN", "MSE-DN", "DM")
"""The names `make` accepts: the rows of the paper's tables."""


def make(method: str, *, lam: float = 0.0, beta: float = 0.0, q: float = 0.7,
         weight=None, check_inputs: bool = True, distributed: bool = False) -> nn.Module:
    """The loss of one of the paper's table rows by name (`METHODS`), with the
    default reductions: e.g. ``make("GCE-DN", q=0.5)`` is ``DN(GCE(0.5))`` and
    ``make("DM", lam=0.5, beta=8)`` is ``DMLoss(0.5, 8.0)``. ``lam`` and
    ``beta`` are used by DM only, ``q`` by GCE only; ``weight`` is the
    per-class weight (see the module docstring). ``distributed`` goes to the
    losses that normalise over the batch (`DMLoss`, `DN`): under
    DistributedDataParallel they then normalise over the global batch. The
    others are plain means, which DDP's averaging of gradients already makes
    the global batch's mean, so they need nothing. Raises ValueError for a
    ``method`` not in `METHODS`."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "DM":
        return DMLoss(lam, beta, check_inputs=check_inputs, weight=weight, distributed=distributed)
    name = method.removesuffix("-DN")
    args = (q,) if name == "GCE" else ()
    loss = {"CCE": CCE, "GCE": GCE, "MAE": MAE, "MSE": MSE}[name](*args, check_inputs=check_inputs, weight=weight)
    return DN(loss, distributed=distributed) if method.endswith("-DN") else loss
