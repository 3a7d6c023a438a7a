"""CIFAR ResNets (He, Zhang, Ren, Sun 2016, section 4.2), one network or K packed side by side.

A 3x3 convolution with 16 filters, three stages of ``n`` basic blocks (two 3x3 convolutions
each) with 16, 32 and 64 filters on 32x32, 16x16 and 8x8 maps, global average pooling and one
linear layer: depth ``6n + 2`` (`DEPTHS`; ResNet-8 for quick CPU checks only). Where a stage
widens, ``shortcut="A"`` (the default, He et al.'s option A) subsamples by 2 and pads the new
channels with zeros; ``"B"`` projects (a strided 1x1 convolution and batch norm). ``init``:
PyTorch's He normal over the fan-out for the convolutions and PyTorch's own linear layer
(``"kaiming_fan_out"``), or Caffe's "msra" filler, std ``sqrt(2 / fan_in)`` and biases 0, on
every convolution and the linear layer (``"msra"``). ``batchnorm``: `BatchNorm2d` (``"torch"``)
or `CaffeBatchNorm2d` (``"caffe"``). "B", "msra" and "caffe" are the authors' Caffe ResNet-44:
chapter 8, section "dm.models.resnet and the authors' Caffe network". Under
DistributedDataParallel, `batch_statistics_across_processes` makes every batch norm use the
global batch's statistics, so N processes train the network one process would.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..packed import join_states

__all__ = ["ResNet", "PackedResNet", "resnet", "depth_of", "DEPTHS", "INITS", "BATCHNORMS", "BatchNorm2d",
           "CaffeBatchNorm2d", "batch_statistics_across_processes"]

# The depths of He et al.'s CIFAR table, plus 8 for quick checks.
DEPTHS = (8, 20, 32, 44, 56, 110)
INITS = ("kaiming_fan_out", "msra")
BATCHNORMS = ("torch", "caffe")


class BatchNorm2d(nn.BatchNorm2d):
    """``torch.nn.BatchNorm2d`` that can take its training statistics over all processes.

    The same parameters, buffers and numbers as ``torch.nn.BatchNorm2d``. With
    ``across_processes = True`` (set by `batch_statistics_across_processes`), training normalises by
    the mean and the variance ``var`` of the global batch of all processes of torch.distributed's
    default group: ``(x - mean) / sqrt(var + eps) * weight + bias``, computed in float32 (float64
    for float64 input) through differentiable all-reduces and returned in ``x``'s dtype; the running
    estimates are updated as PyTorch does (momentum, the unbiased variance ``var * n / (n - 1)``),
    identically in every process. Any device and backend (gloo, NCCL); evaluation uses the running
    estimates, as always. Raises RuntimeError without a process group, ValueError for
    ``momentum=None``. How, and why not ``torch.nn.SyncBatchNorm``: the how-to page, section "Under
    DDP"."""

    across_processes: bool = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``torch.nn.BatchNorm2d``'s forward; in training with ``across_processes``, the global batch's."""
        if self.training and self.across_processes:
            return _batch_norm_across_processes(self, x)
        return super().forward(x)


class _SumAcrossProcesses(torch.autograd.Function):
    """``sum_r x_r`` over the processes of the default group, in every process, differentiably.

    Backward: the gradient of ``sum_s L_s`` with respect to ``x_r`` is ``sum_s dL_s/d(sum)``, the
    incoming gradients summed over the processes in turn."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        torch.distributed.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        torch.distributed.all_reduce(grad)
        return grad


def _batch_norm_across_processes(bn: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
    """Training-mode batch norm over the global batch (see `BatchNorm2d`)."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError("batch norm across processes needs torch.distributed's default process group, "
                           "but none is initialised: call torch.distributed.init_process_group() first")
    all_reduce = _SumAcrossProcesses.apply
    if bn.momentum is None:
        raise ValueError("batch norm across processes needs a momentum (a cumulative average is not supported)")
    xf = x.to(torch.promote_types(x.dtype, torch.float32))
    dims = (0, 2, 3)
    # The count as a device fill, not a copy from the host (no synchronisation).
    local = torch.cat([xf.sum(dims), xf.new_full((1,), float(x.numel() // x.shape[1]))])
    total = all_reduce(local)
    count = total[-1]
    mean = total[:-1] / count
    centred = xf - mean[None, :, None, None]
    var = all_reduce(centred.square().sum(dims)) / count
    scale = torch.rsqrt(var + bn.eps)
    if bn.affine:
        scale = scale * bn.weight
    y = centred * scale[None, :, None, None]
    if bn.affine:
        y = y + bn.bias[None, :, None, None]
    if bn.track_running_stats:
        with torch.no_grad():
            bn.num_batches_tracked.add_(1)
            bn.running_mean.lerp_(mean.detach().to(bn.running_mean.dtype), bn.momentum)
            bn.running_var.lerp_((var * count / (count - 1)).detach().to(bn.running_var.dtype), bn.momentum)
    return y.to(x.dtype)


def batch_statistics_across_processes(model: nn.Module) -> nn.Module:
    """Make every batch norm of ``model`` use the global batch's statistics in training.

    ``model``: a `ResNet` or `PackedResNet`, returned, its `BatchNorm2d` layers set
    ``across_processes``. Any other batch norm raises TypeError naming it, rather than being left to
    normalise each process's slice on its own."""
    for name, module in model.named_modules():
        if isinstance(module, BatchNorm2d):
            module.across_processes = True
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            raise TypeError(f"{name} is a {type(module).__name__}, not dm.models.resnet.BatchNorm2d: "
                            "it cannot take its statistics across processes")
    return model


class CaffeBatchNorm2d(BatchNorm2d):
    """Batch norm whose test-time mean and variance are Caffe's normalised moving average.

    Training mode is PyTorch's (batch statistics, eps 1e-5, the unbiased variance in the running
    estimate), which is Caffe's too. The running statistics start at zero, are updated with momentum
    ``1 - fraction`` (Caffe's ``moving_average_fraction``, default 0.999) and at test time are
    divided by ``1 - fraction ** t``, ``t`` = ``num_batches_tracked`` (0 for a layer never trained):
    Caffe's estimate ``S / Z``, with tensor operations only (no host sync, nothing for
    ``torch.compile`` to guard on). Derivation: chapter 8, section "dm.models.resnet and the
    authors' Caffe network"."""

    def __init__(self, num_features: int, fraction: float = 0.999, eps: float = 1e-5):
        super().__init__(num_features, eps=eps, momentum=1.0 - fraction)
        self.fraction = fraction
        self.reset_running_stats()

    def reset_running_stats(self) -> None:
        """Zero running mean and variance (Caffe's S = 0) and batch count."""
        super().reset_running_stats()
        self.running_var.zero_()  # S_0 = 0 for the variance too

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Batch statistics in training; Caffe's estimate at test time."""
        if self.training:
            return super().forward(x)
        steps = self.num_batches_tracked.to(self.running_mean.dtype)
        normaliser = 1.0 - self.fraction ** steps
        # Caffe uses 0 for an untrained layer (Z = 0): no division by zero here.
        scale = torch.where(normaliser > 0, 1.0 / normaliser.clamp_min(1e-30), torch.zeros_like(normaliser))
        return F.batch_norm(x, self.running_mean * scale, self.running_var * scale, self.weight, self.bias,
                            False, 0.0, self.eps)


def _norm(batchnorm: str):
    return CaffeBatchNorm2d if batchnorm == "caffe" else BatchNorm2d


class _Block(nn.Module):
    """A basic block, or with ``pack = K`` K blocks side by side (see `PackedResNet`).

    Packed, the input and output channels are the K members' channels one after another, and each
    convolution has ``groups = K``."""

    def __init__(self, in_planes: int, planes: int, stride: int, shortcut: str = "A",
                 batchnorm: str = "torch", pack: int = 1):
        super().__init__()
        norm = _norm(batchnorm)
        self.pack = pack
        self.conv1 = nn.Conv2d(pack * in_planes, pack * planes, 3, stride, 1, bias=False, groups=pack)
        self.bn1 = norm(pack * planes)
        self.conv2 = nn.Conv2d(pack * planes, pack * planes, 3, 1, 1, bias=False, groups=pack)
        self.bn2 = norm(pack * planes)
        self.pad = planes - in_planes  # option A: zero channels for the shortcut
        self.stride = stride
        self.projection = None
        if shortcut == "B" and (stride != 1 or self.pad):
            self.projection = nn.Sequential(
                nn.Conv2d(pack * in_planes, pack * planes, 1, stride, bias=False, groups=pack),
                norm(pack * planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x
        if self.projection is not None:
            shortcut = self.projection(x)
        elif self.stride != 1 or self.pad:
            shortcut = x[:, :, ::self.stride, ::self.stride]
            b, c, h, w = shortcut.shape
            # Each member's channels padded on their own: [B, K, C, H, W], pad C.
            shortcut = F.pad(shortcut.reshape(b, self.pack, c // self.pack, h, w),
                             (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
            shortcut = shortcut.reshape(b, c + self.pack * self.pad, h, w)
        return F.relu(out + shortcut)


def _layers(depth: int, shortcut: str, batchnorm: str, pack: int = 1):
    """The first convolution, its batch norm and the three stages, for one network or ``pack``.

    Each stage has ``(depth - 2) / 6`` blocks."""
    n = (depth - 2) // 6
    blocks, planes = [], 16
    for width, stride in ((16, 1), (32, 2), (64, 2)):
        for i in range(n):
            blocks.append(_Block(planes, width, stride if i == 0 else 1, shortcut, batchnorm, pack))
            planes = width
    return nn.Conv2d(3, pack * 16, 3, 1, 1, bias=False), _norm(batchnorm)(pack * 16), nn.Sequential(*blocks)


class ResNet(nn.Module):
    """A CIFAR ResNet of depth ``6n + 2`` for 3x32x32 inputs.

    ``shortcut``, ``init`` and ``batchnorm``: see the module docstring. Raises ValueError for an
    unknown option, a depth not in `DEPTHS` or fewer than 2 classes."""

    def __init__(self, depth: int = 44, num_classes: int = 10, shortcut: str = "A",
                 init: str = "kaiming_fan_out", batchnorm: str = "torch"):
        super().__init__()
        if shortcut not in ("A", "B"):
            raise ValueError(f"shortcut must be 'A' (zero padding) or 'B' (projection), got {shortcut!r}")
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        if batchnorm not in BATCHNORMS:
            raise ValueError(f"batchnorm must be one of {BATCHNORMS}, got {batchnorm!r}")
        if depth not in DEPTHS:
            raise ValueError(f"depth must be one of {DEPTHS} (6n+2), got {depth!r}")
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes!r}")
        self.depth = depth
        self.conv, self.bn, self.blocks = _layers(depth, shortcut, batchnorm)
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                mode = "fan_in" if init == "msra" else "fan_out"
                nn.init.kaiming_normal_(m.weight, mode=mode, nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if init == "msra":  # Caffe's msra filler on the inner product too, bias 0
            nn.init.kaiming_normal_(self.fc.weight, mode="fan_in", nonlinearity="relu")
            nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, num_classes]`` for images ``x`` of shape ``[B, 3, 32, 32]``."""
        x = F.relu(self.bn(self.conv(x)))
        x = self.blocks(x)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


class _PackedLinear(nn.Module):
    """K linear layers side by side: input ``[B, K * in]``, output ``[K, B, out]``.

    ``weight`` [K * out, in] and ``bias`` [K * out] are the members' own, one after another; member
    k's features are the input's k-th block."""

    def __init__(self, pack: int, in_features: int, out_features: int):
        super().__init__()
        self.pack, self.in_features, self.out_features = pack, in_features, out_features
        self.weight = nn.Parameter(torch.empty(pack * out_features, in_features))
        self.bias = nn.Parameter(torch.empty(pack * out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, n = self.pack, self.out_features
        features = x.reshape(x.shape[0], k, self.in_features).transpose(0, 1)      # [K, B, in]
        weight = self.weight.reshape(k, n, self.in_features).transpose(1, 2)       # [K, in, out]
        return torch.baddbmm(self.bias.reshape(k, 1, n), features, weight)


class PackedResNet(nn.Module):
    """K CIFAR ResNets of one architecture trained side by side as one network.

    ``PackedResNet(models)`` copies in the current weights of K `ResNet` s (TypeError for an empty
    list or anything else, ValueError for different architectures). Every layer holds the K members'
    layers side by side, so one kernel serves all K: the first convolution outputs K x 16 channels
    from the shared image, every later convolution is grouped (``groups = K``), batch norm keeps
    each member's own statistics, and the last layer is a batched matrix product. A batch
    ``[B, 3, 32, 32]`` gives logits ``[K, B, classes]``, member k's equal to ``models[k](x)`` up to
    float rounding (the grouped kernels add in their own order).

    The state dict has `ResNet`'s keys, each tensor the members' concatenated along dim 0 (0-d ones
    such as ``num_batches_tracked`` shared): `dm.packed.split_state` cuts it into K state dicts that
    a `ResNet` loads, `dm.packed.join_states` packs them. With an optimizer whose update is
    elementwise (SGD with momentum and weight decay), packed training is K trainings with each
    member's own weights, statistics and optimizer state, on the same batches."""

    def __init__(self, models: list):
        super().__init__()
        models = list(models)
        if not models or not all(isinstance(m, ResNet) for m in models):
            raise TypeError("PackedResNet packs a non-empty list of dm.models.resnet.ResNet")
        shapes = {tuple((k, tuple(v.shape), type(v)) for k, v in m.state_dict().items()) for m in models}
        kinds = {tuple(type(m).__name__ for m in model.modules()) for model in models}
        if len(shapes) > 1 or len(kinds) > 1:
            raise ValueError("PackedResNet packs ResNets of one architecture (depth, classes, "
                             "shortcut and batch norm kinds)")
        first = models[0]
        shortcut = "B" if any(b.projection is not None for b in first.blocks) else "A"
        batchnorm = "caffe" if isinstance(first.bn, CaffeBatchNorm2d) else "torch"
        self._build(len(models), first.depth, first.fc.out_features, shortcut, batchnorm)
        self.load_state_dict(join_states([m.state_dict() for m in models]))

    def _build(self, pack: int, depth: int, num_classes: int, shortcut: str, batchnorm: str) -> None:
        self.pack, self.depth, self.num_classes = pack, depth, num_classes
        self.conv, self.bn, self.blocks = _layers(depth, shortcut, batchnorm, pack)
        self.fc = _PackedLinear(pack, 64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[K, B, num_classes]`` for images ``x`` of shape ``[B, 3, 32, 32]``."""
        x = F.relu(self.bn(self.conv(x)))
        x = self.blocks(x)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


def depth_of(name: str) -> int:
    """The depth in a model name ``"resnet<depth>"``, checked against `DEPTHS`."""
    if not isinstance(name, str) or not name.lower().startswith("resnet") or not name[6:].isdigit():
        raise ValueError(f"model must be named 'resnet<depth>', got {name!r}")
    depth = int(name[6:])
    if depth not in DEPTHS:
        raise ValueError(f"depth must be one of {DEPTHS} (6n+2), got {depth!r} in {name!r}")
    return depth


def resnet(name_or_depth, num_classes: int, shortcut: str = "A", init: str = "kaiming_fan_out",
           batchnorm: str = "torch") -> ResNet:
    """``resnet("resnet44", 100)`` or ``resnet(44, 100)``."""
    depth = depth_of(name_or_depth) if isinstance(name_or_depth, str) else name_or_depth
    return ResNet(depth, num_classes, shortcut, init, batchnorm)
