"""Derivative Manipulation (Wang, Kodirov, Hua, Robertson, arXiv:1905.11233).

- `dm.weights`: example weights ||dL/dz||_1 as closed-form functions of p.
- `dm.losses`: losses as PyTorch modules whose gradients are those closed forms,
  derivative normalisation (`DN`) and DM itself (`DMLoss`).
- `dm.noise`: reproducible label noise and its measurement.
- `dm.digits`: a small real problem (scikit-learn's digits) for checking
  training behaviour on a CPU.
"""

from . import losses, noise, weights
from .losses import CCE, DMLoss, DN, GCE, MAE, MSE, SL

__version__ = "0.1.0"

__all__ = ["weights", "losses", "noise", "CCE", "MAE", "MSE", "GCE", "SL", "DN", "DMLoss"]
