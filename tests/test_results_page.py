"""The results page's loader (dm.report.paper.load_results, sort_results,
results_markdown): stored result files land in the right cell of the right
preset's table, with their hardware; anything else is listed, never dropped."""

import dataclasses
import json
import re

import pytest

from dm.experiments import cifar as experiments
from dm.experiments import tables
from dm.report import paper

from test_paper import fake_result, grid

GPU = "NVIDIA H100 80GB HBM3"


def paper_value(row, key):
    keys = [c["key"] for c in tables.table1_columns()]
    return tables.table("table1")["rows"][row][keys.index(key)]


def store(folder, experiment, result):
    path = folder / experiment / result["name"] / "result.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(result))
    return path


def full(config, **values):
    return fake_result(config, hardware=GPU, wall_seconds=5400.0, precision="bf16",
                       torch="2.5.0", fabricated_data=False, **values)


def test_no_folder_or_no_files_gives_the_paper_alone(tmp_path):
    assert paper.load_results(tmp_path / "missing") == []
    (tmp_path / "README.md").write_text("nothing here")
    assert paper.load_results(tmp_path) == []
    for table in paper.RESULT_TABLES:
        text = paper.results_markdown([], table)
        assert text.startswith("No full run of this table has been stored yet")
        assert not re.search(r"/ \d", text)  # no "ours" number in any cell
    assert paper.left_out_markdown([]) == "Every stored result is in a table above."


def test_a_stored_full_run_lands_in_its_cell_with_its_hardware(tmp_path):
    config = tables.table1_config("DM (lambda = 0.5)", "s0.4")
    store(tmp_path, "cifar100_table1", full(config, best_test_accuracy=0.612, final_test_accuracy=0.598))
    results = paper.load_results(tmp_path)
    assert [r["result_file"] for r in results] == [f"cifar100_table1/{config.name()}/result.json"]
    text = paper.results_markdown(results, "table1")
    assert "preset 'paper' (`PAPER_CIFAR100`): 1 of 84 cells run" in text
    cells = grid(text.split("\n\n")[2])
    assert cells["DM (lambda = 0.5)", "s0.4"] == "61.0 / 61.2 (59.8)"
    assert cells["CCE", "s0.4"] == f"{paper_value('CCE', 's0.4'):.1f} / —"
    assert GPU in text and "1.50 h" in text and "bf16" in text and "| full |" in text
    # Only Table 1 holds it.
    assert paper.results_markdown(results, "table9").startswith("No full run")
    assert paper.left_out_markdown(results) == "Every stored result is in a table above."


def test_presets_get_tables_of_their_own_and_the_rest_is_listed(tmp_path):
    cell = ("CCE", "s0.4")
    authors = tables.table1_config(*cell, base=experiments.AUTHORS_CIFAR100)
    ours = tables.table1_config(*cell)
    store(tmp_path, "cifar100_table1", full(ours, best_test_accuracy=0.30))
    store(tmp_path, "cifar100_table1", full(authors, best_test_accuracy=0.40))
    changed = dataclasses.replace(ours, seed=7)
    store(tmp_path, "cifar100_table1", full(changed))
    smoke = dataclasses.replace(ours, iterations=4)
    store(tmp_path, "cifar100_table1", fake_result(smoke, mode="smoke", fabricated_data=True))
    row = tables.table9_rows()[0]
    store(tmp_path, "cifar10_resnet56", full(tables.table9_config(row)))
    # A copy of the same run in another folder: a second result for one cell.
    duplicate = full(ours, best_test_accuracy=0.31)
    (tmp_path / "copy" / "result.json").parent.mkdir()
    (tmp_path / "copy" / "result.json").write_text(json.dumps(duplicate))

    results = paper.load_results(tmp_path)
    sorted_ = paper.sort_results(results)
    assert [(g.table, g.label, len(g.results)) for g in sorted_.groups] == [
        ("table1", "paper", 1), ("table1", "authors", 1), ("table9", "paper", 1)]
    assert sorted_.groups[1].base == experiments.AUTHORS_CIFAR100
    reasons = {r["result_file"].split("/")[-2]: why for r, why in sorted_.left_out}
    assert set(reasons) == {changed.name(), smoke.name(), "copy"}
    assert "no cell" in reasons[changed.name()]
    assert "not a full run" in reasons[smoke.name()]
    assert "a second result" in reasons["copy"]

    text = paper.results_markdown(results, "table1")
    paper_table, authors_table = (grid(t) for t in text.split("\n\n") if t.startswith("| method"))
    assert paper_table[cell] == f"{paper_value(*cell):.1f} / 30.0 (40.0)"
    assert authors_table[cell] == f"{paper_value(*cell):.1f} / 40.0 (40.0)"
    assert "`AUTHORS_CIFAR100`" in text
    nine = grid(paper.results_markdown(results, "table9").split("\n\n")[2])
    assert nine[f"{row['rate']:g} {row['model']}", "best"].endswith(" / 50.0")
    left = paper.left_out_markdown(results)
    assert left.startswith("3 stored result(s) in no table") and changed.name() in left


def test_imdb_results_go_to_table5_and_its_imbalance_rows(tmp_path):
    features = "abcdef0123456789"
    config = tables.table5_config("P-N 10:1", "DM", features)
    store(tmp_path, "imdb", fake_result(
        config, hardware="CPU (test)", wall_seconds=60.0, fabricated_data=False,
        final_test_accuracy=0.7, final_test_balanced_accuracy=0.7,
        final_test_recall_negative=0.5, final_test_recall_positive=0.9))
    text = paper.results_markdown(paper.load_results(tmp_path), "table5")
    assert "paragraph vectors `abcdef01`" in text and "1 of 49 cells run" in text
    assert grid(text.split("\n\n")[2])["P-N 10:1", "DM"].endswith(" / 70.0")
    assert "| P-N 10:1 | DM | 70.0 | 70.0 | 50.0 | 90.0 |" in text
    assert "CPU (test)" in text and "1.0 min" in text and "n/r" in text  # IMDB runs record no precision


def test_a_file_that_is_no_result_raises_naming_it(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "result.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="x/result.json is not a result file"):
        paper.load_results(tmp_path)
    with pytest.raises(ValueError, match="table must be one of"):
        paper.results_markdown([], "table2")


def _table5_results(accuracy, seeds=(1, 2, 3, 4, 5), recall_negative=0.5):
    # Full results for every Table 5 cell and seed: accuracy(row, column, seed).
    results = []
    for (row, column, seed), config in tables.table5_configs("k" * 16, seeds=seeds).items():
        results.append({"name": config.name(), "config": dataclasses.asdict(config), "mode": "full",
                        "final_test_accuracy": accuracy(row, column, seed),
                        "final_test_recall_negative": recall_negative if column != "MAE" else 0.0,
                        "final_test_recall_positive": 1.0})
    return results


def test_table5_claims_are_paired_comparisons_with_their_reading():
    """DM 2 points ahead of every method at r = 0 (seed noise 0.1 points):
    "ahead"; at r = 0.4 GCE 1 point ahead of DM: DM "behind" its closest
    competitor; the readings follow the evidence rule."""
    def accuracy(row, column, seed):
        wobble = 0.001 * ((seed * 7 + len(column)) % 3 - 1)
        if row == "r = 0.4":
            return {"GCE": 0.81, "DM": 0.80}.get(column, 0.70) + wobble
        return (0.90 if column == "DM" else 0.88) + wobble

    results = _table5_results(accuracy)
    found = {(c.row, c.a, c.b): c for c in paper.table5_comparisons(results, "k" * 16)}
    first = found["r = 0.0", "DM", next(b for r, a, b in found if r == "r = 0.0")]
    assert first.reading == "ahead" and first.estimate.mean == pytest.approx(0.02, abs=0.002)
    heavy = found["r = 0.4", "DM", "GCE"]
    assert heavy.reading == "behind" and heavy.estimate.t < -3.5
    assert found["r = 0.4", "DM", "CCE"].reading == "ahead"
    assert ("P-N 50:1", "DM + class weights", "CCE + class weights") in found
    text = paper.comparisons_markdown(found.values())
    assert "| r = 0.4 | DM is the best of the nine | DM 86.4 against MAE 84.9" in text
    assert "DM behind" in text
    one_class = paper.one_class_models(results, "k" * 16)
    assert one_class["P-N 50:1", "MAE"] == (5, 5) and one_class["P-N 50:1", "DM"] == (0, 5)


def test_table5_claims_need_the_same_seeds_in_both_cells():
    results = [r for r in _table5_results(lambda *_: 0.8)
               if not (r["config"]["method"] == "CCE" and r["config"]["seed"] == 5)]
    with pytest.raises(ValueError, match="need results for the same seeds"):
        paper.table5_comparisons(results, "k" * 16)


def test_the_results_page_tests_table5_claims_where_every_cell_has_seeds():
    """Under Table 5 the results page gives the paper's claims as paired
    comparisons once every cell holds two seeds or more, and says why not
    where a cell holds one."""
    def accuracy(row, column, seed):
        return (0.90 if column == "DM" else 0.88) + 0.001 * ((seed * 7 + len(column)) % 3 - 1)

    def page(results):
        for r in results:
            r.update(hardware="CPU (test)", wall_seconds=1.0, fabricated_data=False,
                     final_test_balanced_accuracy=r["final_test_accuracy"])
        return paper.results_markdown(results, "table5")

    text = page(_table5_results(accuracy))
    assert "The paper's claims as paired comparisons over the seeds" in text
    assert "| r = 0.4 | DM is far ahead of CCE under heavy noise | DM 86.4 against CCE 75.5 | DM − CCE | +2.0 ±" in text
    one_seed = page(_table5_results(accuracy, seeds=(1,)))
    assert "not tested here: a paired comparison needs at least two seeds per cell, and some cells hold 1" in one_seed
    assert "DM is far ahead" not in one_seed
