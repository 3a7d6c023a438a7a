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
divides or subtracts rounded numbers. Internally ``p`` and ``pbar = 1 - p``
are both computed from the logits in float32 (float64 for float64 logits),
from ``z_y`` and the log-sum-exp ``s`` of the other classes' logits
(``p = sigmoid(z_y - s)``, ``pbar = sigmoid(s - z_y)``, `_terms`): ``pbar`` is
the other classes' total probability, so it stays exact as p -> 1 in float32
and bfloat16, and nothing divides by it. One softmax over the other classes
gives both ``s`` and the direction, which backward scales row by row. The value is
returned in that compute dtype (float32 for float16 and bfloat16 logits); the
gradient in the logits' dtype.

Class weights: every module takes an optional ``weight``, one non-negative
finite number ``c_k`` per class (at least one > 0), with the meaning of
``torch.nn.CrossEntropyLoss(weight=...)``: example i's value and gradient are
multiplied by ``c_{y_i}``, and where a loss divides by the batch (a mean, a
normalisation) it divides by the batch's total ``sum_i c_{y_i}`` instead of
by ``B``. It is a buffer named ``weight`` that keeps the precision it was
given: a floating tensor or NumPy array keeps its dtype (a float32 one stays
float32), a list of Python floats or any integers become float64. Forward
casts it to the compute dtype, so in float64 the weights are exactly those
given, as in ``torch.nn.CrossEntropyLoss``. Like any buffer (and like
torch's), it moves with ``.to(device)`` and is cast by the module's dtype
casts (``.double()``, ``.half()``, ...); a loss needs none of those, since
forward casts the weight to the compute dtype. A float64 weight that does not survive the cast to float32 (an entry above
float32's range, or every entry below it) is an error when the logits are
computed in float32 and ``check_inputs=True``; with float64 logits it is
used as given.

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

__all__ = ["CCE", "MAE", "MSE", "GCE", "SL", "DN", "DMLoss", "METHODS", "make"]


class _Terms(NamedTuple):
    p: torch.Tensor          # [B] probability of the labelled class
    pbar: torch.Tensor       # [B] 1 - p, the other classes' total probability
    log_p: torch.Tensor      # [B] log p, exact also as p -> 1
    direction: torch.Tensor  # [B, C] softmax_others - onehot(y) = 2 d (see module docstring)


def _terms(logits: torch.Tensor, targets: torch.Tensor) -> _Terms:
    """p, pbar = 1 - p, log p and CCE's direction, computed without autograd,
    for logits [..., C] and targets [...] (the terms then have shape [...]).

    One softmax over the *other* classes (the labelled logit set to -inf)
    gives the direction and ``s``, the log-sum-exp of the other classes'
    logits: its largest entry is ``exp(top - s)``, ``top`` the largest other
    logit, and lies in [1/(C-1), 1], so ``s = top - log(largest entry)`` is
    exact to rounding. With ``b = z_y - s = log(p / (1 - p))``,
    ``p = sigmoid(b)``, ``pbar = sigmoid(-b)`` and ``log p = logsigmoid(b)``:
    each exact at either end, with no subtraction of rounded probabilities.
    """
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

    If the wrapped loss has a class weight ``c``, each example's weight is
    ``c_{y_i} w_i`` before normalising (the meaning of torch's ``weight``, as
    in `DMLoss`), and the value is its weighted mean
    ``sum_i c_{y_i} L_i / sum_j c_{y_j}``.

    ``distributed``: under `torch.nn.parallel.DistributedDataParallel` each
    process sees a slice of the global batch. With ``distributed=False`` (the
    default) each process normalises over its own slice, so each slice's
    gradients sum to one and DDP averages them: a different method from
    normalising over the global batch. With ``distributed=True`` the
    normaliser ``sum_j w_j`` (and the value's ``B`` or ``sum_j c_{y_j}``) is
    the global batch's, summed over the default process group's N processes
    by one all-reduce (a constant for backward), and each example's gradient
    is multiplied by N, so that DDP's average of the N processes' gradients is
    exactly the gradient of one process on the concatenated batch. The value
    is then N times this process's share of the global batch's value; its
    mean over the processes is the global batch's value. It needs an
    initialised default process group (``torch.distributed.init_process_group``,
    e.g. under ``torchrun``); with one process it equals ``distributed=False``.
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
    bound (chapter 5 of the book measures it). The default ``1e-6`` is the
    authors' Caffe layer's: ``UnifiedWeightLossLayer<Dtype>::Backward_cpu``
    divides CCE's gradient by ``2 - 2 * prob_data[...] + Dtype(1e-6)``
    (XinshaoAmosWang/DerivativeManipulation:
    ``DerivativeManipulation_Code/CaffeMex_UnifiedWeight_V01/src/caffe/layers/unified_weight_loss_layer.cpp``,
    line 202, commit c53f8e7; the same file is in
    XinshaoAmosWang/Improving-Mean-Absolute-Error-against-CCE under
    ``IMAE_Code/``, commit 5f39760; both repositories removed it in May
    2020). The push fades once ``1 - p`` is near ``eps``.

    Where `dm` differs from the authors' code: `dm` uses eq. 12 exactly,
    ``p^lam`` with no shift, and computes ``1 - p`` as the other classes'
    total probability. Both of the authors' codes form ``1 - p`` by
    subtracting the rounded softmax probability from 1 (exactly 0 in float32
    once p rounds to 1; chapter 5 of the book). Their Caffe layer computes
    the weight as ``2.718281828^(scale * p^lamda_p * (1 - p))`` from
    ``(1 - prob_data[...])`` (lines 117-121 and 185-189 of the file above,
    through the header's ``softmaxT(x, T, base) = pow(base, T * x)``) and
    starts the batch sum of the weights at ``Dtype(1e-8)`` (line 110).
    Their later PyTorch code divides by ``2.0 * (1.0 - p_i) + 1e-8`` and
    takes the weight as
    ``torch.exp(dm_beta * (1.0 - p_i) * torch.pow(p_i + 1e-8, dm_lambda))``,
    i.e. ``(p + 1e-8)^lam`` (XinshaoAmosWang/ProSelfLC-AT:
    ``src/proselflc/trainer/trainer_cnn_vision.py``, lines 263-280 at commit
    363b037; also XinshaoAmosWang/DeepCriticalLearning:
    ``src/proselflc/trainer/trainer_cnn_vision_derivedgrad.py``, lines
    353-374 at commit 17fb603, which adds ``1e-8`` to each weight as well).

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

    ``beta < 0`` is allowed: the weight then grows with p, favouring easy
    examples (e.g. ``lam=0, beta=-0.52``).

    ``weight``: optional per-class weight ``c`` with the meaning of
    ``torch.nn.CrossEntropyLoss(weight=...)``: it multiplies each example's
    weight before the batch normalisation,
    ``w_i' = c_{y_i} exp(beta p_i^lam (1 - p_i))``, normalised to
    ``w_i' / sum_j w_j'`` (still a softmax, of ``beta p^lam (1-p) + log c_y``),
    and the value becomes ``sum_i w_i' (-log p_i) / sum_j w_j'``. Class weight
    times example weight is the hierarchical (class x example) weighting the
    authors suggested in their rebuttal (Wang et al., arXiv:1905.11233, CVPR
    2021 rebuttal). An example whose class weight is 0 gets exactly zero
    gradient; a batch whose examples all have class weight 0 gets a zero
    gradient and value 0.

    ``distributed``: under `torch.nn.parallel.DistributedDataParallel` (e.g.
    ``torchrun``) each process sees a slice of the global batch. With
    ``distributed=False`` (the default) each process normalises over its own
    slice, so each slice's gradients sum to one and DDP averages them: an
    example's share is its weight over its slice's total, which changes the
    method. Use ``distributed=True`` with DDP: the normaliser is then the
    global batch's ``sum_j w_j`` over the default process group's N
    processes (its log-sum-exp, from an all-reduce MAX of the log weights and
    an all-reduce SUM of their exponentials less that maximum, so a large
    ``beta`` cannot overflow; a constant for backward), and each example's
    gradient is multiplied by N, so that DDP's average of the N processes'
    gradients is exactly the gradient of one process on the concatenated
    batch. The value (and ``reduction="none"``'s terms) is then N times this
    process's share of the global batch's value; its mean over the processes
    is the global batch's value. It needs an initialised default process
    group (``torch.distributed.init_process_group``); with one process it
    equals ``distributed=False`` to float rounding.
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
    the global batch's mean, so they need nothing."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "DM":
        return DMLoss(lam, beta, check_inputs=check_inputs, weight=weight, distributed=distributed)
    name = method.removesuffix("-DN")
    args = (q,) if name == "GCE" else ()
    loss = {"CCE": CCE, "GCE": GCE, "MAE": MAE, "MSE": MSE}[name](*args, check_inputs=check_inputs, weight=weight)
    return DN(loss, distributed=distributed) if method.endswith("-DN") else loss
