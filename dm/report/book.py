"""What the book's chapters share that is not about DM itself.

`glue` puts a number computed on a page into its prose (myst-nb's ``glue``,
which the book build provides); where myst-nb is not installed, e.g. on Colab,
it does nothing and the numbers are read from the printed output.
"""

from __future__ import annotations

__all__ = ["glue", "glue_estimate"]


def glue(name: str, value, display: bool = False) -> None:
    """``myst_nb.glue(name, value, display)`` when myst-nb is installed;
    nothing otherwise. A NumPy scalar is passed as a Python number (myst-nb
    formats the ``repr`` of what it is given)."""
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        return
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        value = value.item()
    myst_glue(name, value, display=display)


def glue_estimate(name: str, estimate, scale: float = 1.0) -> None:
    """Glue a `dm.stats.Estimate` as three numbers: ``name`` (its mean times
    ``scale``, e.g. 100 for percentage points), ``name_se`` (its standard
    error, times ``scale``) and ``name_t`` (the mean in standard errors)."""
    glue(name, float(estimate.mean * scale))
    glue(f"{name}_se", float(estimate.se * scale))
    glue(f"{name}_t", float(estimate.t))
