"""The DM authors' CIFAR-100 run logs: which accuracy Table 1 reports, and DM's beta per cell.

``dm/data/authors_cifar100_logs.json`` holds the test accuracy every 1000 iterations of each
published Table 1 run of the authors (`REPOSITORY`), with each run's lambda and beta and the
commit and path of its ``accuracy.txt``. Two facts follow, and this package builds on both:
Table 1 reports each run's **best** test accuracy, not the last one (`table1_best_matches`); the
beta of each DM cell of Table 1's symmetric columns is that of the run whose best accuracy is the
paper's number (`table1_beta`). They published no asymmetric-noise run. Where the logs come from:
chapter 8, sections "DM's beta in each cell" and "What the paper reports".
"""

from __future__ import annotations

import copy
import json
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from pathlib import Path
from typing import Optional

__all__ = ["LOGS", "REPOSITORY", "logs", "run_log", "table1_beta", "printed", "table1_best_matches"]

LOGS = Path(__file__).parents[1] / "data" / "authors_cifar100_logs.json"
REPOSITORY = "https://github.com/XinshaoAmosWang/DerivativeManipulation"


@lru_cache(maxsize=1)
def _logs() -> dict:
    return json.loads(LOGS.read_text(encoding="utf-8"))


def logs() -> list:
    """Every logged run, as a list of dicts (a copy).

    ``{"row", "column", "path", "iteration", "test_accuracy", "best", "best_iteration", "final", ...}``:
    ``row``/``column`` name its Table 1 cell, ``path`` its ``accuracy.txt`` in the repository at
    ``commit``."""
    data = _logs()
    runs = []
    for run in copy.deepcopy(data["runs"]):
        accuracy = run["test_accuracy"]
        best = max(range(len(accuracy)), key=accuracy.__getitem__)
        run.update(best=accuracy[best], best_iteration=run["iteration"][best], final=accuracy[-1],
                   commit=data["commit"], repository=data["repository"])
        runs.append(run)
    return runs


def run_log(row: str, column: str) -> Optional[dict]:
    """The logged run of Table 1 cell (``row``, ``column`` key), or None."""
    for run in logs():
        if run["row"] == row and run["column"] == column:
            return run
    return None


def printed(fraction: float) -> float:
    """A fraction as the paper prints it: percent, one decimal, halves rounded up.

    0.5315 -> 53.2, where Python's round gives 53.1."""
    return float((Decimal(repr(fraction)) * 100).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def table1_beta(lam: float, column: str) -> Optional[tuple]:
    """``(beta, source)`` of the authors' DM run with this lambda in a column of Table 1, or None.

    ``column``: a symmetric one; ``source``: the run folder's path in the repository; None where no
    such run was published. Raises RuntimeError where the log's lambda is not its row's."""
    rows = {0.0: "DM (lambda = 0)", 0.5: "DM (lambda = 0.5)", 1.0: "DM (lambda = 1)"}
    if lam not in rows:
        return None
    run = run_log(rows[lam], column)
    if run is None:
        return None
    if run["lam"] != lam:
        raise RuntimeError(f"{run['path']}: the log says lambda {run['lam']}, its row {lam}")
    return run["beta"], run["path"].rsplit("/", 1)[0]


def table1_best_matches(paper_rows: dict, columns: list) -> dict:
    """Which logged runs' best and final accuracies, as printed, equal Table 1's cell.

    ``{"best": [...], "final": [...], "neither": [...]}``, lists of ``(row, column)``, comparing as
    the paper prints numbers (`printed`). ``paper_rows``: Table 1's rows (name -> values);
    ``columns``: its column keys."""
    out = {"best": [], "final": [], "neither": []}
    for run in logs():
        paper = paper_rows[run["row"]][columns.index(run["column"])]
        cell = (run["row"], run["column"])
        best, final = printed(run["best"]) == paper, printed(run["final"]) == paper
        if best:
            out["best"].append(cell)
        if final:
            out["final"].append(cell)
        if not (best or final):
            out["neither"].append(cell)
    return out
