"""The cells of the paper's tables as configurations, and the paper's printed numbers.

Table 1 (CIFAR-100), Table 9 (CIFAR-10) and Table 5 (IMDB), each cell built from a base
configuration; the paper's numbers are read from one file, ``dm/data/paper_tables.json``
(Tables 1, 5 and 9 of arXiv:1905.11233, in percent)."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Optional

from .. import _checks, losses
from . import authors
from .cifar import PAPER_CIFAR10_RESNET56, PAPER_CIFAR100
from .cifar import Config as CifarConfig
from .imdb import PAPER_IMDB
from .imdb import Config as ImdbConfig

__all__ = [
    "DATA", "table", "TABLE1_REFERENCE_ROWS", "table1_rows", "table1_columns", "TABLE1_ROWS", "GUESSED",
    "TABLE1_DM_BETA", "table1_config", "table1_beta_source", "table9_rows", "parse_table9_model",
    "table9_config", "table5_rows", "table5_columns", "TABLE5_ROWS", "TABLE5_DM", "IMBALANCE_EXTRA",
    "TABLE5_SEEDS", "table5_config", "table5_configs", "table_configs", "shard",
]

DATA = Path(__file__).parents[1] / "data" / "paper_tables.json"


@lru_cache(maxsize=1)
def _tables() -> dict:
    return json.loads(DATA.read_text(encoding="utf-8"))


def table(name: str) -> dict:
    """The raw record of one of the paper's tables: ``"table1"``, ``"table9"`` or ``"table5"``.

    A copy: changing it changes nothing here. Raises ValueError for any other name."""
    tables = _tables()
    if name not in tables or not isinstance(tables[name], dict):
        names = [k for k, v in tables.items() if isinstance(v, dict)]
        raise ValueError(f"table must be one of {names}, got {name!r}")
    return copy.deepcopy(tables[name])


# Table 1 rows that report another paper's numbers (the SL paper,
# wang2019sl): shown as reference rows with the paper's numbers only; this
# package does not run them.
TABLE1_REFERENCE_ROWS = ("SL (from the SL paper)",)


# --- Table 1: CIFAR-100, ResNet-44 -------------------------------------------

def table1_rows() -> list:
    """Table 1's own rows (the DM paper's runs), in the paper's order.

    The reference rows of `TABLE1_REFERENCE_ROWS` are left out."""
    return [row for row in table("table1")["rows"] if row not in TABLE1_REFERENCE_ROWS]


def table1_columns() -> list:
    """Table 1's column records, in the paper's order.

    E.g. ``{"key": "s0.4", "noise": "symmetric", "rate": 0.4}``."""
    return table("table1")["columns"]


def _column(column) -> dict:
    if isinstance(column, dict):
        return column
    for record in table1_columns():
        if record["key"] == column:
            return record
    raise ValueError(f"unknown Table 1 column {column!r}")


# Table 1's rows as method settings. DM's beta per column: the beta of the
# authors' run folder whose best accuracy is the paper's cell (dm.experiments.authors);
# the asymmetric columns have no published run, so their beta is a guess.
TABLE1_ROWS = {
    "CCE": {"method": "CCE"}, "GCE": {"method": "GCE"},
    "MAE": {"method": "MAE"}, "MSE": {"method": "MSE"},
    "CCE-DN": {"method": "CCE-DN"}, "GCE-DN": {"method": "GCE-DN"},
    "MAE-DN": {"method": "MAE-DN"}, "MSE-DN": {"method": "MSE-DN"},
    "DM (beta = 0)": {"method": "DM", "lam": 1.0, "beta": 0.0},
    "DM (lambda = 0)": {"method": "DM", "lam": 0.0},
    "DM (lambda = 0.5)": {"method": "DM", "lam": 0.5},
    "DM (lambda = 1)": {"method": "DM", "lam": 1.0},
}


GUESSED = ("guessed: the authors published no asymmetric-noise run (searched every commit of their "
           "repositories); the beta of their s0.2 run with this lambda")


def _table1_dm_beta() -> dict:
    # (lambda, column key) -> (beta, source): the source is the run folder's
    # path in the authors' repository, or GUESSED. Columns as in dm/data/paper_tables.json.
    table = {}
    for lam in (0.0, 0.5, 1.0):
        for key in ("clean", "s0.2", "s0.4", "s0.6"):
            table[(lam, key)] = authors.table1_beta(lam, key)
        for key in ("a0.2", "a0.3", "a0.4"):
            table[(lam, key)] = (table[(lam, "s0.2")][0], GUESSED)
    return table


TABLE1_DM_BETA = _table1_dm_beta()


def table1_config(row: str, column, base: CifarConfig = PAPER_CIFAR100) -> CifarConfig:
    """The `dm.experiments.cifar.Config` of one Table 1 cell, built from ``base``.

    ``row`` one of `TABLE1_ROWS`, ``column`` a column record
    (``{"key": "s0.4", "noise": "symmetric", "rate": 0.4}``) or its key; DM's beta from
    `TABLE1_DM_BETA`. Raises ValueError for an unknown row or column."""
    if row not in TABLE1_ROWS:
        raise ValueError(f"row must be one of {list(TABLE1_ROWS)}, got {row!r}")
    column, settings = _column(column), dict(TABLE1_ROWS[row])
    if settings["method"] == "DM" and "beta" not in settings:
        settings["beta"] = TABLE1_DM_BETA[(settings["lam"], column["key"])][0]
    return dataclasses.replace(base, noise=column["noise"], noise_rate=column["rate"], **settings)


def table1_beta_source(row: str, column) -> Optional[str]:
    """Where the DM beta of a Table 1 cell came from: the authors' run folder, or `GUESSED`.

    None for non-DM rows and "DM (beta = 0)"."""
    settings = TABLE1_ROWS[row]
    if settings["method"] != "DM" or "beta" in settings:
        return None
    return TABLE1_DM_BETA[(settings["lam"], _column(column)["key"])][1]


# --- Table 9: CIFAR-10, ResNet-56, symmetric noise ----------------------------

_DM_MODEL = re.compile(r"^DM (?:lambda=(?P<lam>[0-9.]+), )?beta=(?P<beta>-?[0-9.]+)$")


def table9_rows() -> list:
    """Table 9's rows, in the paper's order: ``{"rate", "model", "values"}``."""
    return table("table9")["rows"]


def parse_table9_model(model: str) -> dict:
    """The method settings a Table 9 model string names, as a dict of `Config` fields.

    ``"CCE"`` -> ``{"method": "CCE"}``; ``"DM lambda=0.5, beta=12"`` ->
    ``{"method": "DM", "lam": 0.5, "beta": 12.0}``. ``"DM beta=0"`` gives every example the weight
    exp(0) = 1 whatever lambda is, so lambda is taken from Table 1's "DM (beta = 0)" row
    (`TABLE1_ROWS`). Raises ValueError for a string it cannot parse."""
    if model in losses.METHODS and model != "DM":
        return {"method": model}
    match = _DM_MODEL.match(model)
    if match is None:
        raise ValueError(f"cannot parse the Table 9 model {model!r}")
    beta = float(match["beta"])
    if match["lam"] is None:
        if beta != 0:
            raise ValueError(f"{model!r}: a DM model without lambda must have beta=0")
        lam = TABLE1_ROWS["DM (beta = 0)"]["lam"]
    else:
        lam = float(match["lam"])
    return {"method": "DM", "lam": lam, "beta": beta}


def table9_config(row: dict, base: CifarConfig = PAPER_CIFAR10_RESNET56) -> CifarConfig:
    """The `dm.experiments.cifar.Config` of one Table 9 row (symmetric noise at ``row["rate"]``)."""
    return dataclasses.replace(base, noise="symmetric", noise_rate=float(row["rate"]),
                               **parse_table9_model(row["model"]))


# --- Table 5: IMDB -----------------------------------------------------------

def table5_rows() -> list:
    """Table 5's rows in the paper's order: "r = 0.0", "r = 0.2", "r = 0.4", "P-N 10:1", "P-N 50:1"."""
    return list(table("table5")["rows"])


def table5_columns() -> list:
    """Table 5's columns: the nine methods, in the paper's order."""
    return table("table5")["columns"]


# Table 5's rows: the data each trains on, and DM's (lambda, beta) there (paper, Section 4).
TABLE5_ROWS = {
    "r = 0.0": {"noise_rate": 0.0}, "r = 0.2": {"noise_rate": 0.2}, "r = 0.4": {"noise_rate": 0.4},
    "P-N 10:1": {"imbalance": 10}, "P-N 50:1": {"imbalance": 50},
}


TABLE5_DM = {"r = 0.0": (0.0, 0.9), "r = 0.2": (0.0, -0.52), "r = 0.4": (0.0, -0.33),
             "P-N 10:1": (0.3, 6.5), "P-N 50:1": (0.3, 6.5)}


# Beyond the paper, for the imbalance rows: class weighting alone, and DM on top of it
# (the hierarchical class x example weighting the authors' rebuttal suggests).
IMBALANCE_EXTRA = ("CCE + class weights", "DM + class weights")


# The seeds of the book's Table 5: the paper's 123 and the next four.
TABLE5_SEEDS = (123, 124, 125, 126, 127)


def table5_config(row: str, column: str, features: str, base: ImdbConfig = PAPER_IMDB) -> ImdbConfig:
    """The `dm.experiments.imdb.Config` of one Table 5 cell, built from ``base``.

    ``row`` a key of `TABLE5_ROWS`, ``column`` a method of `dm.losses.METHODS` or one of
    `IMBALANCE_EXTRA`; ``features`` the paragraph vectors' cache key. Raises ValueError for an
    unknown row or column."""
    if row not in TABLE5_ROWS:
        raise ValueError(f"row must be one of {list(TABLE5_ROWS)}, got {row!r}")
    settings = dict(TABLE5_ROWS[row], features=features)
    if column in IMBALANCE_EXTRA:
        settings.update(class_weight="balanced")
        column = column.removesuffix(" + class weights")
    elif column not in losses.METHODS:
        raise ValueError(f"column must be one of {losses.METHODS + IMBALANCE_EXTRA}, got {column!r}")
    settings["method"] = column
    if column == "DM":
        settings["lam"], settings["beta"] = TABLE5_DM[row]
    return dataclasses.replace(base, **settings)


def table5_configs(features: str, base: ImdbConfig = PAPER_IMDB, rows=None, seeds=None) -> dict:
    """``{(row, column): Config}`` for every cell of Table 5, or with ``seeds`` once per seed.

    All of ``rows`` (default every row): the nine methods in each row, and the two class-weighted
    ones (`IMBALANCE_EXTRA`) in the imbalance rows, 49 cells. With ``seeds`` (distinct non-negative
    ints; ValueError otherwise): ``{(row, column, seed): Config}``."""
    rows = list(TABLE5_ROWS) if rows is None else list(rows)
    cells = {(row, column): table5_config(row, column, features, base)
             for row in rows
             for column in losses.METHODS + (IMBALANCE_EXTRA if TABLE5_ROWS.get(row, {}).get("imbalance") else ())}
    if seeds is None:
        return cells
    seeds = list(seeds)
    if not seeds or len(set(seeds)) != len(seeds) or any(
            isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
        raise ValueError(f"seeds must be distinct non-negative integers, got {seeds!r}")
    return {(row, column, seed): dataclasses.replace(config, seed=seed)
            for (row, column), config in cells.items() for seed in seeds}


# --- a table's share --------------------------------------------------------

def table_configs(table: str, base: CifarConfig, rows=None, columns=None) -> dict:
    """The cells of ``table`` ("table1" or "table9") built from ``base``: ``{(row, column): Config}``.

    Column by column, the order in which they pack (`dm.experiments.cifar.packs`). Table 1: rows are
    the paper's method rows, columns its keys ("clean", "s0.4", "a0.2", ...); Table 9: rows are its
    models ("CCE", "DM lambda=0.5, beta=12", ...), columns its noise rates ("0.4").
    ``rows``/``columns``: keep only those. Raises ValueError for another table or an unknown row or
    column."""
    if table == "table1":
        all_rows, all_columns = table1_rows(), [c["key"] for c in table1_columns()]
        cells = {(row, key): table1_config(row, key, base) for key in all_columns for row in all_rows}
    elif table == "table9":
        all_rows = list(dict.fromkeys(row["model"] for row in table9_rows()))
        all_columns = list(dict.fromkeys(f"{row['rate']:g}" for row in table9_rows()))
        cells = {(row["model"], f"{row['rate']:g}"): table9_config(row, base) for row in table9_rows()}
    else:
        raise ValueError(f"table must be 'table1' or 'table9', got {table!r}")
    for given, known, what in ((rows, all_rows, "row"), (columns, all_columns, "column")):
        unknown = [name for name in given or () if name not in known]
        if unknown:
            raise ValueError(f"unknown {table} {what} {unknown[0]!r}; the {what}s are {known}")
    return {key: config for key, config in cells.items()
            if (rows is None or key[0] in rows) and (columns is None or key[1] in columns)}


def shard(cells: dict, index: int, count: int) -> dict:
    """Shard ``index`` of ``count`` of ``cells``: a contiguous slice of their order.

    ``index`` is 0-based, as ``sbatch --array=0-<count-1>`` numbers its tasks; every cell is in
    exactly one shard and a shard's cells share as few packs as possible (Table 1 in 7 shards: one
    column each). Raises ValueError for a bad ``index`` or ``count``."""
    _checks.positive_integer("shard count", count)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < count:
        raise ValueError(f"shard index must lie in [0, {count - 1}], got {index!r}")
    keys = list(cells)
    chosen = keys[len(keys) * index // count:len(keys) * (index + 1) // count]
    return {key: cells[key] for key in chosen}
