"""pyproject.toml's torch floor is true: the torch running the tests is at
least the floor, and it has every torch API `dm` calls that arrived late in
torch 2.x, including those only the GPU path reaches (which the CPU tests
never call). scripts/torch_versions.sh runs this file, with the other
torch-only tests, under the floor and under the newest torch."""

import inspect
import re
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def version_tuple(text: str) -> tuple:
    return tuple(int(part) for part in re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", text).groups(default="0"))


def declared_floor() -> str:
    (floor,) = re.findall(r'"torch>=([0-9.]+)"', (ROOT / "pyproject.toml").read_text())
    return floor


def test_this_torch_is_at_least_the_declared_floor():
    assert version_tuple(torch.__version__) >= version_tuple(declared_floor()), torch.__version__


def test_the_apis_dm_needs_exist_in_this_torch():
    # dm.experiments: the fp16 path's gradient scaler (torch >= 2.3).
    assert hasattr(torch.amp, "GradScaler")
    # dm.training.step.resolve_precision, on a GPU: bf16 only where it is native (torch >= 2.4).
    assert "including_emulation" in inspect.signature(torch.cuda.is_bf16_supported).parameters
    # dm.hardware.hardware: the CPU's vector kernels (torch >= 2.1.2).
    assert callable(torch.backends.cpu.get_cpu_capability)
    # dm.training.gpus: saved-tensor hooks and the FLOP counter.
    assert hasattr(torch.autograd.graph, "saved_tensors_hooks")
    from torch.utils.flop_counter import FlopCounterMode  # noqa: F401
