"""What the DM authors' own files show: their CIFAR-100 run logs.

The authors published their Caffe/Matlab code and the run folders of Table 1
in github.com/XinshaoAmosWang/DerivativeManipulation (folders
``DerivativeManipulation_Code/CIFAR100_ResNet44_V03_*``). Each run folder
holds ``accuracy.txt``, the test accuracy every 1000 iterations of a
30k-iteration run; ``dm/data/authors_cifar100_logs.json`` holds those curves
(with the repository, commit and path of each file), read once from the
repository, not retyped. Each DM run's lambda and beta were read from its
network file (``lamda_p`` and ``scale`` of the ``UnifiedWeightLoss`` layer in
``<model folder>/train.prototxt``), since every folder name says "lambda1".

Two facts follow from the logs, and this package builds on both:

- Table 1 reports each run's **best** test accuracy over those 30
  evaluations, not the last one (`table1_best_matches`);
- the beta of each DM cell of Table 1's symmetric columns is the beta of the
  run folder whose best accuracy is the paper's number (`table1_beta`).

The authors published no asymmetric-noise run (only the scripts that make
the noisy labels), so the betas of Table 1's asymmetric columns stay guesses.
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
    """Every logged run, as ``{"row", "column", "path", "iteration",
    "test_accuracy", "best", "best_iteration", "final", ...}`` (a copy);
    ``row``/``column`` name its Table 1 cell, ``path`` its ``accuracy.txt``
    in the repository at ``commit``."""
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
    """A fraction as the paper prints it: percent, one decimal, halves
    rounded up (0.5315 -> 53.2, where Python's round gives 53.1)."""
    return float((Decimal(repr(fraction)) * 100).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def table1_beta(lam: float, column: str) -> Optional[tuple]:
    """``(beta, source)`` of the authors' DM run with this lambda in Table
    1's ``column`` (a symmetric one), ``source`` the run folder's path in the
    repository; None where no such run was published."""
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
    """Which of the logged runs' best and final accuracies, as the paper
    prints numbers (`printed`), equal Table 1's cell: ``{"best": [...],
    "final": [...], "neither": [...]}``, lists of ``(row, column)``.
    ``paper_rows``: Table 1's rows (name -> values); ``columns``: its
    column keys."""
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
