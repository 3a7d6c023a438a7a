"""Derivative Manipulation (Wang, Kodirov, Hua, Robertson, arXiv:1905.11233).

- `dm.weights`: example weights ||dL/dz||_1 as closed-form functions of p.
- `dm.losses`: losses as PyTorch modules whose gradients are those closed forms,
  derivative normalisation (`DN`) and DM itself (`DMLoss`).
- `dm.packed`: many losses evaluated at once on the stacked logits of many
  models (`Stacked`).
- `dm.noise`: reproducible label noise and its measurement.
- `dm.cifar`: CIFAR-10/100 through torchvision, batch augmentation on the
  device, and tiny fabricated archives in the official format.
- `dm.resnet`: the CIFAR ResNets of He et al. (2016).
- `dm.experiments`: the paper's CIFAR experiments, one resumable run per
  configuration, one JSON result per run; also a command line
  (``python -m dm.experiments --help``).
- `dm.imdb`: the aclImdb archive (Maas et al. 2011), verified and parsed, and
  the paper's positive:negative imbalance sampler.
- `dm.paragraph_vectors`: PV-DBOW features with Mesnil et al.'s settings,
  cached on disk.
- `dm.sentiment`: the paper's IMDB experiment (Table 5); also a command line
  (``python -m dm.sentiment --help``).
- `dm.gpus`: what a full CIFAR run would cost on a GPU never used (a T4, an
  L4, an A100): estimates scaled from the H200 measurements, and the memory
  of a pack counted from the model.
- `dm.runs`: what the experiments share: run folders, seeding, the
  checkpointed training loop, the notebooks' `DM_MODE` switch, and
  ``python -m dm.runs collect-results`` (finished runs into ``results/``).
- `dm.paper`: the paper's tables (one data file) beside our results.
- `dm.authors`: the DM authors' own run logs (Table 1 reports each run's best
  accuracy; the betas of its DM cells).
- `dm.digits`: a small real problem (scikit-learn's digits) for checking
  training behaviour on a CPU, with many small models trained at once.
- `dm.stats`: the book's rule for claims about training (a mean over seeds
  and its standard error); `dm.book`: what the chapters share (`glue`).
"""

from . import losses, noise, weights
from .losses import CCE, DMLoss, DN, GCE, MAE, MSE, SL

__version__ = "0.1.0"

__all__ = ["weights", "losses", "noise", "CCE", "MAE", "MSE", "GCE", "SL", "DN", "DMLoss"]
