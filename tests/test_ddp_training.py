"""Data-parallel CIFAR training (``dm.experiments.cifar.run(..., ddp=True)``, the
``--ddp`` of ``python -m dm cifar`` under torchrun): two CPU processes
(gloo), each on half of every batch, train the run one process trains on
the whole batch.

What makes them the same run: every process draws and augments the whole
batch (seeded by position) and takes its half; batch norm takes its
statistics over both halves (`dm.models.resnet.BatchNorm2d` across processes); DM
and DN normalise over both (``distributed=True``); DDP averages the
gradients. Tolerances as in tests/test_packing.py (tests/same_run.py;
float32, the halves are summed in another order than the whole): weights and
statistics within 2e-5 absolute, each training loss within 1e-5 relative,
accuracies within one test image in 100. Without the batch norm across processes the runs differ by far
more (checked below), so the comparison can fail.
"""

import json
import os
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import same_run
from dm.data import cifar
from dm.experiments import cifar as ex
from dm.models import resnet
from dm.training import step
from same_run import WEIGHT_ATOL, assert_same_run, weights

WORLD = 2


def tiny(**changes):
    """same_run's run, with DM's loss unless changed."""
    return same_run.tiny(**{"method": "DM", "lam": 0.5, "beta": 8, **changes})


# A pack with DN (a loss that normalises over the batch), the authors' batch
# norm (CaffeBatchNorm2d) and projection shortcuts (batch norm on them too).
PACK = [tiny(method="CCE", batchnorm="caffe", shortcut="B"),
        tiny(method="GCE-DN", gce_q=0.7, batchnorm="caffe", shortcut="B")]


def load(root):
    return cifar.load("cifar10", root, checksums=json.loads((root / "checksums.json").read_text()))


def worker(rank, init_file, root, out):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    torch.set_num_threads(1)
    data = load(root)
    options = dict(device="cpu", progress=False, ddp=True)
    seen = {
        "whole": ex.run(tiny(), out / "ddp", data, **options),
        "stopped": ex.run(tiny(), out / "cut", data, stop_at=2, **options),
        "resumed": ex.run(tiny(), out / "cut", data, **options),
        "pack": ex.run_packed(PACK, out / "ddp-pack", data, **options),
    }
    # Per-process batch norm (each half normalised on its own), for the
    # check that the comparison can fail.
    original = resnet.batch_statistics_across_processes
    ex.batch_statistics_across_processes = lambda model: model
    try:
        seen["local_bn"] = ex.run(tiny(), out / "local-bn", data, **options)
    finally:
        ex.batch_statistics_across_processes = original
    (out / f"rank{rank}.json").write_text(json.dumps(seen))
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The DDP runs (in two spawned processes) and the single-process ones."""
    out = tmp_path_factory.mktemp("ddp")
    root = out / "data"
    checksums = cifar.fabricate(root, "cifar10", 400, 100, seed=0)
    (root / "checksums.json").write_text(json.dumps(checksums))
    mp.spawn(worker, args=(str(out / "init"), root, out), nprocs=WORLD, join=True)
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in range(WORLD)]
    data = load(root)
    single = {"whole": ex.run(tiny(), out / "single", data, progress=False),
              "pack": ex.run_packed(PACK, out / "single-pack", data, progress=False)}
    return out, ranks, single


def test_two_processes_train_the_run_one_process_trains(runs):
    out, ranks, single = runs
    ddp = ranks[0]["whole"]
    assert_same_run(ddp, single["whole"], out / "ddp", out / "single")
    assert ddp["world_size"] == 2 and single["whole"]["world_size"] == 1
    assert [s.get("world_size") for s in ddp["segments"]] == [2]
    # Two devices for the run's time: its device share counts both.
    assert ddp["device_seconds"] == pytest.approx(2 * ddp["wall_seconds"])


TIMES = ("wall_seconds", "overhead_seconds", "device_seconds", "train_images_per_second")


def untimed(result):
    """A result without its times, which each process measures itself."""
    return {key: value for key, value in result.items() if key not in TIMES}


def test_every_process_returns_the_result_process_zero_wrote(runs):
    out, ranks, _ = runs
    for key in ("whole", "resumed"):
        assert untimed(ranks[1][key]) == untimed(ranks[0][key]), key
    assert [untimed(r) for r in ranks[1]["pack"]] == [untimed(r) for r in ranks[0]["pack"]]
    written = json.loads((out / "ddp" / ranks[0]["whole"]["name"] / "result.json").read_text())
    assert written == ranks[0]["whole"]


def test_a_data_parallel_run_resumes(runs):
    out, ranks, single = runs
    assert ranks[0]["stopped"] is None and ranks[1]["stopped"] is None
    resumed = ranks[0]["resumed"]
    assert [s["start"] for s in resumed["segments"]] == [0, 2]
    assert_same_run(resumed, single["whole"], out / "cut", out / "single")
    wa, wb = weights(out / "cut", resumed), weights(out / "ddp", ranks[0]["whole"])
    assert all(torch.equal(wa[k], wb[k]) for k in wa)  # the same processes, bit for bit


def test_a_pack_with_dn_and_caffe_batch_norm_trains_data_parallel(runs):
    out, ranks, single = runs
    for a, b in zip(ranks[0]["pack"], single["pack"]):
        assert a["pack_size"] == 2 and a["world_size"] == 2
        assert_same_run(a, b, out / "ddp-pack", out / "single-pack")


def test_without_batch_norm_across_processes_the_runs_differ(runs):
    """The comparison can fail: normalising each half on its own is another run."""
    out, ranks, single = runs
    local = ranks[0]["local_bn"]
    with pytest.raises(AssertionError):
        assert_same_run(local, single["whole"], out / "local-bn", out / "single")
    wa, wb = weights(out / "local-bn", local), weights(out / "single", single["whole"])
    assert max(float((wa[k].double() - wb[k].double()).abs().max()) for k in wa) > 100 * WEIGHT_ATOL


def test_ddp_needs_a_process_group_and_a_batch_that_divides(tmp_path, monkeypatch):
    with pytest.raises(RuntimeError, match="ddp=True trains over torch.distributed's default process group"):
        step.process_group(True, tiny().batch_size)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'init'}", rank=0, world_size=1)
    try:
        assert step.process_group(True, tiny(batch_size=30).batch_size) == (0, 1)
        monkeypatch.setattr(dist, "get_world_size", lambda: 4)
        with pytest.raises(ValueError, match="batch_size 30 does not divide by the 4 processes"):
            step.process_group(True, tiny(batch_size=30).batch_size)
    finally:
        dist.destroy_process_group()
    assert step.process_group(False, tiny().batch_size) == (0, 1)


def test_batch_norm_across_processes_needs_a_process_group():
    bn = resnet.BatchNorm2d(3)
    bn.across_processes = True
    with pytest.raises(RuntimeError, match="default process group"):
        bn(torch.randn(4, 3, 2, 2))
    bn.eval()  # evaluation uses the running estimates: no process group needed
    bn(torch.randn(4, 3, 2, 2))
    with pytest.raises(TypeError, match="1 is a BatchNorm1d"):
        resnet.batch_statistics_across_processes(torch.nn.Sequential(resnet.BatchNorm2d(3), torch.nn.BatchNorm1d(3)))


def test_torchrun_ddp_command_line(tmp_path):
    """The README's recipe, on two CPU processes: torchrun, --ddp, a
    fabricated data set; one summary printed, one result written."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "dm", "cifar", "--ddp", "--fabricated", "--device", "cpu", "--no-progress",
               "--dataset", "cifar10", "--model", "resnet8", "--iterations", "2", "--batch-size", "16",
               "--eval-every", "2", "--checkpoint-every", "2", "--runs-dir", str(tmp_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(done.stdout[done.stdout.index("{"):done.stdout.rindex("}") + 1])
    assert summary["world_size"] == 2
    results = list(tmp_path.glob("*/result.json"))
    assert len(results) == 1 and json.loads(results[0].read_text())["world_size"] == 2
