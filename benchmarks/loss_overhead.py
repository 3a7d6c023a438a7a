"""Time forward + backward of each dm loss against torch's cross entropy.

    python benchmarks/loss_overhead.py [--device cuda] [--batch 256] [--classes 100]

Prints milliseconds per call (median of repeated timings) and the ratio to
torch.nn.functional.cross_entropy on the same logits; on a GPU also the
number of device kernels one forward + backward launches (torch.profiler). Input checks are off
(check_inputs=False), as in a training loop. This measures the loss alone; a
training step adds the network, which dominates (issue: the CIFAR trainer's
benchmark measures whole steps).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
import torch.nn.functional as F

import dm


def timed(fn, device, repeats=50, inner=20):
    for _ in range(5):
        fn()
    samples = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        samples.append((time.perf_counter() - start) / inner)
    return statistics.median(samples) * 1e3


def kernels(fn) -> int:
    """Device kernels one call of ``fn`` launches (after a warm-up call)."""
    from torch.profiler import ProfilerActivity, profile

    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    return sum(1 for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    args = parser.parse_args()
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    z = torch.randn(args.batch, args.classes, device=device, dtype=dtype, requires_grad=True)
    y = torch.randint(0, args.classes, (args.batch,), device=device)

    def step(loss):
        def run():
            z.grad = None
            loss(z, y).backward()
        return run

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "CPU"
    print(f"device: {device} ({name}), torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"logits {args.batch}x{args.classes} {args.dtype}")
    cuda = device.type == "cuda"

    def count(loss):
        return f"  {kernels(step(loss)):3d} kernels" if cuda else ""

    reference = timed(step(F.cross_entropy), device)
    print(f"{'torch cross_entropy':28s} {reference:8.4f} ms   1.00x{count(F.cross_entropy)}")
    for label, loss in [("dm.CCE", dm.CCE(check_inputs=False)),
                        ("dm.GCE(0.7)", dm.GCE(0.7, check_inputs=False)),
                        ("dm.DN(dm.CCE())", dm.DN(dm.CCE(check_inputs=False))),
                        ("dm.DMLoss(0.5, 8)", dm.DMLoss(0.5, 8.0, check_inputs=False)),
                        ("dm.DMLoss, input checks on", dm.DMLoss(0.5, 8.0))]:
        ms = timed(step(loss), device)
        print(f"{label:28s} {ms:8.4f} ms {ms / reference:6.2f}x{count(loss)}")


if __name__ == "__main__":
    main()
