"""The book's rule for claims about training: a mean over seeds, and its
standard error.

A seeded run's numbers depend on the CPU's vector kernels, so a claim about
training rests on several seeds: `paired` gives the mean of the per-seed
differences between two methods that share each seed's data, initialisation
and batches, with its standard error, and `mean_se` the same for one set of
numbers. `Estimate.t` is the mean in standard errors; `reading` says what the
book's evidence rule lets a page say of an estimate, by the thresholds
`STATE_T` and `ASSERT_T`. The rule and why it is needed: :ref:`evidence-rule`
(the page "The evidence rule").
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np

__all__ = ["Estimate", "mean_se", "paired", "reading", "STATE_T", "ASSERT_T"]


class Estimate(NamedTuple):
    """A mean over ``n`` seeds and its standard error ``std(ddof=1) / sqrt(n)``."""
    mean: float
    se: float
    n: int

    @property
    def t(self) -> float:
        """The mean in standard errors (``inf`` if every seed agrees exactly
        on a non-zero value, 0 if all are 0)."""
        if self.se > 0:
            return self.mean / self.se
        return 0.0 if self.mean == 0 else math.copysign(math.inf, self.mean)

    def __str__(self) -> str:
        return f"{self.mean:+.3f} ± {self.se:.3f}"


def mean_se(values: Sequence[float]) -> Estimate:
    """The mean of ``values`` (one per seed) and its standard error."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or len(x) < 2:
        raise ValueError(f"need one value per seed for at least 2 seeds, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"values must be finite, got {x.tolist()}")
    return Estimate(float(x.mean()), float(x.std(ddof=1) / math.sqrt(len(x))), len(x))


def paired(a: Sequence[float], b: Sequence[float]) -> Estimate:
    """The mean of the per-seed differences ``a - b`` and its standard error:
    ``a[i]`` and ``b[i]`` must come from the same seed."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"a and b need one value per seed each, got shapes {a.shape} and {b.shape}")
    return mean_se(a - b)


# The evidence rule's thresholds (book/evidence.md): a difference is stated
# at |t| of about STATE_T or more, asserted at |t| > ASSERT_T, and in between
# reported as leaning, without a verdict.
STATE_T = 3.5
ASSERT_T = 2.0


def reading(estimate: Estimate) -> str:
    """What the evidence rule lets a page say of ``estimate``: "ahead" or
    "behind" (``|t| >= STATE_T``), "leaning ahead" or "leaning behind"
    (``ASSERT_T <= |t| < STATE_T``), else "not resolved" (never "no
    difference": a small ``|t|`` proves no absence)."""
    t = estimate.t
    side = "ahead" if t > 0 else "behind"
    if abs(t) >= STATE_T:
        return side
    if abs(t) >= ASSERT_T:
        return f"leaning {side}"
    return "not resolved"
