"""What the experiment notebooks share: the switch between a full run and a
smoke run (`mode`), the scratch folder a smoke run works in, and Google
Drive on Colab (runs and data kept across a recycled machine)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple, Optional

import torch

__all__ = ["NotebookSetup", "mode", "check_mode", "smoke_scratch", "drive_folder", "drive_data_root"]


class NotebookSetup(NamedTuple):
    """What an experiment notebook's settings turn into (each experiment's ``notebook_setup``)."""
    mode: str             # "full" or "smoke"
    data: Any             # what the experiment's `run` trains on: real, or fabricated in its format
    base: Any             # the configuration every run starts from
    runs_dir: Path        # where the runs' folders go
    run_options: dict     # keyword arguments for `run`
    reviews: Any = None   # IMDB only: the reviews (`dm.data.imdb.Imdb`)
    features: Any = None  # IMDB only: their paragraph vectors (`dm.data.paragraph_vectors.Features`)


def mode() -> str:
    """The experiment notebooks' switch: ``$DM_MODE``, "full" (the paper's
    settings on the real data) or "smoke" (a few iterations on a fabricated
    tiny data set in the real one's format, on a CPU). Default "full"."""
    value = os.environ.get("DM_MODE", "full")
    if value not in ("full", "smoke"):
        raise ValueError(f"DM_MODE must be 'full' or 'smoke', got {value!r}")
    return value


def check_mode(value: Optional[str]) -> str:
    """``value``, or `mode` when it is None; ValueError unless "full" or "smoke"."""
    value = mode() if value is None else value
    if value not in ("full", "smoke"):
        raise ValueError(f"mode must be 'full' or 'smoke', got {value!r}")
    return value


def smoke_scratch() -> Path:
    """What a smoke-mode notebook runs in: one torch thread (fastest for tiny
    tensors, and robust on a busy machine) and a fresh temporary folder for
    its fabricated data and its runs."""
    import tempfile

    torch.set_num_threads(1)
    return Path(tempfile.mkdtemp(prefix="dm-smoke-"))


def drive_folder(name: str) -> Optional[Path]:
    """On Colab: Google Drive mounted, and the folder ``MyDrive/dm-runs/<name>``
    there (where a notebook keeps its runs, so a recycled machine loses
    nothing); elsewhere None."""
    import sys

    if "google.colab" not in sys.modules:
        return None
    from google.colab import drive

    drive.mount("/content/drive")
    return Path("/content/drive/MyDrive/dm-runs") / name


def drive_data_root() -> Optional[Path]:
    """On Colab: Google Drive mounted, and ``MyDrive/dm-data``, where the
    notebooks keep their downloaded data sets when they keep their runs on
    Drive, so a new virtual machine after a disconnect downloads nothing
    again; elsewhere None."""
    folder = drive_folder("")
    return None if folder is None else folder.parent / "dm-data"
