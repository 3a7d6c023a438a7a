"""Where data sets are cached, and files written so that a crash never
leaves half of one."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable

__all__ = ["default_root", "md5", "atomic_write"]


def default_root() -> Path:
    """Where data sets (CIFAR, IMDB, paragraph vectors) are cached:
    ``$DM_DATA`` if set, else ``~/.cache/dm``."""
    return Path(os.environ.get("DM_DATA", Path.home() / ".cache" / "dm"))


def md5(path) -> str:
    """The md5 hex digest of the file at ``path``, read in 1 MiB blocks."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """``write(tmp)`` then rename ``tmp`` to ``path``: a reader (or a resumed
    run after a crash) sees the old file or the new one, never half of one."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)
