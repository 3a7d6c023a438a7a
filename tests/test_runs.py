"""dm.training.runs: the pieces every experiment shares, on a toy problem (the CIFAR and
IMDB trainers are tested through them in test_experiments and test_sentiment)."""

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch

from dm import hardware
from dm.data import cache
from dm.data import samplers
from dm.experiments import notebook
from dm.training import loop
from dm.training import runs
from dm.training.step import Step


@dataclasses.dataclass(frozen=True)
class Toy:
    seed: int = 0
    iterations: int = 12

    def name(self):
        return f"toy_seed{self.seed}"


def toy_run(config, out, stop_at=None, loss_value=None, check_finite=True):
    torch.manual_seed(config.seed)
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = torch.randn(64, 3, generator=torch.Generator().manual_seed(1))
    y = x.sum(1, keepdim=True)

    def batch(it):
        g = torch.Generator().manual_seed(samplers.seed_at(config.seed, it))
        idx = torch.randint(0, 64, (8,), generator=g)
        return x[idx], y[idx]

    def loss(prediction, target):
        value = ((prediction - target) ** 2).mean()
        return value if loss_value is None else value * loss_value

    @torch.no_grad()
    def evaluate(done):
        return [{"test_accuracy": float(((model(x) - y) ** 2).mean())}]

    out.mkdir(parents=True, exist_ok=True)
    trained = loop.fit(Step(model, optimizer, loss), [loop.Member(config.name(), dataclasses.asdict(config), out)],
                       batch=batch, lr=lambda it: 0.1 / (1 + it), evaluate=evaluate, iterations=config.iterations,
                       eval_every=4, checkpoint_every=3, measures=("test_accuracy", "unused"), stop_at=stop_at,
                       check_finite=check_finite)
    return (None if trained is None else trained[0]), model


def test_seed_at_separates_seeds_and_positions():
    assert samplers.seed_at(123, 0) != samplers.seed_at(123, 1) != samplers.seed_at(124, 0)
    assert len({samplers.seed_at(s, p) for s in range(5) for p in range(1000)}) == 5000


def test_train_records_history_and_resumes_exactly(tmp_path):
    config = Toy()
    whole, model = toy_run(config, tmp_path / "a")
    h = whole.history
    assert h["iteration"] == [4, 8, 12] and h["lr"] == [0.1 / 4, 0.1 / 8, 0.1 / 12]
    assert len(h["test_accuracy"]) == 3 and h["unused"] == []
    assert toy_run(config, tmp_path / "b", stop_at=5)[0] is None
    resumed, model_b = toy_run(config, tmp_path / "b")
    assert resumed.history == h
    assert [s["start"] for s in resumed.segments] == [0, 5]
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), model_b.state_dict().values()))


def test_a_checkpoint_of_another_config_is_refused(tmp_path):
    toy_run(Toy(), tmp_path, stop_at=3)
    with pytest.raises(ValueError, match="different configuration"):
        toy_run(Toy(iterations=13), tmp_path)


def test_a_non_finite_loss_stops_the_run(tmp_path):
    with pytest.raises(FloatingPointError, match="toy_seed0: training loss is (inf|nan) at iteration 4"):
        toy_run(Toy(), tmp_path, loss_value=float("inf"))


def test_a_study_of_divergence_records_the_non_finite_loss(tmp_path):
    trained, _ = toy_run(Toy(), tmp_path / "kept", loss_value=float("inf"), check_finite=False)
    assert trained.history["iteration"] == [4, 8, 12]
    assert all(not math.isfinite(value) for value in trained.history["train_loss"])


def test_finish_and_load_result(tmp_path):
    config = Toy()
    out = tmp_path / config.name()
    assert toy_run(config, out, stop_at=3)[0] is None
    assert (out / "checkpoint.pt").exists()
    _, model = toy_run(config, out)
    result = runs.finish(out, {"config": dataclasses.asdict(config), "value": (1, 2)}, model)
    assert result["value"] == [1, 2]  # as JSON gives it back
    assert not (out / "checkpoint.pt").exists() and (out / "model.pt").exists()
    assert runs.load_result(config, tmp_path) == result
    assert runs.load_result(Toy(seed=1), tmp_path) is None
    (out / "result.json").write_text(json.dumps({**result, "config": {"seed": 0, "iterations": 99}}))
    with pytest.raises(ValueError, match="different configuration"):
        runs.load_result(config, tmp_path)


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "f.txt"
    cache.atomic_write(path, lambda p: p.write_text("old"))

    def broken(p):
        p.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        cache.atomic_write(path, broken)
    assert path.read_text() == "old"


def test_mode_switch(monkeypatch):
    monkeypatch.delenv("DM_MODE", raising=False)
    assert notebook.mode() == "full"
    monkeypatch.setenv("DM_MODE", "smoke")
    assert notebook.mode() == "smoke"
    monkeypatch.setenv("DM_MODE", "quick")
    with pytest.raises(ValueError, match="DM_MODE must be 'full' or 'smoke', got 'quick'"):
        notebook.mode()


def test_map_processes_keeps_the_order_of_the_calls():
    from dm.stats import mean_se

    calls = [dict(values=[1.0, 2.0, 3.0]), dict(values=[4.0, 6.0]), dict(values=[0.5, 0.5, 2.0])]
    assert runs.map_processes(mean_se, calls, workers=2) == [mean_se(**c) for c in calls]
    assert runs.map_processes(mean_se, calls, workers=1) == [mean_se(**c) for c in calls]
    with pytest.raises(ValueError, match="workers must be a positive integer, got 0"):
        runs.map_processes(mean_se, calls, workers=0)


def test_source_digest_names_the_code(tmp_path):
    import shutil

    import dm

    package = tmp_path / "dm"
    shutil.copytree(Path(dm.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__"))
    assert runs.source_sha256(package) == runs.source_sha256()
    (package / "__pycache__").mkdir(exist_ok=True)
    (package / "__pycache__" / "x.pyc").write_bytes(b"cache")
    assert runs.source_sha256(package) == runs.source_sha256()  # caches do not count
    (package / "weights.py").write_text((package / "weights.py").read_text() + "\n")
    assert runs.source_sha256(package) != runs.source_sha256()
    recorded = runs.provenance(torch.device("cpu"))
    assert recorded["dm_version"] == dm.__version__ and recorded["dm_source_sha256"] == runs.source_sha256()
    assert recorded["hardware"] == hardware.hardware() and recorded["torch"] == torch.__version__


def test_data_folder_and_md5(tmp_path, monkeypatch):
    import hashlib

    monkeypatch.setenv("DM_DATA", str(tmp_path / "cache"))
    assert cache.default_root() == tmp_path / "cache"
    monkeypatch.delenv("DM_DATA")
    assert cache.default_root() == Path.home() / ".cache" / "dm"
    path = tmp_path / "blob"
    path.write_bytes(bytes(range(256)) * 5000)  # more than one 1 MiB block
    assert cache.md5(path) == hashlib.md5(path.read_bytes()).hexdigest()
    assert notebook.drive_folder("table1") is None  # not on Colab: no Drive


def test_collect_results_copies_full_results_into_the_results_layout(tmp_path, capsys):
    runs_dir = tmp_path / "drive" / "cifar100_table1"
    for name, mode in (("run_a", "full"), ("run_b", "full"), ("run_c", "smoke")):
        (runs_dir / name).mkdir(parents=True)
        (runs_dir / name / "result.json").write_text(json.dumps({"mode": mode, "config": {"n": name}}))
        (runs_dir / name / "model.pt").write_bytes(b"weights")
    (runs_dir / "unfinished").mkdir()
    (runs_dir / "unfinished" / "checkpoint.pt").write_bytes(b"x")
    written = runs.collect_results(runs_dir, tmp_path / "results")
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == [
        "results/cifar100_table1/run_a/result.json", "results/cifar100_table1/run_b/result.json"]
    assert written[0].read_bytes() == (runs_dir / "run_a" / "result.json").read_bytes()
    assert not list((tmp_path / "results").rglob("*.pt"))
    assert "skipped (mode 'smoke'" in capsys.readouterr().out
    from dm.report.paper import load_results
    assert {r["config"]["n"] for r in load_results(tmp_path / "results")} == {"run_a", "run_b"}


def test_collect_results_command_line(tmp_path):
    import subprocess
    import sys

    runs_dir = tmp_path / "imdb"
    (runs_dir / "r").mkdir(parents=True)
    (runs_dir / "r" / "result.json").write_text(json.dumps({"mode": "smoke", "config": {}}))
    done = subprocess.run([sys.executable, "-m", "dm", "collect-results", str(runs_dir),
                           "--results", str(tmp_path / "out"), "--all"],
                          capture_output=True, text=True, check=True)
    assert (tmp_path / "out" / "imdb" / "r" / "result.json").is_file(), done.stdout
    with pytest.raises(subprocess.CalledProcessError):
        subprocess.run([sys.executable, "-m", "dm", "collect-results", str(tmp_path / "none")],
                       capture_output=True, check=True)
