"""Our results beside the paper's tables, as Markdown (no pandas): *the paper's number / ours*.

Accuracies are stored as fractions and shown in percent; the paper's numbers and the cells'
configurations are `dm.experiments.tables`'. Only full-mode results on real data go in the
"ours" column, unless a caller asks for smoke results (``include_smoke=True``, for a table
labelled as a pipeline check). A result goes in the cell whose configuration equals its stored
``config``; one that matches no cell raises, so nothing lands in the wrong place silently.
"""

from __future__ import annotations

import dataclasses
import json
from functools import lru_cache
from pathlib import Path
from typing import Iterable, NamedTuple, Optional

from .. import stats
from ..experiments import authors, cifar as experiments, imdb as sentiment
from ..experiments.cifar import Config
from ..experiments.tables import (TABLE1_REFERENCE_ROWS, table, table1_columns, table1_config, table1_rows,
                                  table5_columns, table5_rows, table9_config, table9_rows)
from ..experiments import tables

__all__ = [
    "BLANK", "NOT_RECORDED", "TABLE9_MEASURES", "is_full", "data_copy",
    "table1_cells", "table9_cells", "table9_measures",
    "table1_markdown", "table9_markdown", "preset_differences_markdown", "table1_beta_markdown", "table1_beta_sources_markdown",
    "authors_logs_markdown", "table5_cells", "table5_markdown", "imbalance_markdown", "DEGENERATE",
    "RESULT_TABLES", "load_results", "Group", "Sorted", "sort_results", "results_markdown",
    "runs_markdown", "left_out_markdown", "Comparison", "table5_comparisons", "comparisons_markdown",
    "one_class_models",
]

BLANK = "—"          # no full-mode run of this cell
NOT_RECORDED = "n/r"  # a measure dm.experiments.cifar.run does not record

# --- Table 1: CIFAR-100, ResNet-44 -------------------------------------------

# --- Table 9: CIFAR-10, ResNet-56, symmetric noise ----------------------------

# Table 9's columns and where each comes from (see `table9_measures`).
TABLE9_MEASURES = {
    "best": "best test accuracy over the evaluations",
    "final": "test accuracy at the last iteration",
    "corrupted": "accuracy on the whole training set, against its corrupted (noisy) labels",
    "intact": "accuracy on the whole training set, against its intact (original) labels",
}

def table9_measures(result: dict) -> dict:
    """Table 9's four measures of one result: ``{"best", "final", "corrupted", "intact"}``.

    Fractions, None where not recorded (e.g. a run with ``eval_train=False``). "corrupted" and
    "intact" are the whole training set's accuracy against the corrupted and against the intact
    labels (``final_train_accuracy_noisy_labels``, ``final_train_accuracy_clean_labels``); why that
    reading of the paper: chapter 9, section "What the two training accuracies measure".
    """
    return {"best": result["best_test_accuracy"], "final": result["final_test_accuracy"],
            "corrupted": result.get("final_train_accuracy_noisy_labels"),
            "intact": result.get("final_train_accuracy_clean_labels")}


# --- placing results ----------------------------------------------------------

def is_full(result: dict) -> bool:
    """Whether ``result`` comes from a full-mode run (``DM_MODE=full``) on real data."""
    return result.get("mode") == "full" and not result.get("fabricated_data", False)


def _canonical(value):
    # A hashable form of a config value in which 1 == 1.0 and [1, 2] == (1, 2),
    # so a config read back from JSON compares equal to the one it was.
    if isinstance(value, (list, tuple)):
        return tuple(_canonical(v) for v in value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return value


def _config_key(config, drop: tuple = ()) -> tuple:
    # ``drop``: fields left out (Table 5 cells hold every seed of a configuration).
    fields = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else config
    return tuple(sorted((name, _canonical(value)) for name, value in fields.items() if name not in drop))


# Table 5's cells hold several runs each, one per seed (the seed sets the
# initialisation, the batches, the noise draw and the imbalanced subset).
_TABLE5_SEEDLESS = ("seed",)


def _place(results: Iterable[dict], cells: dict, include_smoke: bool) -> dict:
    # cells: _config_key(config) -> cell key. Returns cell key -> result.
    placed = {}
    for result in results:
        if not (include_smoke or is_full(result)):
            continue
        key = cells.get(_config_key(result["config"]))
        if key is None:
            raise ValueError(f"result {result.get('name')!r} matches no cell of the table "
                             "(was it trained from another base configuration?)")
        if key in placed:
            raise ValueError(f"two results for the cell {key!r}")
        placed[key] = result
    return placed


@lru_cache(maxsize=8)
def _table1_cells(base: Config) -> dict:
    return {_config_key(table1_config(row, col, base)): (row, col["key"])
            for row in table1_rows() for col in table1_columns()}


@lru_cache(maxsize=8)
def _table9_cells(base: Config) -> dict:
    return {_config_key(table9_config(row, base)): (row["rate"], row["model"])
            for row in table9_rows()}


def table1_cells(results: Iterable[dict], base: Config = experiments.PAPER_CIFAR100,
                 include_smoke: bool = False) -> dict:
    """``{(row, column key): result}`` for the results that belong in Table 1 built from ``base``.

    Smoke-mode results are left out unless ``include_smoke``. Raises ValueError for a result that
    matches no cell, or a second result for a cell."""
    return _place(results, _table1_cells(base), include_smoke)


def table9_cells(results: Iterable[dict], base: Config = experiments.PAPER_CIFAR10_RESNET56,
                 include_smoke: bool = False) -> dict:
    """``{(rate, model): result}`` for the results that belong in Table 9 built from ``base``.

    Smoke-mode results are left out unless ``include_smoke``. Raises ValueError for a result that
    matches no cell, or a second result for a cell."""
    return _place(results, _table9_cells(base), include_smoke)


# --- Markdown -----------------------------------------------------------------

def _percent(fraction: Optional[float], missing: str = BLANK) -> str:
    return missing if fraction is None else f"{100 * fraction:.1f}"


def _markdown(header: list, rows: list, align: list) -> str:
    lines = ["| " + " | ".join(header) + " |",
             "| " + " | ".join("---:" if a == "r" else ":---" for a in align) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(paper: Optional[float], ours: Optional[str], show_paper: bool) -> str:
    if not show_paper:
        return ours
    return f"{paper:.1f}" if ours is None else f"{paper:.1f} / {ours}"


_ACCURACY = {"final": "final_test_accuracy", "best": "best_test_accuracy"}


def table1_markdown(results: Iterable[dict] = (), base: Config = experiments.PAPER_CIFAR100, *,
                    accuracy: str = "best", include_smoke: bool = False, show_paper: bool = True,
                    label: str = "ours", reference_rows: bool = True) -> str:
    """Table 1 as Markdown, each cell "paper / ours" in percent, under a legend line.

    Rows: the paper's methods; columns: clean, s0.2, s0.4, s0.6, a0.2, a0.3, a0.4; ours: the
    ``accuracy`` test accuracy of the cell's run, "—" where there is none. ``accuracy="best"`` (the
    default) is the paper's own measure, the best of the evaluations every 1000 iterations
    (`dm.experiments.authors`): the cell then reads "paper / best (final)"; "final" shows the last
    one alone (ValueError for anything else).

    ``reference_rows``: add the rows of `TABLE1_REFERENCE_ROWS` (another paper's numbers, paper
    only, in italics). ``show_paper=False`` with ``include_smoke=True`` gives a table of our numbers
    alone (the smoke pipeline check); ``label`` names our column in the legend line.
    """
    if accuracy not in _ACCURACY:
        raise ValueError(f"accuracy must be one of {list(_ACCURACY)}, got {accuracy!r}")
    placed = table1_cells(results, base, include_smoke)
    spec = table("table1")
    columns = [c["key"] for c in spec["columns"]]
    rows = []
    for name, values in spec["rows"].items():
        if name in TABLE1_REFERENCE_ROWS:
            if reference_rows and show_paper:
                rows.append([f"*{name}*"] + [f"*{v:.1f}*" for v in values])
            continue
        cells = []
        for key, paper in zip(columns, values):
            result = placed.get((name, key))
            ours = BLANK if result is None else _percent(result[_ACCURACY[accuracy]])
            if result is not None and accuracy == "best":
                ours += f" ({_percent(result['final_test_accuracy'])})"
            cells.append(_cell(paper, ours, show_paper))
        rows.append([name] + cells)
    measure = ("best test accuracy over the evaluations, as the paper reports it, then the final one "
               "in brackets" if accuracy == "best" else "final test accuracy")
    legend = (f"{spec['title']}. Each cell: paper / {label} ({measure}); "
              f"{BLANK}: no run." if show_paper
              else f"{label}: {measure} (%); {BLANK}: no run.")
    return legend + "\n\n" + _markdown(["method"] + columns, rows, ["l"] + ["r"] * len(columns))


def table9_markdown(results: Iterable[dict] = (), base: Config = experiments.PAPER_CIFAR10_RESNET56, *,
                    include_smoke: bool = False, show_paper: bool = True, label: str = "ours") -> str:
    """Table 9 as Markdown, each cell "paper / ours" in percent, under a legend line.

    Rows: (noise rate, model); columns: best, final, corrupted, intact (see `table9_measures`); "—"
    where there is no run, "n/r" where the run does not record the measure."""
    placed = table9_cells(results, base, include_smoke)
    spec = table("table9")
    columns = spec["columns"]
    rows = []
    for row in spec["rows"]:
        result = placed.get((row["rate"], row["model"]))
        measures = None if result is None else table9_measures(result)
        cells = []
        for key, paper in zip(columns, row["values"]):
            ours = BLANK if measures is None else _percent(measures[key], NOT_RECORDED)
            cells.append(_cell(paper, ours, show_paper))
        rows.append([f"{row['rate']:g}", row["model"]] + cells)
    legend = (f"{spec['title']}. Each cell: paper / {label}; {BLANK}: no run; "
              f"{NOT_RECORDED}: not recorded by the trainer."
              if show_paper else f"{label} (%); {NOT_RECORDED}: not recorded by the trainer.")
    return legend + "\n\n" + _markdown(["r", "model"] + columns, rows, ["r", "l"] + ["r"] * len(columns))


def _beta_rows() -> list:
    return [name for name in table1_rows()
            if tables.TABLE1_ROWS[name]["method"] == "DM" and "beta" not in tables.TABLE1_ROWS[name]]


def preset_differences_markdown(dataset: str = "cifar100") -> str:
    """`dm.experiments.cifar.preset_differences` of ``dataset`` as a Markdown table."""
    lines = ["| `Config` field | paper's text | authors' code | source (in the authors' repository) |",
             "| :--- | :--- | :--- | :--- |"]
    lines += [f"| `{field}` | `{paper!r}` | `{code!r}` | {source} |"
              for field, paper, code, source in experiments.preset_differences(dataset)]
    return "\n".join(lines)



def table1_beta_markdown() -> str:
    """DM's beta in each Table 1 cell, which the paper does not list, and its source, as Markdown.

    Rows: the DM rows with a beta to choose. Source (`dm.experiments.tables.table1_beta_source`):
    "run" (the authors' run folder of that cell, `table1_beta_sources_markdown`) or "guessed"
    (`dm.experiments.tables.GUESSED`)."""
    columns = table1_columns()
    rows = []
    for name in _beta_rows():
        cells = []
        for col in columns:
            config, source = table1_config(name, col), tables.table1_beta_source(name, col)
            cells.append(f"{config.beta:g} ({'guessed' if source == tables.GUESSED else 'run'})")
        rows.append([name] + cells)
    return _markdown(["row"] + [c["key"] for c in columns], rows, ["l"] + ["r"] * len(columns))


def table1_beta_sources_markdown() -> str:
    """Where each DM beta of Table 1 comes from, as Markdown: the authors' run folder, or a guess.

    The run folder in the authors' repository (`dm.experiments.authors.REPOSITORY`) and that run's
    best and final test accuracy beside the paper's cell; guessed cells are listed with the reason.
    """
    columns = table1_columns()
    keys = [c["key"] for c in columns]
    paper_rows = table("table1")["rows"]
    lines, guessed = [], []
    for name in _beta_rows():
        for col in columns:
            config, source = table1_config(name, col), tables.table1_beta_source(name, col)
            if source == tables.GUESSED:
                guessed.append(f"{name} {col['key']}")
                continue
            log = authors.run_log(name, col["key"])
            lines.append([name, col["key"], f"{config.beta:g}", f"`{source}`",
                          f"{paper_rows[name][keys.index(col['key'])]:.1f}",
                          f"{100 * log['best']:.2f}", f"{100 * log['final']:.2f}"])
    table_md = _markdown(["row", "column", "beta", "run folder", "paper", "run's best", "run's final"],
                         lines, ["l", "l", "r", "l", "r", "r", "r"])
    return table_md + f"\n\nNot traced to a run ({len(guessed)} cells: {', '.join(guessed)}): {tables.GUESSED}."


def authors_logs_markdown() -> str:
    """Table 1's symmetric columns as the authors' logs give them, as Markdown.

    Each cell "paper / the run's best / its final", in percent (`dm.experiments.authors`); where the
    paper's number equals the best as printed, the best is in bold."""
    spec = table("table1")
    keys = [c["key"] for c in spec["columns"]]
    logged = sorted({run["column"] for run in authors.logs()}, key=keys.index)
    rows = []
    for name in table1_rows():
        cells = []
        for key in logged:
            paper = spec["rows"][name][keys.index(key)]
            log = authors.run_log(name, key)
            if log is None:
                cells.append(f"{paper:.1f} / {BLANK}")
                continue
            best = f"{100 * log['best']:.2f}"
            best = f"**{best}**" if authors.printed(log["best"]) == paper else best
            cells.append(f"{paper:.1f} / {best} / {100 * log['final']:.2f}")
        rows.append([name] + cells)
    return _markdown(["method"] + logged, rows, ["l"] + ["r"] * len(logged))


# --- Table 5: IMDB, PV-DBOW features ---------------------------------------------

# Table 5 prints 0.5 where a model predicts one class for every review (the paper
# says an accuracy of 0.5 means a degenerate model): 50 % on the balanced test set.
DEGENERATE = 0.5


@lru_cache(maxsize=8)
def _table5_cells(features: str, base: sentiment.Config) -> dict:
    return {_config_key(config, _TABLE5_SEEDLESS): cell
            for cell, config in tables.table5_configs(features, base, table5_rows()).items()}


def table5_cells(results: Iterable[dict], features: str, base: sentiment.Config = sentiment.PAPER_IMDB,
                 include_smoke: bool = False) -> dict:
    """``{(row, column): [result, ...]}`` for the results that belong in Table 5, by seed.

    Table 5 and its class-weighted imbalance cells on the paragraph vectors ``features``; each
    cell's results in the order of their seeds (a cell holds every seed of its configuration);
    smoke-mode results are left out unless ``include_smoke``. A result that matches no cell, or a
    second result for one cell and seed, raises ValueError."""
    cells = _table5_cells(features, base)
    placed: dict = {}
    for result in results:
        if not (include_smoke or is_full(result)):
            continue
        key = cells.get(_config_key(result["config"], _TABLE5_SEEDLESS))
        if key is None:
            raise ValueError(f"result {result.get('name')!r} matches no cell of Table 5 "
                             "(was it trained from another base configuration?)")
        seeds = placed.setdefault(key, {})
        seed = result["config"]["seed"]
        if seed in seeds:
            raise ValueError(f"two results for the cell {key!r} with seed {seed}")
        seeds[seed] = result
    return {key: [seeds[s] for s in sorted(seeds)] for key, seeds in placed.items()}


def _paper5(value: float) -> str:
    return f"{value:.1f}" + ("*" if value == DEGENERATE else "")


def _over_seeds(results: list, key: str, n_common: Optional[int]) -> str:
    # One run: its value; several: mean ± standard error over the seeds (in
    # percent), with their number where it is not the table's usual one.
    if not results:
        return BLANK
    if len(results) == 1:
        return _percent(results[0][key]) + ("" if n_common == 1 else " [1]")
    estimate = stats.mean_se([r[key] for r in results])
    text = f"{100 * estimate.mean:.1f} ± {100 * estimate.se:.1f}"
    return text if len(results) == n_common else f"{text} [{len(results)}]"


def _seeds_legend(placed: dict) -> tuple:
    # (the usual number of seeds per cell, the legend's words for it)
    counts = [len(v) for v in placed.values()]
    if not counts or max(counts) == 1:
        return 1, "one run per cell"
    common = max(set(counts), key=lambda n: (counts.count(n), n))
    return common, (f"mean ± standard error over {common} seeds per cell"
                    + ("" if len(set(counts)) == 1 else "; [n]: a cell with another number of seeds"))


def table5_markdown(results: Iterable[dict] = (), features: str = "",
                    base: sentiment.Config = sentiment.PAPER_IMDB, *, include_smoke: bool = False,
                    show_paper: bool = True, label: str = "ours") -> str:
    """Table 5 as Markdown, each cell "paper / ours" in percent, under a legend line.

    Rows: noise rates and imbalance ratios; columns: the nine methods; ours: the final test accuracy
    (over several seeds: mean ± standard error), "—" where there is no run."""
    placed = table5_cells(results, features, base, include_smoke)
    common, seeds = _seeds_legend(placed)
    spec = table("table5")
    rows = []
    for name, values in spec["rows"].items():
        cells = []
        for column, paper in zip(spec["columns"], values):
            ours = _over_seeds(placed.get((name, column), []), "final_test_accuracy", common)
            cells.append(f"{_paper5(paper)} / {ours}" if show_paper else ours)
        rows.append([name] + cells)
    legend = (f"{spec['title']}. Each cell: paper / {label} (final test accuracy, {seeds}); "
              f"{BLANK}: no run; *: the paper prints {DEGENERATE} for a model that predicts one class "
              "(50 % on the balanced test set)." if show_paper
              else f"{label}: final test accuracy (%, {seeds}); {BLANK}: no run.")
    return legend + "\n\n" + _markdown(["data"] + spec["columns"], rows,
                                        ["l"] + ["r"] * len(spec["columns"]))


def imbalance_markdown(results: Iterable[dict] = (), features: str = "",
                       base: sentiment.Config = sentiment.PAPER_IMDB, *,
                       include_smoke: bool = False, label: str = "ours") -> str:
    """The imbalance rows in detail, ours only, as Markdown: accuracy and each class's recall.

    For each ratio and method (the nine, then CCE and DM with class weights), the final test
    accuracy, balanced accuracy (the mean of the two recalls) and each class's recall, in percent.
    On a balanced test set (as IMDB's is) balanced accuracy and accuracy are equal; the recalls show
    which class a model gives up: one that predicts one class scores 50 % with recalls 0 and 100."""
    placed = table5_cells(results, features, base, include_smoke)
    common, seeds = _seeds_legend(placed)
    rows = []
    for row in ("P-N 10:1", "P-N 50:1"):
        for column in table5_columns() + list(tables.IMBALANCE_EXTRA):
            cell = placed.get((row, column), [])
            rows.append([row, column] + [_over_seeds(cell, k, common) for k in (
                "final_test_accuracy", "final_test_balanced_accuracy",
                "final_test_recall_negative", "final_test_recall_positive")])
    legend = (f"{label}: final test measures (%, {seeds}) on the balanced test set, where balanced "
              f"accuracy equals accuracy (both are the mean of the two recalls); {BLANK}: no run.")
    return legend + "\n\n" + _markdown(
        ["data", "method", "accuracy", "balanced accuracy", "recall negative", "recall positive"],
        rows, ["l", "l", "r", "r", "r", "r"])


# --- the book's results folder: full runs beside the paper ---------------------------

# The tables a stored result can be put in, in the book's order.
RESULT_TABLES = ("table1", "table9", "table5")
_PRESET_NAMES = {("table1", "paper"): "PAPER_CIFAR100", ("table1", "authors"): "AUTHORS_CIFAR100",
                 ("table9", "paper"): "PAPER_CIFAR10_RESNET56",
                 ("table9", "authors"): "AUTHORS_CIFAR10_RESNET56"}
_CIFAR_TABLES = {"cifar100": "table1", "cifar10": "table9"}


def load_results(folder) -> list:
    """Every ``result.json`` under ``folder``, at any depth, in the order of their paths.

    The book keeps them as ``results/<experiment>/<run name>/result.json`` (see
    ``results/README.md``). Each is the dict `dm.experiments.cifar.run` or `dm.experiments.imdb.run`
    wrote, with ``"result_file"`` added: its path relative to ``folder``. ``[]`` where ``folder``
    does not exist; a file that is not a result dict raises ValueError, naming it."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    results = []
    for path in sorted(folder.rglob("result.json")):
        result = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(result, dict) or not isinstance(result.get("config"), dict):
            raise ValueError(f"{path} is not a result file (a dict with a 'config' dict)")
        result["result_file"] = path.relative_to(folder).as_posix()
        results.append(result)
    return results


class Group(NamedTuple):
    """Results that belong in one table built from one base configuration, on one data set."""
    table: str      # "table1", "table9" or "table5"
    label: str      # the preset ("paper", "authors"); for Table 5 the features' key
    base: object    # the base configuration (a dm.experiments.cifar or dm.experiments.imdb Config)
    results: list   # the results, each in a cell of its own (Table 5: one per cell and seed)
    copy: str = "official"  # the data: "official", or a copy that is not the official data ("JPEG copy")
    data: str = ""  # the data's description as the results record it ("" where none is recorded)


class Sorted(NamedTuple):
    """What `sort_results` makes of a list of results."""
    groups: list    # Group records, by table (RESULT_TABLES) and preset ("paper" first)
    left_out: list  # (result, why it is in no table)


def _candidates(config: dict):
    # (table, label, base, cells, fields the cells leave out) of every table
    # and base a config could belong to.
    if config.get("dataset") in _CIFAR_TABLES:  # a dm.experiments.cifar.Config
        table = _CIFAR_TABLES[config["dataset"]]
        for name in ("paper", "authors"):
            base = experiments.preset(name, config["dataset"])
            yield table, name, base, (_table1_cells(base) if table == "table1" else _table9_cells(base)), ()
    elif isinstance(config.get("features"), str):  # a dm.experiments.imdb.Config
        yield ("table5", config["features"], sentiment.PAPER_IMDB,
               _table5_cells(config["features"], sentiment.PAPER_IMDB), _TABLE5_SEEDLESS)


def data_copy(result: dict) -> str:
    """Which data a result's run saw, as the results page files it: "official", or a copy's name.

    A copy that is not the official data, e.g. "JPEG copy". The reassembled IMDB archive holds the
    official reviews (its content digest shows it), so its runs count as official; so do results
    that record no data (older runs)."""
    copy = (result.get("data") or {}).get("copy", "official")
    return "official" if copy in ("official", "official archive", "reassembled copy") else copy


def sort_results(results: Iterable[dict]) -> Sorted:
    """Group ``results`` by table and preset, and list the ones in no table with the reason why.

    By the table and the base configuration (preset) they were trained from: a CIFAR-100 result
    whose config is a Table 1 cell's built from `dm.experiments.cifar.PAPER_CIFAR100` goes to
    ("table1", "paper"), from `dm.experiments.cifar.AUTHORS_CIFAR100` to ("table1", "authors");
    CIFAR-10 likewise to Table 9; an IMDB result to ("table5", its features' key), built from
    `dm.experiments.imdb.PAPER_IMDB`, where a cell holds one result per seed. Runs on a copy that is
    not the official data (`data_copy`, e.g. CIFAR-10's JPEG copy) get tables of their own, never
    the official data's cells. Nothing raises: results of smoke runs (`is_full`), results whose
    config is no cell of any table (changed settings, another seed, the digits stand-in) and second
    results for a cell (and seed) already taken are left out, each with the reason."""
    groups, taken, left_out = {}, {}, []
    for result in results:
        config = result.get("config")
        if not is_full(result):
            left_out.append((result, f"not a full run (mode {result.get('mode')!r}"
                                     + (", fabricated data)" if result.get("fabricated_data") else ")")))
            continue
        if not isinstance(config, dict):
            left_out.append((result, "no config recorded"))
            continue
        for table, label, base, cells, drop in _candidates(config):
            cell = cells.get(_config_key(config, drop))
            if cell is not None:
                break
        else:
            data = (result.get("data") or {}).get("description")
            left_out.append((result, "its config is no cell of Table 1, 9 or 5 built from a preset "
                                     "(changed settings?)" + (f"; data: {data}" if data else "")))
            continue
        copy = data_copy(result)
        seed = config.get("seed") if drop else None
        first = taken.setdefault((table, label, copy, cell, seed), result)
        if first is not result:
            left_out.append((result, f"a second result for the cell {cell} of {table} ({label}"
                                     + (f", seed {seed}" if drop else "") + "); "
                                     f"the first: {first.get('result_file', first.get('name'))}"))
            continue
        group = groups.setdefault((table, label, copy), Group(
            table, label, base, [], copy, (result.get("data") or {}).get("description", "")))
        group.results.append(result)
    order = sorted(groups, key=lambda k: (RESULT_TABLES.index(k[0]), k[2] != "official", k[2],
                                          k[1] != "paper", k[1]))
    return Sorted([groups[k] for k in order], left_out)


def _hours(seconds) -> str:
    if not isinstance(seconds, (int, float)):
        return NOT_RECORDED
    return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def runs_markdown(results: Iterable[dict]) -> str:
    """Where, how long and how each result was run, as a Markdown table.

    Its file (or name), mode, hardware, training time (``wall_seconds``, all sessions of the run),
    precision and torch version ("n/r" where the result does not record one: IMDB runs record no
    precision)."""
    rows = [[f"`{r.get('result_file', r.get('name', '?'))}`", str(r.get("mode", NOT_RECORDED)),
             str(r.get("hardware", NOT_RECORDED)), _hours(r.get("wall_seconds")),
             str(r.get("precision") or NOT_RECORDED), str(r.get("torch", NOT_RECORDED))]
            for r in results]
    return _markdown(["run", "mode", "hardware", "training time", "precision", "torch"], rows,
                     ["l", "l", "l", "r", "l", "l"])


def _group_heading(group: Group, cells: int) -> str:
    if group.table == "table5":
        what = f"paragraph vectors `{group.label[:8] or 'none'}`, the paper's settings (`PAPER_IMDB`)"
        filled = {_config_key(r["config"], _TABLE5_SEEDLESS) for r in group.results}
        run = f"{len(filled)} of {cells} cells run ({len(group.results)} runs)"
    else:
        what = f"preset {group.label!r} (`{_PRESET_NAMES[group.table, group.label]}`)"
        run = f"{len(group.results)} of {cells} cells run"
    if group.copy != "official":
        what = f"{group.data or group.copy}, NOT the official data; {what}"
    elif group.data:
        what = f"{what}; data: {group.data}"
    return f"**{what}: {run}.**"


def results_markdown(results: Iterable[dict], table: str) -> str:
    """``table`` ("table1", "table9" or "table5") with the full-mode results beside the paper's.

    One table per preset (per paragraph vectors for Table 5) that has results among ``results``
    (`sort_results`), each followed by its runs (`runs_markdown`); for Table 5 also the imbalance
    rows in detail (`imbalance_markdown`) and the paper's claims. With no full-mode result for the
    table, the paper's numbers alone under a line that says so. Raises ValueError for another
    ``table``."""
    if table not in RESULT_TABLES:
        raise ValueError(f"table must be one of {list(RESULT_TABLES)}, got {table!r}")
    render = {"table1": table1_markdown, "table9": table9_markdown,
              "table5": lambda rs, base: table5_markdown(rs, rs[0]["config"]["features"] if rs else "", base)}
    groups = [g for g in sort_results(results).groups if g.table == table]
    if not groups:
        default = {"table1": experiments.PAPER_CIFAR100, "table9": experiments.PAPER_CIFAR10_RESNET56,
                   "table5": sentiment.PAPER_IMDB}[table]
        return ("No full run of this table has been stored yet: the paper's numbers are the target.\n\n"
                + render[table]([], default))
    cells = {"table1": _table1_cells, "table9": _table9_cells}
    parts = []
    for group in groups:
        count = (len(_table5_cells(group.label, group.base)) if table == "table5"
                 else len(cells[table](group.base)))
        parts += [_group_heading(group, count), render[table](group.results, group.base)]
        if table == "table5" and any(r["config"]["imbalance"] > 1 for r in group.results):
            parts.append(imbalance_markdown(group.results, group.label, group.base))
        if table == "table5":
            parts.append(_claims_markdown(group))
        parts.append(runs_markdown(group.results))
    return "\n\n".join(parts)


def _claims_markdown(group: Group) -> str:
    # Table 5's claims (`table5_comparisons`) under a Table 5 group's table,
    # where every cell holds at least two seeds; else a line that says why not.
    placed = table5_cells(group.results, group.label, group.base)
    seeds = sorted({len(cell) for cell in placed.values()})
    if seeds[0] < 2:
        return (f"The paper's claims are not tested here: a paired comparison needs at least two seeds "
                f"per cell, and some cells hold {seeds[0]}.")
    try:
        comparisons = _comparisons(placed)
    except ValueError as error:  # cells of one comparison hold different seeds
        return f"The paper's claims are not tested here: {error}."
    return ("The paper's claims as paired comparisons over the seeds (the evidence rule; chapter 10 "
            "reads them):\n\n" + comparisons_markdown(comparisons))


def left_out_markdown(results: Iterable[dict]) -> str:
    """The results `sort_results` puts in no table, each with the reason, as a Markdown table.

    A sentence where there are none."""
    left_out = sort_results(results).left_out
    if not left_out:
        return "Every stored result is in a table above."
    rows = [[f"`{r.get('result_file', r.get('name', '?'))}`", why] for r, why in left_out]
    return (f"{len(left_out)} stored result(s) in no table:\n\n"
            + _markdown(["run", "why it is in no table"], rows, ["l", "l"]))


# --- Table 5's claims, tested on runs with several seeds ----------------------------

class Comparison(NamedTuple):
    """One of the paper's Table 5 claims as a paired comparison over seeds."""
    row: str                 # the table's row
    claim: str               # what the paper's table says, in words
    paper: str               # the paper's numbers behind it
    a: str                   # the comparison: a minus b, over the seeds both cells hold
    b: str
    measure: str             # the result key compared
    estimate: object         # dm.stats.Estimate of a - b (fractions)
    reading: str             # dm.stats.reading: ahead, behind, leaning ..., not resolved


def _paired(placed: dict, row: str, a: str, b: str, measure: str):
    first, second = placed.get((row, a), []), placed.get((row, b), [])
    seeds = [r["config"]["seed"] for r in first]
    if not first or seeds != [r["config"]["seed"] for r in second]:
        raise ValueError(f"{row}: {a} and {b} need results for the same seeds, got "
                         f"{seeds} and {[r['config']['seed'] for r in second]}")
    return stats.paired([r[measure] for r in first], [r[measure] for r in second])


def table5_comparisons(results: Iterable[dict], features: str,
                       base: sentiment.Config = sentiment.PAPER_IMDB) -> list:
    """The paper's Table 5 claims tested on ``results``, as a list of `Comparison` records.

    ``results``: full runs, several seeds per cell. In every row, DM against the other method
    closest to it (the smallest paired t of DM minus each of the eight); at r = 0.4, DM against CCE;
    in the imbalance rows, class weights against none for CCE, and DM with class weights against CCE
    with them. Each is a paired difference of final test accuracy over the seeds (the evidence rule,
    `dm.stats.reading`); ValueError where two compared cells hold different seeds."""
    return _comparisons(table5_cells(results, features, base))


def _comparisons(placed: dict) -> list:
    # `table5_comparisons` on cells already placed (`table5_cells`).
    spec = table("table5")
    columns = spec["columns"]
    found = []
    for row, values in spec["rows"].items():
        if not all((row, m) in placed for m in columns):
            continue
        paper_dm = values[columns.index("DM")]
        others = [m for m in columns if m != "DM"]
        best_other = max(others, key=lambda m: values[columns.index(m)])
        against = {m: _paired(placed, row, "DM", m, "final_test_accuracy") for m in others}
        closest = min(others, key=lambda m: against[m].t)
        paper_text = (f"DM {_paper5(paper_dm)} against {best_other} {_paper5(values[columns.index(best_other)])}, "
                      f"the best of the other eight")
        estimate = against[closest]
        found.append(Comparison(row, "DM is the best of the nine", paper_text, "DM", closest,
                                "final_test_accuracy", estimate, stats.reading(estimate)))
        if row == "r = 0.4":
            estimate = _paired(placed, row, "DM", "CCE", "final_test_accuracy")
            found.append(Comparison(row, "DM is far ahead of CCE under heavy noise",
                                    f"DM {paper_dm:.1f} against CCE {values[columns.index('CCE')]:.1f}",
                                    "DM", "CCE", "final_test_accuracy", estimate, stats.reading(estimate)))
    for row in ("P-N 10:1", "P-N 50:1"):
        pairs = [("CCE + class weights", "CCE", "beyond the paper: class weights help CCE"),
                 ("DM + class weights", "CCE + class weights",
                  "beyond the paper: DM adds to class weights (the rebuttal's hierarchical weighting)")]
        for a, b, claim in pairs:
            if (row, a) in placed and (row, b) in placed:
                estimate = _paired(placed, row, a, b, "final_test_accuracy")
                found.append(Comparison(row, claim, "not in the paper", a, b, "final_test_accuracy",
                                        estimate, stats.reading(estimate)))
    return found


def comparisons_markdown(comparisons: Iterable) -> str:
    """`table5_comparisons` as a Markdown table, one row per claim.

    The claim, the paper's numbers, our paired difference (points, mean ± SE over the seeds), its t
    and what the evidence rule lets us say of it."""
    rows = [[c.row, c.claim, c.paper, f"{c.a} − {c.b}",
             f"{100 * c.estimate.mean:+.1f} ± {100 * c.estimate.se:.1f}", f"{c.estimate.t:+.1f}",
             f"{c.a} {c.reading}" if c.reading != "not resolved" else "not resolved"]
            for c in comparisons]
    return _markdown(["row", "claim", "paper", "ours: a − b", "points (mean ± SE)", "t", "reading"], rows,
                     ["l", "l", "l", "l", "r", "r", "l"])


def one_class_models(results: Iterable[dict], features: str,
                     base: sentiment.Config = sentiment.PAPER_IMDB) -> dict:
    """``{(row, column): (k, n)}``: in k of a cell's n seeds the model predicts one class.

    For the imbalance rows: in how many seeds the final model predicts one class for every test
    review (a recall of 0), which the paper prints as 0.5."""
    placed = table5_cells(results, features, base)
    return {(row, column): (sum(min(r["final_test_recall_negative"], r["final_test_recall_positive"]) == 0
                                for r in cell), len(cell))
            for (row, column), cell in placed.items() if row.startswith("P-N")}
