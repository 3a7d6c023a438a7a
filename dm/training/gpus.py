"""What a full CIFAR run costs on a GPU this project has never run on: estimates from the H200.

The only GPU measurements are on an NVIDIA H200 (``benchmarks/measured/*-h200.txt``, torch 2.11,
bf16, channels-last): `H200` holds the figures chapters 8 and 9 use, each with its file
(tests/test_gpus.py reads them back), and `h200_hours` projects runs from them. `estimate_hours`
scales H200 hours to a T4, an L4 or an A100, the GPUs Colab offers, by two ratios of published
figures and reports both: **compute**, the ratio of the cards' dense 16-bit tensor-core peaks
(`PEAK_TFLOPS`), and **bandwidth**, the ratio of their memory bandwidths (`BANDWIDTH_GBS`). Neither
is a measurement; what each rule assumes: chapter 8, "Before you run on Colab". `activation_bytes`
counts, on the CPU, the bytes the backward pass keeps per training image (PyTorch's saved-tensor
hooks, under 16-bit autocast), from which `training_memory` and `max_pack` derive how many runs
fit a card's memory.
"""

from __future__ import annotations

import contextlib
import functools
import math

import torch

from ..models import resnet

__all__ = ["PEAK_TFLOPS", "BANDWIDTH_GBS", "MEMORY_GIB", "H200", "step_flops", "h200_hours",
           "estimate_hours", "activation_bytes", "training_memory", "max_pack"]

#: Dense (no sparsity) 16-bit tensor-core peaks in TFLOP/s, from the vendors'
#: datasheets, in bf16 (fp16 on the T4, which has no bf16); the same figures
#: as benchmarks/train_step.py's PEAK_TFLOPS.
PEAK_TFLOPS = {"H200": 989.0, "A100": 312.0, "L4": 121.0, "T4": 65.0}
#: Memory bandwidth in GB/s, from the vendors' datasheets (for the A100, the
#: 40 GB card Colab offers).
BANDWIDTH_GBS = {"H200": 4800.0, "A100": 1555.0, "L4": 300.0, "T4": 320.0}
#: Memory of the cards Colab offers in GiB, nvidia-smi's totals as Colab users
#: report them (T4 15360 MiB, L4 23034 MiB, A100 40 GB 40960 MiB), not read on
#: those cards by this project.
MEMORY_GIB = {"T4": 15.0, "L4": 22.5, "A100": 40.0}

#: Measured on the H200, with the file that holds each figure.
H200 = {
    # benchmarks/measured/train_step-h200.txt, part 3: one packed training
    # step (forward, loss, backward, SGD) of K ResNet-44 runs, eager, batch 256.
    "step_ms": {1: 19.41, 4: 24.98, 12: 34.20},
    # The trainer (dm.experiments.cifar.run_packed), K = 12, per iteration with batch
    # drawing and augmentation: benchmarks/measured/train_step_trainer-h200.txt
    # (eager), train_step_compiled-h200.txt (compiled).
    "trainer_ms": {"eager": 32.98, "compiled": 25.51},
    # One evaluation of a pack of 12 on the test and the training set (60,000
    # images): train_step_trainer-h200.txt.
    "evaluation_s": 1.96,
    # Table 1 as projected from those, in hours: the same two files.
    "table1_hours": {"eager": 2.0, "compiled": 1.6},
    # The compiled benchmark (parts 3 and 4, which compiled a network three
    # times, and 2 x 5 x 200 timed steps): train_step_compiled-h200.txt. The
    # first call's compile time alone was not measured; this bounds it.
    "compiled_benchmark_total_s": 100,
    "model": "resnet44", "batch_size": 256,
}


@functools.lru_cache(maxsize=None)
def step_flops(model: str, num_classes: int, batch_size: int = 1) -> int:
    """FLOPs (an int) of one training step, forward and backward, of one run of ``model``.

    On ``batch_size`` images, counted by ``torch.utils.flop_counter`` on the meta device (nothing is
    computed)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        net = resnet.resnet(model, num_classes)
        x = torch.empty(batch_size, 3, 32, 32)
    with FlopCounterMode(display=False) as counter:
        net(x).sum().backward()
    return counter.get_total_flops()


def _interpolate(points: dict, k: float) -> float:
    """Piecewise-linear interpolation of ``points`` (key -> value) at ``k``.

    Outside the keys' range, extrapolated from the two nearest keys."""
    keys = sorted(points)
    if k in points:
        return points[k]
    below = [key for key in keys if key < k]
    above = [key for key in keys if key > k]
    lo, hi = ((below[-1], above[0]) if below and above
              else (keys[0], keys[1]) if above else (keys[-2], keys[-1]))
    return points[lo] + (points[hi] - points[lo]) * (k - lo) / (hi - lo)


def h200_hours(packs, compiled: bool = True, eval_train: bool = True) -> float:
    """Hours on the H200 for ``packs``: an estimate from the measurements in `H200`.

    ``packs``: lists of `dm.experiments.cifar.Config` that train together. The trainer's measured
    time per iteration for a pack of 12 (``compiled`` or eager), scaled to a pack of K by the
    measured packed steps (interpolated between K = 1, 4, 12), to another network by its FLOPs
    (`step_flops`) and to another batch size in proportion; plus the evaluations (the measured one,
    in proportion to the images evaluated and to K; the test set, and with ``eval_train`` the
    training set too). An estimate from measurements, not a measurement."""
    base_flops = step_flops(H200["model"], 100)
    per_iteration_12 = H200["trainer_ms"]["compiled" if compiled else "eager"] / 1e3
    seconds = 0.0
    for pack in packs:
        config, k = pack[0], len(pack)
        work = (step_flops(config.model, 100) / base_flops) * (config.batch_size / H200["batch_size"])
        step = per_iteration_12 * _interpolate(H200["step_ms"], k) / H200["step_ms"][12]
        evaluations = math.ceil(config.iterations / config.eval_every)
        images = 10_000 + (50_000 if eval_train else 0)
        evaluation = H200["evaluation_s"] * images / 60_000 * k / 12 * work
        seconds += config.iterations * step * work + evaluations * evaluation
    return seconds / 3600


def estimate_hours(h200: float, gpu: str) -> dict:
    """``h200`` hours on the H200 scaled to ``gpu``: ``{"compute": hours, "bandwidth": hours}``.

    By the two rules of the module's docstring; ``gpu`` is a key of `PEAK_TFLOPS` (KeyError
    otherwise)."""
    return {"compute": h200 * PEAK_TFLOPS["H200"] / PEAK_TFLOPS[gpu],
            "bandwidth": h200 * BANDWIDTH_GBS["H200"] / BANDWIDTH_GBS[gpu]}


def _saved_bytes(model: str, num_classes: int, dtype, batch_size: int) -> int:
    """Bytes of the storages autograd saves in one forward pass of ``model`` on the CPU.

    On ``batch_size`` images under ``dtype`` autocast; each storage counted once, the parameters
    themselves not."""
    torch.manual_seed(0)
    net = resnet.resnet(model, num_classes)
    x = torch.randn(batch_size, 3, 32, 32)
    storages = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        with torch.autocast("cpu", dtype) if dtype != torch.float32 else contextlib.nullcontext():
            net(x).float().sum()
    parameters = {p.untyped_storage().data_ptr() for p in net.parameters()}
    return sum(n for ptr, n in storages.items() if ptr not in parameters)


@functools.lru_cache(maxsize=None)
def activation_bytes(model: str, num_classes: int, dtype=torch.bfloat16, batch_size: int = 2) -> float:
    """Bytes (a float) the backward pass of one run of ``model`` keeps per training image.

    The growth of what autograd saves (`_saved_bytes`) from ``batch_size`` to twice that many
    images, divided by ``batch_size``, so what does not grow with the batch, such as the 16-bit
    copies of the weights, is left out. On a GPU the saved tensors have the same shapes and, under
    the same autocast ``dtype``, the same sizes; cuDNN's workspace and the allocator's slack are not
    counted."""
    small = _saved_bytes(model, num_classes, dtype, batch_size)
    return (_saved_bytes(model, num_classes, dtype, 2 * batch_size) - small) / batch_size


def training_memory(model: str, num_classes: int, k: int, batch_size: int = 256,
                    train_images: int = 50_000, test_images: int = 10_000) -> dict:
    """An estimate of the GPU memory, in GiB, of training a pack of ``k`` runs, part by part.

    ``{"activations", "weights, gradients, momentum", "data set (uint8)", "total"}``: the saved
    activations (`activation_bytes` x batch x k), each run's float32 weights, gradients and
    momentum, and the data set held on the GPU as uint8 (dm.experiments keeps it there). Not
    counted: the CUDA context, cuDNN's workspace, the allocator's slack, torch.compile's buffers
    (see `max_pack`'s ``reserve_gib``)."""
    gib = 2 ** 30
    parameters = sum(p.numel() for p in resnet.resnet(model, num_classes).parameters())
    parts = {
        "activations": activation_bytes(model, num_classes) * batch_size * k / gib,
        "weights, gradients, momentum": 3 * 4 * parameters * k / gib,
        "data set (uint8)": (train_images + test_images) * 3 * 32 * 32 / gib,
    }
    parts["total"] = sum(parts.values())
    return parts


def max_pack(model: str, num_classes: int, memory_gib: float, reserve_gib: float = 2.0,
             batch_size: int = 256, limit: int = 12) -> int:
    """The largest pack, from 1 to ``limit``, whose `training_memory` fits a card's memory.

    It must fit in ``memory_gib`` less ``reserve_gib`` for what that estimate leaves out (an
    allowance, not a measurement); 1 where none fits."""
    fits = [k for k in range(1, limit + 1)
            if training_memory(model, num_classes, k, batch_size)["total"] <= memory_gib - reserve_gib]
    return max(fits or [1])
