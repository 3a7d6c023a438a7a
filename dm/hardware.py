"""What machine a run is on: the device to train on, its name as a result
records it, and the wait for a GPU's queued work."""

from __future__ import annotations

import platform

import torch

__all__ = ["resolve_device", "cpu_model", "hardware", "synchronize"]


def resolve_device(device) -> torch.device:
    """``device``, or CUDA when available and the CPU otherwise."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def cpu_model() -> str:
    """The CPU's model name (from ``/proc/cpuinfo`` where there is one)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware(device: torch.device = torch.device("cpu")) -> str:
    """The GPU's name; or the CPU's model, the vector kernels torch uses on it
    (they change a seeded run's rounding) and the number of torch threads."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    threads = torch.get_num_threads()
    return (f"CPU ({cpu_model()}, {torch.backends.cpu.get_cpu_capability()} kernels, "
            f"{threads} thread{'s' if threads > 1 else ''})")


def synchronize(device: torch.device) -> None:
    """Wait for the GPU's queued work (before reading a wall clock)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
