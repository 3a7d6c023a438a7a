"""One optimisation step of a model that holds K members (K = 1: a plain
model; K > 1: a pack): forward under the run's precision, the K losses on
float32 logits, backward of their sum, the optimiser's step. With
data-parallel processes (``ddp``) each trains on its slice of the batch."""

from __future__ import annotations

import contextlib
from typing import Optional

import torch

__all__ = ["PRECISIONS", "AUTOCAST_DTYPES", "resolve_precision", "autocast", "memory_format",
           "process_group", "Step"]

PRECISIONS = ("bf16", "fp16", "fp32")
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_precision(precision: Optional[str], device: torch.device) -> str:
    """The training precision: ``precision`` if given, else bfloat16
    autocast on a CUDA GPU with native bfloat16 (A100, H100, ...), float16
    autocast with a gradient scaler on one without (Colab's T4, a V100), and
    float32 on a CPU. Raises ValueError for a name not in `PRECISIONS`."""
    if precision is None:
        if device.type != "cuda":
            return "fp32"
        return "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp16"
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS} or None, got {precision!r}")
    return precision


def autocast(device: torch.device, precision: str):
    """The autocast context of ``precision`` on ``device`` (a no-op for
    "fp32"): what the step, the evaluators and the benchmark run under."""
    dtype = AUTOCAST_DTYPES.get(precision)
    if dtype is None:  # torch 2.0 refuses autocast(..., torch.float32), even disabled
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype)


def memory_format(device: torch.device, precision: str) -> torch.memory_format:
    """Channels-last on CUDA with autocast (it pays off only with the tensor
    cores' half-precision kernels), else the contiguous format."""
    if device.type == "cuda" and precision in AUTOCAST_DTYPES:
        return torch.channels_last
    return torch.contiguous_format


def process_group(ddp: bool, batch_size: int) -> tuple:
    """``(rank, world size)`` of a data-parallel run, checked: the default
    process group is initialised and ``batch_size`` divides by its size;
    ``(0, 1)`` without ``ddp``. Raises RuntimeError or ValueError."""
    if not ddp:
        return 0, 1
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError("ddp=True trains over torch.distributed's default process group, but none is "
                           "initialised: start the processes with torchrun (python -m dm cifar --ddp does "
                           "the rest), or call torch.distributed.init_process_group() first")
    rank, world = dist.get_rank(), dist.get_world_size()
    if batch_size % world:
        raise ValueError(f"batch_size {batch_size} does not divide by the {world} processes of the "
                         f"data-parallel run")
    return rank, world


class Step:
    """``step(x, y)`` trains ``model`` (K members) on one batch and returns
    the members' losses, a detached float32 ``[K]`` tensor.

    ``loss(logits, y)`` gives the K losses (a 0-d tensor when K = 1) of
    float32 logits. ``precision`` ("bf16", "fp16" with a gradient scaler,
    "fp32"); ``compile``: call the model through ``torch.compile``. ``rank,
    world``: this process of a data-parallel run (`process_group`): it
    trains under DistributedDataParallel on its slice of the batch, and the
    loss returned is the global batch's."""

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, loss, *, members: int = 1,
                 device: torch.device = torch.device("cpu"), precision: str = "fp32", compile: bool = False,
                 rank: int = 0, world: int = 1):
        self.model, self.optimizer, self.loss, self.members = model, optimizer, loss, members
        self.device, self.precision, self.rank, self.world = device, precision, rank, world
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
        self.forward = model
        if world > 1:
            # Buffers (batch norm's running estimates) are the same in every
            # process already: they are updated from the global statistics.
            self.forward = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None, broadcast_buffers=False)
        if compile:
            self.forward = torch.compile(self.forward)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.world > 1:  # this process's slice of the whole batch
            share = len(x) // self.world
            x, y = x[self.rank * share:(self.rank + 1) * share], y[self.rank * share:(self.rank + 1) * share]
        with autocast(self.device, self.precision):
            logits = self.forward(x)
        losses = self.loss(logits.float(), y).reshape(self.members)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(losses.sum()).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        losses = losses.detach()
        if self.world > 1:  # the global batch's loss: the mean of the processes' values
            losses = losses.clone()
            torch.distributed.all_reduce(losses)
            losses /= self.world
        return losses
