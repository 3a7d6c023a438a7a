"""dm.experiments: configs, schedule, methods, the run's records, exact
resume after an interruption, stored results, the command line."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from dm import cli
from dm import losses
from dm.data import cifar
from dm.experiments import cifar as ex
from dm.experiments import notebook, tables
from dm.experiments.method import make_loss
from dm.report import banners, paper
from dm.training import step

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar10")
    return cifar.load("cifar10", root, checksums=cifar.fabricate(root, "cifar10", 400, 100, seed=0))


def tiny(**changes):
    base = dict(dataset="cifar10", model="resnet8", iterations=8, batch_size=32,
                lr=0.05, lr_milestones=(6,), eval_every=4, checkpoint_every=2, noise_rate=0.4)
    base.update(changes)
    return dataclasses.replace(ex.PAPER_CIFAR10_RESNET56, **base)


def test_paper_defaults():
    c = ex.PAPER_CIFAR100
    assert (c.dataset, c.model, c.iterations, c.batch_size, c.lr, c.lr_milestones) == \
        ("cifar100", "resnet44", 30_000, 256, 0.1, (15_000, 22_000))
    assert (c.momentum, c.weight_decay, c.seed) == (0.9, 1e-4, 123)
    assert ex.PAPER_CIFAR10_RESNET56.model == "resnet56"


def test_learning_rate_schedule():
    c = ex.PAPER_CIFAR100
    assert ex.lr_at(c, 0) == 0.1 and ex.lr_at(c, 14_999) == 0.1
    assert ex.lr_at(c, 15_000) == pytest.approx(0.01) and ex.lr_at(c, 21_999) == pytest.approx(0.01)
    assert ex.lr_at(c, 22_000) == pytest.approx(0.001) and ex.lr_at(c, 29_999) == pytest.approx(0.001)


@pytest.mark.parametrize("field, value, message", [
    ("method", "Focal", "method must be one of"),
    ("dataset", "mnist", "dataset must be"),
    ("model", "vgg", "resnet<depth>"),
    ("model", "resnet45", "depth must be one of"),
    ("lam", -0.5, "lam must be >= 0, got -0.5"),
    ("gce_q", 0.0, "q must lie in \\(0, 1\\], got 0.0"),
    ("noise", "pair", "noise must be one of"),
    ("noise_rate", 1.0, "noise_rate must lie in \\[0, 1\\), got 1.0"),
    ("noise_rate", -0.1, "noise_rate must lie in"),
    ("val_fraction", 1.2, "val_fraction"),
    ("iterations", 0, "iterations must be a positive integer, got 0"),
    ("lr", -0.1, "lr must be > 0"),
    ("beta", float("nan"), "beta must be finite"),
])
def test_bad_configs_name_the_bad_value(field, value, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(ex.PAPER_CIFAR100, **{field: value})


def test_methods_map_to_the_right_losses():
    for method in ex.METHODS:
        loss = make_loss(dataclasses.replace(ex.PAPER_CIFAR100, method=method, lam=0.5, beta=8))
        if method == "DM":
            assert isinstance(loss, losses.DMLoss) and (loss.lam, loss.beta) == (0.5, 8)
        elif method.endswith("-DN"):
            assert isinstance(loss, losses.DN) and type(loss.loss).__name__ == method[:-3]
        else:
            assert type(loss).__name__ == method
    assert make_loss(dataclasses.replace(ex.PAPER_CIFAR100, method="GCE", gce_q=0.5)).q == 0.5


def test_names_are_unique_and_readable():
    a = dataclasses.replace(ex.PAPER_CIFAR100, method="DM", lam=0.5, beta=8, noise_rate=0.4)
    assert a.name() == "cifar100_resnet44_sym0.4_DM-lam0.5-beta8_noiseseed123_seed123"
    b = dataclasses.replace(a, weight_decay=5e-4)
    assert b.name() != a.name() and b.name().startswith("cifar100_resnet44_sym0.4_DM-lam0.5-beta8_x")
    assert dataclasses.replace(a, noise="asymmetric", noise_rate=0.2).name().startswith(
        "cifar100_resnet44_asy0.2_")
    assert ex.PAPER_CIFAR100.name() == "cifar100_resnet44_clean_CCE_noiseseed123_seed123"
    # Both seeds show; the authors' preset is named as such, not by a hash.
    assert dataclasses.replace(a, seed=4, noise_seed=7).name().endswith("_noiseseed7_seed4")
    authors = dataclasses.replace(ex.AUTHORS_CIFAR100, method="DM", lam=0.5, beta=8, noise_rate=0.4)
    assert authors.name() == "cifar100_resnet44_sym0.4_DM-lam0.5-beta8_authors_noiseseed123_seed123"
    changed = dataclasses.replace(authors, weight_decay=1e-4).name()
    assert changed.startswith("cifar100_resnet44_sym0.4_DM-lam0.5-beta8_authors_x") and changed != authors.name()


def test_table1_configs():
    table = json.loads((ROOT / "dm" / "data" / "paper_tables.json").read_text())["table1"]
    names = set()
    for row in tables.TABLE1_ROWS:
        assert row in table["rows"]
        for column in table["columns"]:
            config, source = tables.table1_config(row, column), tables.table1_beta_source(row, column)
            assert (config.noise, config.noise_rate) == (column["noise"], column["rate"])
            assert config.iterations == 30_000 and config.model == "resnet44"
            if row.startswith("DM (lambda"):
                if column["noise"] == "symmetric":  # traced to the authors' run folder of the cell
                    assert source.startswith("DerivativeManipulation_Code/CIFAR100_ResNet44_V03_"), source
                    assert f"Beta{int(config.beta):02d}" in source
                else:
                    assert source == tables.GUESSED
            names.add(config.name())
    assert len(names) == 12 * 7
    column = {"key": "s0.4", "noise": "symmetric", "rate": 0.4}
    config, source = tables.table1_config("DM (lambda = 0.5)", column), tables.table1_beta_source("DM (lambda = 0.5)", column)
    assert (config.lam, config.beta) == (0.5, 8.0) and source.endswith("lambda0_5/train_Res44_USW_Beta08_lambda1_0.4")
    # lambda = 1: the betas of the run folders (6, 8, 8, 2), no longer guesses.
    betas = [tables.table1_config("DM (lambda = 1)", c).beta for c in table["columns"][:4]]
    assert betas == [6.0, 8.0, 8.0, 2.0]


def test_run_records_what_the_tables_need(data, tmp_path):
    result = ex.run(tiny(), tmp_path, data, progress=False)
    h = result["history"]
    assert h["iteration"] == [4, 8]
    assert h["lr"] == [0.05, pytest.approx(0.005)]
    for key in ("test_accuracy", "train_accuracy_noisy_labels", "train_accuracy_clean_labels",
                "train_accuracy_corrupted", "train_accuracy_intact", "mean_p_corrupted", "mean_p_intact"):
        assert len(h[key]) == 2 and all(0 <= v <= 1 for v in h[key]), key
    # The whole set against the noisy labels is its two parts' mix.
    for i in range(2):
        mix = 0.6 * h["train_accuracy_intact"][i] + 0.4 * h["train_accuracy_corrupted"][i]
        assert h["train_accuracy_noisy_labels"][i] == pytest.approx(mix, abs=1e-5)
    assert result["best_test_accuracy"] == max(h["test_accuracy"])
    assert result["final_test_accuracy"] == h["test_accuracy"][-1]
    assert result["realised_noise_rate"] == 0.4
    T = np.array(result["transition_matrix"])
    assert T.shape == (10, 10) and np.allclose(T.sum(1), 1, atol=1e-3)
    assert np.allclose(np.diag(T).mean(), 0.6, atol=1e-3)
    assert result["hardware"].startswith("CPU") and result["wall_seconds"] > 0
    assert result["train_images_per_second"] > 0
    folder = tmp_path / result["name"]
    assert json.loads((folder / "result.json").read_text()) == result
    assert (folder / "model.pt").exists() and not (folder / "checkpoint.pt").exists()


def test_stored_result_is_returned_without_training(data, tmp_path):
    first = ex.run(tiny(), tmp_path, data, progress=False)
    (tmp_path / first["name"] / "model.pt").unlink()
    again = ex.run(tiny(), tmp_path, data, progress=False)
    assert again == first and not (tmp_path / first["name"] / "model.pt").exists()


@pytest.mark.parametrize("stop", [3, 6])  # mid eval interval; at an evaluation
def test_resume_reaches_the_same_numbers(data, tmp_path, stop):
    config = tiny(method="DM", lam=0.5, beta=8)
    whole = ex.run(config, tmp_path / "whole", data, progress=False)
    assert ex.run(config, tmp_path / "cut", data, progress=False, stop_at=stop) is None
    assert (tmp_path / "cut" / config.name() / "checkpoint.pt").exists()
    resumed = ex.run(config, tmp_path / "cut", data, progress=False)
    assert resumed["history"] == whole["history"]
    assert [s["start"] for s in resumed["segments"]] == [0, stop]
    a = torch.load(tmp_path / "whole" / config.name() / "model.pt")
    b = torch.load(tmp_path / "cut" / config.name() / "model.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_checkpoint_of_another_config_is_refused(data, tmp_path):
    config = tiny()
    ex.run(config, tmp_path, data, progress=False, stop_at=2)
    state = torch.load(tmp_path / config.name() / "checkpoint.pt", weights_only=False)
    state["config"]["lr"] = 0.5
    torch.save(state, tmp_path / config.name() / "checkpoint.pt")
    with pytest.raises(ValueError, match="different configuration"):
        ex.run(config, tmp_path, data, progress=False)


def test_val_split_uses_clean_labels_and_noise_only_on_train(data, tmp_path):
    result = ex.run(tiny(val_fraction=0.2, iterations=4), tmp_path, data, progress=False)
    assert result["val_size"] == 80 and result["train_size"] == 320
    assert result["final_val_accuracy"] is not None
    assert result["realised_noise_rate"] == 0.4


def test_noise_is_the_same_for_every_method(data):
    a = ex._noisy_labels(tiny(method="CCE"), data.y_train)
    b = ex._noisy_labels(tiny(method="DM", lam=1, beta=4), data.y_train)
    assert np.array_equal(a, b) and np.mean(a != data.y_train) == 0.4
    asym = ex._noisy_labels(tiny(noise="asymmetric", noise_rate=0.4), data.y_train)
    assert set(np.unique(data.y_train[asym != data.y_train])) <= {2, 3, 4, 5, 9}


def test_wrong_data_set_is_refused(data, tmp_path):
    with pytest.raises(ValueError, match="data is cifar10 but config.dataset is cifar100"):
        ex.run(dataclasses.replace(tiny(), dataset="cifar100"), tmp_path, data, progress=False)


def test_training_learns_the_fabricated_classes(data, tmp_path):
    """On clean fabricated data (colour and position mark the class) a few
    dozen steps of CCE and of DM reach well above chance (10 %)."""
    for method in ("CCE", "DM"):
        config = tiny(method=method, lam=0.5, beta=2, noise_rate=0.0, iterations=40,
                      lr_milestones=(30,), eval_every=40, checkpoint_every=40)
        result = ex.run(config, tmp_path, data, progress=False, eval_train=False)
        assert result["final_test_accuracy"] > 0.5, (method, result["final_test_accuracy"])


def test_one_name_for_the_mode_switch():
    # The switch's behaviour is tested in test_runs; the notebooks call it
    # dm.experiments.notebook.mode, and neither experiment module offers a second name for it.
    from dm.experiments import imdb as sentiment

    for module in (ex, sentiment):
        for name in ("mode", "mode_banner", "describe_runs"):
            assert not hasattr(module, name) and name not in module.__all__, (module.__name__, name)


CLI = [sys.executable, "-m", "dm", "cifar", "--fabricated", "--dataset", "cifar10",
       "--model", "resnet8", "--batch-size", "32", "--method", "DM", "--lam", "0.5",
       "--beta", "4", "--noise-rate", "0.2", "--lr-milestones", "20", "--no-progress"]
# (--no-noise-exact would switch to Bernoulli noise; boolean fields get --x/--no-x flags.)


def test_command_line_run(tmp_path):
    out = subprocess.run(CLI + ["--iterations", "3", "--eval-every", "3", "--runs-dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["realised_noise_rate"] == 0.2
    (folder,) = [p for p in tmp_path.iterdir() if p.name != "fabricated-data"]
    assert json.loads((folder / "result.json").read_text())["config"]["beta"] == 4.0


def test_command_line_presets():
    parse = cli._cifar_parser().parse_args
    assert cli.config_from_args(parse([])) == ex.PAPER_CIFAR100
    authors = cli.config_from_args(parse(["--preset", "authors", "--dataset", "cifar10", "--seed", "3"]))
    assert authors == dataclasses.replace(ex.AUTHORS_CIFAR10_RESNET56, dataset="cifar10", seed=3)
    changed = cli.config_from_args(parse(["--preset", "authors", "--weight-decay", "1e-4", "--lr-milestones", "5"]))
    assert changed == dataclasses.replace(ex.AUTHORS_CIFAR100, weight_decay=1e-4, lr_milestones=(5,))


def test_command_line_survives_a_kill(tmp_path):
    """SIGKILL the process after its first checkpoint; a second process
    resumes and ends where an uninterrupted one does."""
    args = ["--iterations", "30", "--eval-every", "10", "--checkpoint-every", "5"]
    proc = subprocess.Popen(CLI + args + ["--runs-dir", str(tmp_path / "cut")], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 90
    while not list((tmp_path / "cut").glob("*/checkpoint.pt")) and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    (checkpoint,) = list((tmp_path / "cut").glob("*/checkpoint.pt"))
    assert torch.load(checkpoint, weights_only=False)["iteration"] < 30
    for runs in ("cut", "whole"):
        out = subprocess.run(CLI + args + ["--runs-dir", str(tmp_path / runs)], cwd=ROOT,
                             capture_output=True, text=True, timeout=180)
        assert out.returncode == 0, out.stderr
    cut = json.loads(next((tmp_path / "cut").glob("*/result.json")).read_text())
    whole = json.loads(next((tmp_path / "whole").glob("*/result.json")).read_text())
    assert cut["history"] == whole["history"] and len(cut["segments"]) == 2


def test_class_balanced_sampler(data, tmp_path, monkeypatch):
    """sampler="classes", as the authors' Matlab code draws batches: every
    batch holds 8 distinct images of each of batch/8 distinct (noisy)
    classes, and the classes are walked in windows through a permutation, so
    within one sweep (floor(C / P) batches) no class comes twice."""
    seen = []
    real_augment = cifar.augment

    def spy(images, generator=None, **kw):
        seen.append(images.clone())
        return real_augment(images, generator, **kw)

    monkeypatch.setattr(cifar, "augment", spy)
    config = tiny(sampler="classes", batch_size=32, iterations=8, noise_rate=0.0)
    ex.run(config, tmp_path, data, progress=False, eval_train=False)
    seen = seen[:8]
    lookup = {data.x_train[i].tobytes(): (i, data.y_train[i]) for i in range(len(data.y_train))}
    per_batch = []
    for batch in seen:
        found = [lookup[img.numpy().tobytes()] for img in batch]
        images, labels = np.array([f[0] for f in found]), np.array([f[1] for f in found])
        values, counts = np.unique(labels, return_counts=True)
        assert len(values) == 4 and np.all(counts == 8)
        assert len(np.unique(images)) == 32  # no image twice in a batch
        per_batch.append(values)
    # C = 10 classes, P = 4 per batch: sweeps of floor(10 / 4) = 2 batches, 8 distinct classes each.
    for sweep in range(4):
        classes = np.concatenate(per_batch[2 * sweep:2 * sweep + 2])
        assert len(np.unique(classes)) == 8
    with pytest.raises(ValueError, match="divisible by 8"):
        tiny(sampler="classes", batch_size=30)
    with pytest.raises(ValueError, match="sampler must be one of"):
        tiny(sampler="pk")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("compile", [False, True])
def test_cuda_autocast_channels_last_run_and_resume(data, tmp_path, compile):
    config = tiny(method="DM", lam=0.5, beta=8, iterations=12, eval_every=6, checkpoint_every=3)
    whole = ex.run(config, tmp_path / "whole", data, device="cuda", compile=compile, progress=False)
    # bfloat16 where the GPU has it natively, float16 with a gradient scaler elsewhere (a T4).
    expected = "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp16"
    assert whole["precision"] == expected and whole["channels_last"]
    assert whole["hardware"] == torch.cuda.get_device_name()
    assert ex.run(config, tmp_path / "cut", data, device="cuda", compile=compile,
                  progress=False, stop_at=5) is None
    resumed = ex.run(config, tmp_path / "cut", data, device="cuda", compile=compile, progress=False)
    # cuDNN may pick nondeterministic kernels: equal up to rounding, not bitwise.
    np.testing.assert_allclose(resumed["history"]["train_loss"], whole["history"]["train_loss"], rtol=0.05)


def test_smoke_config_keeps_the_method_and_shrinks_the_schedule():
    config = tables.table1_config("DM (lambda = 0.5)", {"key": "a0.3", "noise": "asymmetric", "rate": 0.3})
    smoke = ex.smoke_config(config, iterations=6)
    assert (smoke.method, smoke.lam, smoke.beta, smoke.noise, smoke.noise_rate, smoke.seed) == \
        (config.method, config.lam, config.beta, config.noise, config.noise_rate, config.seed)
    assert (smoke.model, smoke.iterations, smoke.batch_size) == ("resnet8", 6, 16)
    assert smoke.lr_milestones == (3, 4)  # 15k/30k and 22k/30k of 6
    assert smoke.eval_every == smoke.checkpoint_every == 3


def test_bernoulli_noise_option(data):
    exact = ex._noisy_labels(tiny(noise_rate=0.3), data.y_train)
    bern = ex._noisy_labels(tiny(noise_rate=0.3, noise_exact=False), data.y_train)
    assert np.mean(exact != data.y_train) == 0.3
    assert not np.array_equal(exact, bern) and abs(np.mean(bern != data.y_train) - 0.3) < 0.1
    assert tiny(noise_exact=False).name() != tiny().name()


def test_select_on_validation_never_looks_at_the_test_set(data, tmp_path):
    configs = [tiny(method="DM", lam=0.5, beta=b, iterations=6, noise_rate=0.2) for b in (0.0, 4.0, 8.0)]
    best, results = ex.select_on_validation(configs, tmp_path / "a", data, progress=False, eval_train=False)
    scores = [r["final_val_accuracy"] for r in results]
    assert best == configs[scores.index(max(scores))] and best.val_fraction == 0.0
    assert all(r["config"]["val_fraction"] == 0.2 and r["val_size"] == 80 for r in results)
    scrambled = data._replace(y_test=np.random.default_rng(0).permutation(data.y_test),
                              x_test=data.x_test[::-1].copy())
    again, _ = ex.select_on_validation(configs, tmp_path / "b", scrambled, progress=False, eval_train=False)
    assert again == best
    with pytest.raises(ValueError, match="empty"):
        ex.select_on_validation([], tmp_path, data)


def test_shortcut_option_reaches_the_model(data, tmp_path):
    result = ex.run(tiny(shortcut="B", iterations=2, eval_every=2), tmp_path, data, progress=False)
    state = torch.load(tmp_path / result["name"] / "model.pt")
    assert any("projection" in key for key in state)
    with pytest.raises(ValueError, match="shortcut must be"):
        tiny(shortcut="b")


def test_notebook_setup_smoke_mode(tmp_path):
    threads = torch.get_num_threads()
    try:
        setup = ex.notebook_setup(ex.PAPER_CIFAR100, "t", "smoke", overrides={"weight_decay": 5e-4},
                                  smoke_iterations=6, eval_train=False)
    finally:
        torch.set_num_threads(threads)
    assert setup.mode == "smoke" and setup.data.name == "cifar100" and len(setup.data.y_train) == 500
    assert setup.base == ex.smoke_config(dataclasses.replace(ex.PAPER_CIFAR100, weight_decay=5e-4), 6)
    assert setup.run_options == dict(device="cpu", compile=False, progress=False, eval_train=False)
    assert setup.runs_dir.name == "runs" and "dm-smoke-" in str(setup.runs_dir)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error")
def test_notebook_setup_full_mode_needs_a_gpu():
    with pytest.raises(RuntimeError, match="no CUDA GPU.*DM_MODE=smoke"):
        ex.notebook_setup(ex.PAPER_CIFAR100, "t", "full")
    with pytest.raises(ValueError, match="'fast'"):
        ex.notebook_setup(ex.PAPER_CIFAR100, "t", "fast")


@pytest.mark.parametrize("use_drive", [True, False])
def test_notebook_setup_full_mode_keeps_runs_and_data_on_drive_on_colab(monkeypatch, tmp_path, use_drive):
    """On Colab with use_drive, the runs go to MyDrive/dm-runs/<name> and the
    data set to MyDrive/dm-data, so a new machine downloads nothing again."""
    drive = tmp_path / "drive" / "MyDrive"
    monkeypatch.setattr(notebook, "drive_folder", lambda name: drive / "dm-runs" / name)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    loaded = []
    monkeypatch.setattr(cifar, "load", lambda name, root, download=False: loaded.append(root) or "data")
    setup = ex.notebook_setup(ex.PAPER_CIFAR100, "cifar100_table1", "full", use_drive=use_drive)
    if use_drive:
        assert setup.runs_dir == drive / "dm-runs" / "cifar100_table1" and loaded == [drive / "dm-data"]
    else:
        assert setup.runs_dir == Path("runs/cifar100_table1") and loaded == [None]
    ex.notebook_setup(ex.PAPER_CIFAR100, "t", "full", data_root=tmp_path / "mine")
    assert loaded[-1] == tmp_path / "mine"  # a DATA_ROOT given is kept


def test_banner_and_description(data, tmp_path):
    assert "NOT a reproduction" in banners.mode_banner("smoke", 3, "CIFAR-10")
    assert banners.mode_banner("full", 3, "CIFAR-10") == "MODE: full. 3 runs with the paper's settings on the real CIFAR-10."
    result = ex.run(tiny(iterations=2, eval_every=2), tmp_path, data, progress=False)
    text = banners.describe_runs([result], result["mode"])
    assert "hardware: CPU" in text and "over 1 runs" in text
    with pytest.raises(ValueError, match="another mode"):
        banners.describe_runs([result], "full" if result["mode"] == "smoke" else "smoke")


def test_fabricated_data_always_makes_a_smoke_result(data, tmp_path, monkeypatch):
    monkeypatch.setenv("DM_MODE", "full")
    assert data.fabricated
    result = ex.run(tiny(iterations=2, eval_every=2), tmp_path, data, progress=False)
    assert result["mode"] == "smoke" and result["fabricated_data"]
    from dm.report import paper
    assert not paper.is_full(result)


def test_run_all_runs_loads_and_reports(data, tmp_path, capsys):
    configs = {("a", 1): tiny(iterations=2, eval_every=2), ("b", 2): tiny(iterations=2, eval_every=2, seed=5)}
    first = ex.run_all(configs, tmp_path, data, progress=False)
    out = capsys.readouterr().out
    assert "0 of 2 runs already stored" in out and "a 1" in out and "final test accuracy" in out
    again = ex.run_all(configs, tmp_path, data, report=False, progress=False)
    assert again == first and "2 of 2 runs already stored" in capsys.readouterr().out


def test_noise_seed_alone_decides_the_noisy_labels(data, tmp_path):
    """Two training seeds with one noise_seed train on one corruption (and
    one split); the digest in result.json says so; another noise_seed gives
    another corruption."""
    a, b = tiny(seed=1, val_fraction=0.2), tiny(seed=2, val_fraction=0.2)
    la, lb = ex.training_labels(a, data), ex.training_labels(b, data)
    for x, y in zip(la, lb):
        np.testing.assert_array_equal(x, y)
    other = ex.training_labels(tiny(seed=1, noise_seed=5, val_fraction=0.2), data)
    assert not np.array_equal(other[3], la[3])
    ra = ex.run(dataclasses.replace(a, iterations=2, eval_every=2), tmp_path, data, progress=False,
                eval_train=False)
    rb = ex.run(dataclasses.replace(b, iterations=2, eval_every=2), tmp_path, data, progress=False,
                eval_train=False)
    assert ra["noisy_labels_sha256"] == rb["noisy_labels_sha256"] == ex.labels_sha256(la[3])
    assert ra["history"]["train_loss"] != rb["history"]["train_loss"]  # training randomness differs
    with pytest.raises(ValueError, match="noise_seed must be a non-negative integer, got -1"):
        tiny(noise_seed=-1)


def test_presets_differ_only_where_the_authors_files_say(tmp_path):
    diff = ex.preset_differences("cifar100")
    fields = {row[0] for row in diff}
    assert fields == {"weight_decay", "sampler", "augment", "shortcut", "init", "batchnorm", "bias_lr_mult"}
    for field, _, _, source in diff:
        assert source and source.startswith("DerivativeManipulation_Code/"), field
    assert ex.AUTHORS_CIFAR100.weight_decay == 5e-4 and ex.AUTHORS_CIFAR100.augment == "authors"
    # CIFAR-10: 32 classes a batch cannot come from 10, so its batches are uniform.
    assert ex.AUTHORS_CIFAR10_RESNET56.sampler == "uniform"
    assert ex.AUTHORS_CIFAR10_RESNET56.model == "resnet56"
    assert "sampler" not in {row[0] for row in ex.preset_differences("cifar10")}
    assert ex.preset("authors", "cifar10") is ex.AUTHORS_CIFAR10_RESNET56
    with pytest.raises(ValueError, match="'caffe'"):
        ex.preset("caffe")
    assert "| `augment` | `'pad4'` | `'authors'` |" in paper.preset_differences_markdown()


def test_authors_preset_runs_resumes_and_doubles_the_bias_rate(tmp_path):
    """The authors' preset end to end on fabricated CIFAR-100 (their sampler
    needs 32 classes): exact resume, and the last layer's bias trained at
    twice the learning rate (Caffe's lr_mult 2)."""
    root = tmp_path / "c100"
    data = cifar.load("cifar100", root, checksums=cifar.fabricate(root, "cifar100", 400, 100))
    config = dataclasses.replace(ex.AUTHORS_CIFAR100, model="resnet8", iterations=4, eval_every=2,
                                 checkpoint_every=1, lr_milestones=(3,), method="DM", lam=0.5, beta=8,
                                 noise_rate=0.4)
    whole = ex.run(config, tmp_path / "whole", data, progress=False, eval_train=False)
    assert ex.run(config, tmp_path / "cut", data, progress=False, eval_train=False, stop_at=1) is None
    state = torch.load(tmp_path / "cut" / config.name() / "checkpoint.pt", weights_only=False)
    groups = state["optimizer"]["param_groups"]
    assert groups[1]["lr"] == pytest.approx(2 * groups[0]["lr"]) and len(groups[1]["params"]) == 1
    resumed = ex.run(config, tmp_path / "cut", data, progress=False, eval_train=False)
    assert resumed["history"] == whole["history"]
    assert whole["config"]["augment"] == "authors"


def test_precision_choice_and_the_float16_path_on_the_cpu(data, tmp_path):
    """fp16 autocast with a gradient scaler, as on a T4, run on the CPU
    (where autocast supports float16 too): it trains, records its precision,
    and resumes exactly, the scaler's state included."""
    assert step.resolve_precision(None, torch.device("cpu")) == "fp32"
    assert step.resolve_precision("fp16", torch.device("cpu")) == "fp16"
    with pytest.raises(ValueError, match="'fp8'"):
        step.resolve_precision("fp8", torch.device("cpu"))
    config = tiny(method="DM", lam=0.5, beta=8, iterations=4, eval_every=2, checkpoint_every=1,
                  batch_size=16)
    whole = ex.run(config, tmp_path / "whole", data, precision="fp16", progress=False, eval_train=False)
    assert whole["precision"] == "fp16" and not whole["channels_last"]
    assert all(np.isfinite(whole["history"]["train_loss"]))
    assert ex.run(config, tmp_path / "cut", data, precision="fp16", progress=False, eval_train=False,
                  stop_at=3) is None
    state = torch.load(tmp_path / "cut" / config.name() / "checkpoint.pt", weights_only=False)
    assert "scale" in state["extra"]["grad_scaler"]
    resumed = ex.run(config, tmp_path / "cut", data, precision="fp16", progress=False, eval_train=False)
    assert resumed["history"] == whole["history"]
    fp32 = ex.run(config, tmp_path / "fp32", data, precision="fp32", progress=False, eval_train=False)
    assert fp32["precision"] == "fp32" and fp32["history"]["train_loss"] != whole["history"]["train_loss"]


def test_estimate_and_the_first_evaluation_report(data, tmp_path, capsys):
    config = tiny(iterations=40, eval_every=20)
    seconds = ex.estimate_seconds(config, data, device="cpu", steps=2, eval_train=False)
    assert seconds > 0
    message = ex.estimate_selection({"a": config, "b": tiny(iterations=40, eval_every=20, seed=9)},
                                    tmp_path / "sel", data, pack=False, steps=2, device="cpu", eval_train=False)
    assert message.startswith("2 of 2 runs to train; one takes about ") and "in all" in message
    message = ex.estimate_selection({"a": config, "b": tiny(iterations=40, eval_every=20, method="MAE"),
                                     "c": tiny(iterations=40, eval_every=20, seed=9)},
                                    tmp_path / "sel", data, steps=2, device="cpu", eval_train=False)
    assert message.startswith("3 of 3 runs to train; in 2 packs of 2, 1; a pack of 2 takes about ")
    ex.run(tiny(iterations=4, eval_every=2), tmp_path, data, progress=True, eval_train=False)
    err = capsys.readouterr()
    assert "s per 1000 iterations measured here (CPU" in err.out + err.err
