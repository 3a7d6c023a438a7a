"""The lines an experiment notebook prints above and below its tables:
which mode made the numbers, and where and how long they took."""

from __future__ import annotations

import torch

__all__ = ["mode_banner", "describe_runs"]


def mode_banner(mode: str, runs: int, data_name: str) -> str:
    """The line an experiment notebook prints above its reproduced table."""
    if mode == "smoke":
        return ("MODE: smoke. These are smoke numbers from a few iterations on fabricated data, "
                "NOT a reproduction:\nthe 'ours' entries stay empty and the paper's numbers are "
                "the target.")
    return f"MODE: full. {runs} runs with the paper's settings on the real {data_name}."


def describe_runs(results, mode: str) -> str:
    """Where and how long: the hardware, the summed training time (as stored
    in each result, so earlier sessions count) and the arithmetic."""
    results = list(results)
    if any(r["mode"] != mode for r in results):
        raise ValueError(f"results from another mode than {mode!r}")
    total = sum(r.get("device_seconds", r["wall_seconds"]) for r in results)
    packed = sum(r.get("pack_size", 1) > 1 for r in results)
    lines = [
        f"MODE: {mode}; torch {torch.__version__}",
        f"hardware: {', '.join(sorted({r['hardware'] for r in results}))}",
        f"total training time over {len(results)} runs: {total:.0f} s ({total / 3600:.2f} h)"
        + (f"; {packed} of them trained in packs, each counting its share of its pack's time"
           if packed else ""),
    ]
    if all("compiled" in r for r in results):
        lines.append(f"compiled: {sorted({r['compiled'] for r in results})}, "
                     f"precision: {sorted({r.get('precision', 'n/r') for r in results})}")
    return "\n".join(lines)
