"""Derivative Manipulation (Wang, Kodirov, Hua, Robertson, arXiv:1905.11233).

The core, at the top level: `dm.weights` (example weights ||dL/dz||_1 as
closed-form functions of p), `dm.losses` (losses whose gradients are those
closed forms, derivative normalisation `DN` and DM itself, `DMLoss`),
`dm.packed` (K losses on K models' stacked logits), `dm.noise` (reproducible
label noise) and `dm.stats` (the book's rule for claims about training).

The layers below it, each importing only from those before it:
`dm.data` (data sets, caches, samplers), `dm.models` (ResNets, MLPs),
`dm.training` (the one loop, `dm.training.loop.fit`, and run folders),
`dm.experiments` (the paper's experiments and the cells of its tables),
`dm.report` (our results beside the paper's) and `dm.cli` (``python -m dm``).
"""

from . import losses, noise, weights
from .losses import CCE, DMLoss, DN, GCE, MAE, MSE, SL

__version__ = "0.1.0"

__all__ = ["weights", "losses", "noise", "CCE", "MAE", "MSE", "GCE", "SL", "DN", "DMLoss"]
