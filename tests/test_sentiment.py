"""dm.experiments.imdb: the paper's IMDB settings, the inv schedule, Table 5's cells,
class weights, and runs on a fabricated archive (records, imbalance counts,
binary noise, exact resume, stored results, the command line)."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dm import cli
from dm import losses
from dm.data import imdb
from dm.data import paragraph_vectors as pv
from dm.experiments import imdb as st
from dm.experiments import tables
from dm.experiments.method import make_loss
from dm.models.mlp import mlp
from dm.report import paper
from dm.training import runs

ROOT = Path(__file__).resolve().parents[1]
METHODS = ["CCE", "GCE", "MAE", "MSE", "CCE-DN", "GCE-DN", "MAE-DN", "MSE-DN", "DM"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("imdb")
    reviews = imdb.load(root, md5=imdb.fabricate(root, n_train=400, n_test=100, n_unsup=50, seed=2),
                        progress=False)
    features = pv.paragraph_vectors(reviews, pv.Settings(epochs=10), root / "vectors",
                                    workers=1, progress=False)
    return reviews, features, st.dataset(reviews, features)


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny(features, **changes):
    base = dict(features=features, iterations=60, batch_size=20, eval_every=20, checkpoint_every=10)
    base.update(changes)
    return dataclasses.replace(st.PAPER_IMDB, **base)


def test_paper_settings():
    c = st.PAPER_IMDB
    assert (c.hidden, c.lr, c.momentum, c.weight_decay, c.iterations, c.seed) == (8, 0.01, 0.9, 0.002, 10_000, 123)
    assert (c.lr_gamma, c.lr_power) == (1e-5, 0.75)
    assert c.batch_size == 100  # our choice: the paper gives none
    assert tables.TABLE5_DM == {"r = 0.0": (0.0, 0.9), "r = 0.2": (0.0, -0.52), "r = 0.4": (0.0, -0.33),
                            "P-N 10:1": (0.3, 6.5), "P-N 50:1": (0.3, 6.5)}
    net = mlp(100, c.hidden, 2)
    assert [tuple(p.shape) for p in net.parameters()] == [(8, 100), (8,), (2, 8), (2,)]


def test_inv_schedule_is_caffes():
    c = st.PAPER_IMDB
    # Caffe's "inv": base_lr * (1 + gamma * iter) ^ (-power)
    assert st.lr_at(c, 0) == 0.01
    assert st.lr_at(c, 10_000) == pytest.approx(0.01 * 1.1 ** -0.75, rel=1e-15)
    assert st.lr_at(c, 10_000) == pytest.approx(0.0093101, abs=1e-7)  # 1.1 ** -0.75 = 0.931012
    assert st.lr_at(c, 1_000) == pytest.approx(0.01 / 1.01 ** 0.75, rel=1e-15)
    values = [st.lr_at(c, t) for t in range(0, 10_001, 500)]
    assert all(a > b for a, b in zip(values, values[1:]))
    assert st.lr_at(dataclasses.replace(c, lr_gamma=0.0), 9_999) == 0.01


@pytest.mark.parametrize("field, value, message", [
    ("method", "Focal", "method must be one of"),
    ("lam", -0.3, "lam must be >= 0, got -0.3"),
    ("beta", float("inf"), "beta must be finite"),
    ("gce_q", 1.5, "q must lie in \\(0, 1\\], got 1.5"),
    ("class_weight", "inverse", "class_weight must be one of"),
    ("noise_rate", 1.0, "noise_rate must lie in \\[0, 1\\), got 1.0"),
    ("imbalance", 0, "imbalance must be a positive integer, got 0"),
    ("imbalance", 10.0, "imbalance must be a positive integer, got 10.0"),
    ("batch_size", 0, "batch_size must be a positive integer"),
    ("lr", 0.0, "lr must be > 0"),
    ("lr_gamma", -1e-5, "lr_gamma must be >= 0"),
    ("weight_decay", -0.002, "weight_decay must be >= 0"),
])
def test_bad_configs_name_the_bad_value(field, value, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(st.PAPER_IMDB, **{field: value})


def test_negative_beta_is_legal():
    config = dataclasses.replace(st.PAPER_IMDB, method="DM", beta=-0.52)
    assert config.beta == -0.52 and isinstance(make_loss(config), losses.DMLoss)


def test_table5_cells():
    assert list(tables.TABLE5_ROWS) == tables.table5_rows()
    assert tables.table5_columns() == METHODS == list(st.METHODS)
    configs = tables.table5_configs("k")
    assert list(configs) == [(row, column) for row in tables.TABLE5_ROWS
                             for column in METHODS + (list(tables.IMBALANCE_EXTRA) if "P-N" in row else [])]
    assert len({c.name() for c in configs.values()}) == len(configs) == 5 * 9 + 2 * 2
    assert list(tables.table5_configs("k", rows=["r = 0.4"])) == [("r = 0.4", m) for m in METHODS]
    assert configs["r = 0.2", "DM"].beta == -0.52 and configs["r = 0.2", "DM"].lam == 0.0
    assert configs["r = 0.4", "GCE-DN"].noise_rate == 0.4 and configs["r = 0.4", "GCE-DN"].imbalance == 1
    assert configs["P-N 50:1", "DM"].imbalance == 50 and (configs["P-N 50:1", "DM"].lam,
                                                           configs["P-N 50:1", "DM"].beta) == (0.3, 6.5)
    both = configs["P-N 10:1", "DM + class weights"]
    assert (both.method, both.class_weight, both.lam, both.beta, both.imbalance) == ("DM", "balanced", 0.3, 6.5, 10)
    assert configs["P-N 10:1", "CCE + class weights"].method == "CCE"
    assert all(c.features == "k" for c in configs.values())
    with pytest.raises(ValueError, match="row must be one of"):
        tables.table5_config("r = 0.6", "CCE", "k")
    with pytest.raises(ValueError, match="column must be one of"):
        tables.table5_config("r = 0.0", "SL", "k")


def test_balanced_class_weights():
    labels = np.array([1] * 12_500 + [0] * 1_250)
    w = st.class_weights(labels)
    assert w == pytest.approx([13_750 / 2_500, 13_750 / 25_000])
    assert w[0] * 1_250 == pytest.approx(w[1] * 12_500)  # each class carries the same total weight
    assert st.class_weights(np.array([1, 1, 1])).tolist() == [0.0, 0.5]  # n / (2 n_k) = 3 / 6


def test_run_records_what_table5_needs(setup, tmp_path):
    reviews, features, data = setup
    config = tiny(features.key, method="DM", lam=0.0, beta=-0.52, noise_rate=0.2)
    result = st.run(config, tmp_path, data, progress=False)
    assert result["name"] == config.name() and (tmp_path / config.name() / "result.json").exists()
    h = result["history"]
    assert h["iteration"] == [20, 40, 60]
    assert h["lr"] == [st.lr_at(config, t - 1) for t in (20, 40, 60)]
    for key in ("test_accuracy", "test_balanced_accuracy", "test_recall_negative", "test_recall_positive"):
        assert len(h[key]) == 3 and result[f"final_{key}"] == h[key][-1]
        assert 0 <= result[f"final_{key}"] <= 1
    assert result["final_test_balanced_accuracy"] == pytest.approx(
        (result["final_test_recall_negative"] + result["final_test_recall_positive"]) / 2, abs=1e-6)
    assert result["test_size"] == 100 and result["train_size"] == 400
    assert result["realised_noise_rate"] == 0.2  # exactly round(0.2 * 400) flips
    assert result["mode"] == "smoke" and result["fabricated_data"] is True
    assert result["class_weights"] is None
    assert all(np.isfinite(h["train_loss"]))


def test_binary_noise_flips_to_the_opposite_label(setup):
    _, _, data = setup
    from dm import noise

    noisy = noise.symmetric(data.y_train, 0.4, 2, 123)
    flipped = noisy != data.y_train
    assert flipped.sum() == 160 and np.array_equal(noisy[flipped], 1 - data.y_train[flipped])


def test_imbalance_keeps_all_positives_and_exact_negatives(setup, tmp_path):
    _, features, data = setup
    for ratio, negatives in ((10, 20), (50, 4)):
        result = st.run(tiny(features.key, imbalance=ratio, batch_size=8), tmp_path, data, progress=False)
        assert result["train_class_counts"] == result["train_class_counts_clean"] == [negatives, 200]
        assert result["train_size"] == 200 + negatives and result["test_size"] == 100


def test_class_weighted_dm_run(setup, tmp_path):
    _, features, data = setup
    config = tables.table5_config("P-N 10:1", "DM + class weights", features.key,
                              tiny(features.key, batch_size=8))
    result = st.run(config, tmp_path, data, progress=False)
    assert result["class_weights"] == pytest.approx([220 / 40, 220 / 400])
    assert result["train_class_counts"] == [20, 200]
    plain = st.run(dataclasses.replace(config, class_weight="none"), tmp_path, data, progress=False)
    assert plain["history"]["train_loss"] != result["history"]["train_loss"]  # the weights reach the loss


@pytest.mark.parametrize("stop", [10, 25])  # at a checkpoint that is an evaluation, and between
def test_resume_reaches_the_same_numbers(setup, tmp_path, stop):
    _, features, data = setup
    config = tiny(features.key, method="GCE-DN", noise_rate=0.4)
    whole = st.run(config, tmp_path / "whole", data, progress=False)
    assert st.run(config, tmp_path / "cut", data, progress=False, stop_at=stop) is None
    resumed = st.run(config, tmp_path / "cut", data, progress=False)
    assert resumed["history"] == whole["history"]
    a = torch.load(tmp_path / "whole" / config.name() / "model.pt")
    b = torch.load(tmp_path / "cut" / config.name() / "model.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["segments"][1]["start"] == stop  # a checkpoint is written where it stopped


def test_stored_result_is_returned_and_other_features_are_refused(setup, tmp_path):
    _, features, data = setup
    config = tiny(features.key)
    first = st.run(config, tmp_path, data, progress=False)
    (tmp_path / config.name() / "model.pt").unlink()  # not needed to return the stored result
    assert st.run(config, tmp_path, data, progress=False) == first
    with pytest.raises(ValueError, match="features"):
        st.run(tiny("0123456789abcdef"), tmp_path, data, progress=False)


def test_dm_and_cce_learn_the_fabricated_sentiment(setup, tmp_path):
    # Training behaviour on a small problem: the 8-unit network on the
    # vectors of the fabricated reviews beats chance clearly with CCE and with
    # DM at the paper's clean setting (lambda 0, beta 0.9).
    _, features, data = setup
    for method, extra in (("CCE", {}), ("DM", {"lam": 0.0, "beta": 0.9})):
        config = tiny(features.key, method=method, iterations=600, eval_every=300, lr=0.05, **extra)
        result = st.run(config, tmp_path, data, progress=False)
        assert result["final_test_accuracy"] >= 0.7, (method, result["final_test_accuracy"])


def test_table5_markdown_places_full_results_only(setup):
    _, features, _ = setup
    config = tables.table5_config("r = 0.4", "DM", features.key)
    result = {"name": config.name(), "config": dataclasses.asdict(config), "mode": "full",
              "final_test_accuracy": 0.864, "final_test_balanced_accuracy": 0.864,
              "final_test_recall_negative": 0.86, "final_test_recall_positive": 0.868}
    table = paper.table5_markdown([result], features.key)
    assert ("| r = 0.4 | 75.5 / — | 83.6 / — | 84.9 / — | 83.7 / — | 75.0 / — | 75.2 / — | 80.2 / — "
            "| 75.3 / — | 86.4 / 86.4 |") in table
    assert "| P-N 50:1 | 63.4 / — | 0.5* / — | 0.5* / — |" in table and "one run per cell" in table
    smoke = dict(result, mode="smoke")
    assert "86.4 / 86.4" not in paper.table5_markdown([smoke], features.key)
    other = tables.table5_config("P-N 10:1", "CCE + class weights", features.key)
    detail = paper.imbalance_markdown([dict(result, name=other.name(), config=dataclasses.asdict(other))],
                                      features.key)
    assert "| P-N 10:1 | CCE + class weights | 86.4 | 86.4 | 86.0 | 86.8 |" in detail
    with pytest.raises(ValueError, match="matches no cell"):
        paper.table5_markdown([result], "another-key")


def test_table5_cells_hold_every_seed(setup):
    """A Table 5 cell holds one result per seed and shows their mean ± SE;
    a second result for one cell and seed is refused."""
    _, features, _ = setup
    configs = tables.table5_configs(features.key, seeds=[5, 3, 4])
    assert len(configs) == 49 * 3 and configs["r = 0.2", "GCE", 4].seed == 4
    accuracies = {3: 0.80, 4: 0.84, 5: 0.88}
    results = [{"name": c.name(), "config": dataclasses.asdict(c), "mode": "full",
                "final_test_accuracy": accuracies[c.seed]}
               for key, c in configs.items() if key[:2] == ("r = 0.2", "GCE")]
    cells = paper.table5_cells(results, features.key)
    assert list(cells) == [("r = 0.2", "GCE")]
    assert [r["config"]["seed"] for r in cells["r = 0.2", "GCE"]] == [3, 4, 5]
    table = paper.table5_markdown(results, features.key)
    assert "| r = 0.2 | 87.7 / — | 88.6 / 84.0 ± 2.3 |" in table   # SE of .80, .84, .88: 0.04 / sqrt(3)
    assert "mean ± standard error over 3 seeds per cell" in table
    by_seed = {r["config"]["seed"]: r for r in results}
    fewer = paper.table5_markdown([by_seed[3], by_seed[5], dict(by_seed[3], config=dataclasses.asdict(
        configs["r = 0.2", "MAE", 3]))], features.key)
    assert "| 88.6 / 84.0 ± 4.0 | 88.6 / 80.0 [1] |" in fewer   # GCE: seeds 3 and 5; MAE: seed 3
    assert "[n]: a cell with another number of seeds" in fewer
    with pytest.raises(ValueError, match="two results for the cell .* with seed 3"):
        paper.table5_cells(results + [by_seed[3]], features.key)
    with pytest.raises(ValueError, match="seeds must be distinct"):
        tables.table5_configs(features.key, seeds=[1, 1])


def test_table5_command_runs_every_cell_and_seed(setup, tmp_path, monkeypatch):
    """``python -m dm table5``: every cell once per seed, and the
    results collected into a results folder (on a fabricated archive, one row)."""
    reviews, features, data = setup
    monkeypatch.setattr(st.imdb, "load", lambda root, download: reviews)
    monkeypatch.setattr(st.paragraph_vectors, "paragraph_vectors", lambda reviews, cache_dir: features)
    monkeypatch.setattr(st, "PAPER_IMDB", st.smoke_config(st.PAPER_IMDB, 20))
    assert cli.main(["table5", "--seeds", "1,2", "--rows", "r = 0.4", "--runs-dir", str(tmp_path / "imdb")]) == 0
    record = json.loads((tmp_path / "imdb" / "paragraph_vectors.json").read_text())
    assert record["key"] == features.key and 0 <= record["logistic_regression_accuracy"] <= 1
    runs.collect_results(tmp_path / "imdb", tmp_path / "results", full_only=False)  # smoke: fabricated
    stored = paper.load_results(tmp_path / "results" / "imdb")
    assert len(stored) == 9 * 2
    assert {(r["config"]["method"], r["config"]["seed"]) for r in stored} == {
        (m, s) for m in st.METHODS for s in (1, 2)}
    assert all(r["data"]["copy"] == "fabricated" for r in stored)


def test_notebook_setup_smoke_mode(tmp_path):
    setup = st.notebook_setup("smoke", runs_dir=tmp_path)
    assert setup.mode == "smoke" and setup.reviews.fabricated and setup.data.fabricated
    assert setup.base.iterations == 200 and setup.base.batch_size == 10 and setup.base.method == "CCE" and setup.base.lr == 0.01
    assert setup.data.features == setup.features.key and setup.runs_dir == tmp_path
    assert setup.run_options == {"device": "cpu", "progress": False}
    # every Table 5 cell can run on the fabricated data (50:1 keeps 2 negatives)
    result = st.run(tables.table5_config("P-N 50:1", "DM + class weights", setup.features.key, setup.base),
                    tmp_path, setup.data, **setup.run_options)
    assert result["train_class_counts"] == [2, 100]


def test_command_line_on_a_fabricated_archive(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "dm", "imdb", "--fabricated", "--runs-dir", str(tmp_path),
         "--iterations", "20", "--batch-size", "10", "--method", "DM", "--beta", "-0.33",
         "--noise-rate", "0.4", "--no-progress"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env={"OMP_NUM_THREADS": "1", "PATH": ""})
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout[out.stdout.index("{"):])
    assert summary["name"].startswith("imdb_pv") and "DM-lam0-beta-0.33" in summary["name"]
    assert 0 <= summary["final_test_accuracy"] <= 1


def test_run_all_in_two_processes_gives_the_numbers_of_one(setup, tmp_path):
    # dm.training.runs.run_all(workers=2) shares the runs out to two spawned processes
    # (one torch thread each, as here); every run's numbers are its own.
    _, features, data = setup
    configs = {(m, s): tiny(features.key, method=m, seed=s, **({"lam": 0.0, "beta": 0.9} if m == "DM" else {}))
               for m in ("CCE", "DM") for s in (1, 2)}
    alone = st.run_all(configs, tmp_path / "one", data, report=False, progress=False)
    shared = st.run_all(configs, tmp_path / "two", data, report=False, workers=2, progress=False)
    assert list(shared) == list(configs)
    for key in configs:
        assert shared[key]["history"]["test_accuracy"] == alone[key]["history"]["test_accuracy"]
        assert shared[key]["history"]["train_loss"] == alone[key]["history"]["train_loss"]
    with pytest.raises(ValueError, match="workers must be a positive integer, got 0"):
        st.run_all(configs, tmp_path / "none", data, workers=0)
