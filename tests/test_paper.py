"""dm.report.paper: the paper's tables as data, and results put in the right cells."""

import dataclasses
import json

import pytest
import torch

from dm.data import cifar
from dm.experiments import authors
from dm.experiments import cifar as experiments
from dm.experiments import tables
from dm.report import paper

ROWS_OF_TABLE1 = ["CCE", "GCE", "MAE", "MSE", "CCE-DN", "GCE-DN", "MAE-DN", "MSE-DN",
                  "DM (beta = 0)", "DM (lambda = 0)", "DM (lambda = 0.5)", "DM (lambda = 1)"]


def grid(markdown: str) -> dict:
    """{(first cell, header): cell} of a Markdown table (for Table 9 the
    first cell is "rate model")."""
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    split = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    header, body = split[0], split[2:]
    key_width = 2 if header[:2] == ["r", "model"] else 1
    cells = {}
    for row in body:
        key = " ".join(row[:key_width])
        for name, value in zip(header[key_width:], row[key_width:]):
            cells[key, name] = value
    return cells


def fake_result(config, mode="full", **values):
    result = {"name": config.name(), "config": dataclasses.asdict(config), "mode": mode,
              "best_test_accuracy": 0.5, "final_test_accuracy": 0.4,
              "final_train_accuracy_noisy_labels": 0.3, "final_train_accuracy_clean_labels": 0.9,
              "realised_noise_rate": config.noise_rate}
    result.update(values)
    return json.loads(json.dumps(result))  # as stored: tuples become lists


# --- the data file -----------------------------------------------------------

def test_table1_has_13_rows_of_7_percentages_and_the_paper_columns():
    t1 = tables.table("table1")
    assert [c["key"] for c in t1["columns"]] == ["clean", "s0.2", "s0.4", "s0.6", "a0.2", "a0.3", "a0.4"]
    assert [(c["noise"], c["rate"]) for c in t1["columns"]] == [
        ("symmetric", 0.0), ("symmetric", 0.2), ("symmetric", 0.4), ("symmetric", 0.6),
        ("asymmetric", 0.2), ("asymmetric", 0.3), ("asymmetric", 0.4)]
    assert len(t1["rows"]) == 13
    for name, values in t1["rows"].items():
        assert len(values) == 7, name
        assert all(0 <= v <= 100 for v in values), name
    assert t1["rows"]["DM (lambda = 0.5)"][2] == 61.0  # spot check: s0.4


def test_table1_own_rows_are_the_trainer_rows_and_sl_is_a_reference_row():
    assert tables.table1_rows() == ROWS_OF_TABLE1 == list(tables.TABLE1_ROWS)
    assert set(tables.table("table1")["rows"]) - set(ROWS_OF_TABLE1) == set(tables.TABLE1_REFERENCE_ROWS)


def test_table9_rows_are_symmetric_rates_with_4_percentages():
    t9 = tables.table("table9")
    assert t9["columns"] == list(paper.TABLE9_MEASURES) == ["best", "final", "corrupted", "intact"]
    assert len(t9["rows"]) == 16
    for row in t9["rows"]:
        assert row["rate"] in (0.2, 0.4, 0.6, 0.8)
        assert len(row["values"]) == 4 and all(0 <= v <= 100 for v in row["values"])


def test_table_returns_a_copy_and_rejects_unknown_names():
    tables.table("table1")["rows"]["CCE"][0] = -1.0
    assert tables.table("table1")["rows"]["CCE"][0] == 70.0
    with pytest.raises(ValueError, match="table must be one of"):
        tables.table("table2")
    with pytest.raises(ValueError):
        tables.table("source")


# --- Table 9 models -> configurations ------------------------------------------

def test_parse_table9_models():
    assert tables.parse_table9_model("CCE") == {"method": "CCE"}
    assert tables.parse_table9_model("DM lambda=0.5, beta=12") == {"method": "DM", "lam": 0.5, "beta": 12.0}
    assert tables.parse_table9_model("DM lambda=0, beta=2") == {"method": "DM", "lam": 0.0, "beta": 2.0}
    beta0 = tables.parse_table9_model("DM beta=0")
    assert beta0["beta"] == 0.0 and beta0["lam"] == tables.TABLE1_ROWS["DM (beta = 0)"]["lam"]
    for bad in ("DM", "DM beta=3", "DM lambda=x, beta=1", "SL"):
        with pytest.raises(ValueError):
            tables.parse_table9_model(bad)


def test_table9_configs_are_distinct_paper_settings():
    configs = [tables.table9_config(row) for row in tables.table9_rows()]
    assert len(set(configs)) == 16
    base = experiments.PAPER_CIFAR10_RESNET56
    for row, config in zip(tables.table9_rows(), configs):
        assert (config.dataset, config.model, config.noise) == ("cifar10", "resnet56", "symmetric")
        assert config.noise_rate == row["rate"]
        assert (config.iterations, config.lr_milestones, config.weight_decay) == (
            base.iterations, base.lr_milestones, base.weight_decay)
    assert (configs[3].lam, configs[3].beta) == (0.5, 12.0)  # 0.2, "DM lambda=0.5, beta=12"


# --- placing results -------------------------------------------------------------

def test_table1_puts_a_full_result_in_its_cell_and_leaves_the_rest_blank():
    config = tables.table1_config("DM (lambda = 0.5)", "s0.4")
    assert (config.lam, config.beta, config.noise_rate) == (0.5, 8.0, 0.4)
    cells = grid(paper.table1_markdown([fake_result(config, final_test_accuracy=0.6123,
                                                    best_test_accuracy=0.65)]))
    # The paper's measure, the best accuracy, with the final one beside it.
    assert cells["DM (lambda = 0.5)", "s0.4"] == "61.0 / 65.0 (61.2)"
    assert cells["DM (lambda = 0.5)", "s0.2"] == "65.7 / " + paper.BLANK
    assert cells["DM (lambda = 1)", "s0.4"] == "54.7 / " + paper.BLANK
    filled = [k for k, v in cells.items() if not v.endswith(paper.BLANK) and not v.startswith("*")]
    assert filled == [("DM (lambda = 0.5)", "s0.4")]
    assert cells["*SL (from the SL paper)*", "clean"] == "*66.8*"
    final = grid(paper.table1_markdown([fake_result(config, best_test_accuracy=0.65,
                                                    final_test_accuracy=0.6123)], accuracy="final"))
    assert final["DM (lambda = 0.5)", "s0.4"] == "61.0 / 61.2"


def test_asymmetric_and_clean_cells_are_told_apart():
    clean = tables.table1_config("CCE", "clean")
    asym = tables.table1_config("CCE", "a0.2")
    cells = grid(paper.table1_markdown([fake_result(clean, final_test_accuracy=0.7),
                                        fake_result(asym, final_test_accuracy=0.6)], accuracy="final"))
    assert cells["CCE", "clean"] == "70.0 / 70.0"
    assert cells["CCE", "a0.2"] == "66.4 / 60.0"
    assert cells["CCE", "s0.2"] == "60.4 / " + paper.BLANK


def test_smoke_results_never_reach_the_ours_column():
    config = tables.table1_config("CCE", "s0.2")
    smoke = fake_result(config, mode="smoke", final_test_accuracy=0.99)
    no_mode = fake_result(config, final_test_accuracy=0.99)
    del no_mode["mode"]
    for result in (smoke, no_mode):
        assert not paper.is_full(result)
        assert paper.table1_cells([result]) == {}
        assert "99.0" not in paper.table1_markdown([result])
        assert grid(paper.table1_markdown([result]))["CCE", "s0.2"] == "60.4 / " + paper.BLANK
    # Only on explicit request, e.g. for a pipeline-check table:
    check = grid(paper.table1_markdown([smoke], include_smoke=True, show_paper=False, label="smoke"))
    assert check["CCE", "s0.2"] == "50.0 (99.0)" and check["CCE", "clean"] == paper.BLANK
    assert ("*SL (from the SL paper)*", "clean") not in check


def test_a_result_from_another_configuration_is_refused_not_misplaced():
    config = dataclasses.replace(tables.table1_config("CCE", "s0.2"), iterations=4)
    with pytest.raises(ValueError, match="matches no cell"):
        paper.table1_markdown([fake_result(config)])
    # ... but it has a cell in the table built from its own base:
    base = dataclasses.replace(experiments.PAPER_CIFAR100, iterations=4)
    assert paper.table1_cells([fake_result(config)], base).keys() == {("CCE", "s0.2")}
    twice = [fake_result(config), fake_result(config)]
    with pytest.raises(ValueError, match="two results"):
        paper.table1_cells(twice, base)


def test_table9_cells_and_measures():
    row = tables.table9_rows()[3]  # 0.2, DM lambda=0.5, beta=12
    config = tables.table9_config(row)
    result = fake_result(config, best_test_accuracy=0.9, final_test_accuracy=0.875,
                         final_train_accuracy_noisy_labels=0.81, final_train_accuracy_clean_labels=0.9,
                         realised_noise_rate=0.2)
    measures = paper.table9_measures(result)
    assert (measures["corrupted"], measures["intact"]) == (0.81, 0.9)
    cells = grid(paper.table9_markdown([result]))
    assert cells["0.2 DM lambda=0.5, beta=12", "best"] == "89.4 / 90.0"
    assert cells["0.2 DM lambda=0.5, beta=12", "final"] == "87.8 / 87.5"
    assert cells["0.2 DM lambda=0.5, beta=12", "corrupted"] == "81.5 / 81.0"
    assert cells["0.2 DM lambda=0.5, beta=12", "intact"] == "95.0 / 90.0"
    unrecorded = dict(result, final_train_accuracy_clean_labels=None)
    assert grid(paper.table9_markdown([unrecorded]))[
        "0.2 DM lambda=0.5, beta=12", "intact"] == "95.0 / " + paper.NOT_RECORDED
    assert cells["0.4 DM lambda=0.5, beta=12", "best"] == "85.1 / " + paper.BLANK
    assert grid(paper.table9_markdown([dict(result, mode="smoke")]))[
        "0.2 DM lambda=0.5, beta=12", "best"] == "89.4 / " + paper.BLANK


def test_beta_table_shows_every_dm_cell_and_its_source():
    cells = grid(paper.table1_beta_markdown())
    assert {k[0] for k in cells} == {"DM (lambda = 0)", "DM (lambda = 0.5)", "DM (lambda = 1)"}
    assert cells["DM (lambda = 0.5)", "s0.4"] == "8 (run)"
    assert cells["DM (lambda = 1)", "clean"] == "6 (run)"
    assert cells["DM (lambda = 1)", "a0.2"] == "8 (guessed)"
    for (row, key), text in cells.items():
        lam = tables.TABLE1_ROWS[row]["lam"]
        beta, source = tables.TABLE1_DM_BETA[(lam, key)]
        assert text.startswith(f"{beta:g} (") and ("guessed" in text) == (source == tables.GUESSED)
    sources = paper.table1_beta_sources_markdown()
    assert "`DerivativeManipulation_Code/CIFAR100_ResNet44_V03_lambda1/train_Res44_USW_Beta02_lambda1_0.6`" in sources
    assert "Not traced to a run (9 cells" in sources


# --- the authors' logs -----------------------------------------------------------

def test_the_authors_logs_show_table1_reports_the_best_accuracy():
    """Of the 48 logged symmetric runs, the best accuracy as the paper
    prints it equals Table 1's cell in 45, the final one in 7; these three
    are the exceptions (CCE clean matches the final instead)."""
    spec = tables.table("table1")
    keys = [c["key"] for c in spec["columns"]]
    matches = authors.table1_best_matches(spec["rows"], keys)
    assert len(authors.logs()) == 48
    assert len(matches["best"]) == 45 and len(matches["final"]) == 7
    best_misses = {cell for cell in ((r["row"], r["column"]) for r in authors.logs())} - set(matches["best"])
    assert best_misses == {("CCE", "clean"), ("GCE", "s0.6"), ("MSE", "s0.4")}
    assert ("CCE", "clean") in matches["final"]


def test_every_dm_beta_traced_to_a_run_reproduces_its_cell():
    """The betas taken from the authors' run folders: each such run's best
    accuracy is the paper's number, its lambda and beta those of the cell."""
    spec = tables.table("table1")
    keys = [c["key"] for c in spec["columns"]]
    traced = 0
    for (lam, key), (beta, source) in tables.TABLE1_DM_BETA.items():
        if source == tables.GUESSED:
            assert key.startswith("a")
            continue
        row = {0.0: "DM (lambda = 0)", 0.5: "DM (lambda = 0.5)", 1.0: "DM (lambda = 1)"}[lam]
        log = authors.run_log(row, key)
        assert (log["lam"], log["beta"]) == (lam, beta) and log["path"].startswith(source)
        assert authors.printed(log["best"]) == spec["rows"][row][keys.index(key)]
        assert log["iteration"] == list(range(1000, 30_001, 1000))
        traced += 1
    assert traced == 12


def test_printed_rounds_halves_up():
    assert authors.printed(0.5315) == 53.2 and authors.printed(0.0725) == 7.3
    assert authors.printed(0.6087) == 60.9 and authors.printed(0.5) == 50.0


def test_authors_logs_table():
    cells = grid(paper.authors_logs_markdown())
    assert cells["DM (lambda = 0.5)", "s0.4"] == "61.0 / **61.00** / 59.89"
    assert cells["CCE", "clean"] == "70.0 / 70.11 / 70.04"


# --- with the real trainer -----------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_cifar100(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return cifar.load("cifar100", root, checksums=cifar.fabricate(root, "cifar100", n_train=200, n_test=50))


@pytest.fixture
def one_thread():
    # A tiny network on a shared machine: one thread is fastest.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_a_real_smoke_run_is_kept_out_of_ours(tiny_cifar100, tmp_path, monkeypatch, one_thread):
    monkeypatch.setenv("DM_MODE", "smoke")
    base = dataclasses.replace(experiments.PAPER_CIFAR100, model="resnet8", iterations=2,
                               batch_size=16, lr_milestones=(1,), eval_every=1, checkpoint_every=2)
    config = tables.table1_config("DM (lambda = 0.5)", "a0.3", base)
    result = experiments.run(config, tmp_path, tiny_cifar100, device="cpu", progress=False,
                             eval_train=False)
    assert result["mode"] == "smoke"
    assert paper.table1_cells([result], base) == {}
    shown = grid(paper.table1_markdown([result], base, include_smoke=True, show_paper=False))
    assert shown["DM (lambda = 0.5)", "a0.3"] == (f"{100 * result['best_test_accuracy']:.1f} "
                                                  f"({100 * result['final_test_accuracy']:.1f})")
