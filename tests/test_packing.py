"""Packed training (dm.experiments.cifar.run_packed, dm.models.resnet.PackedResNet): K runs
that differ only in their loss, trained as one model on the same batches, are
the K runs one would train separately."""

import dataclasses

import pytest
import torch

from dm import losses, packed
from dm.experiments import cifar as ex
from dm.models import resnet
from dm.training import runs
from same_run import assert_same_run, fabricated_cifar10, three, tiny, weights


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return fabricated_cifar10(tmp_path_factory.mktemp("cifar10"))


# The float64 test below shows the scheme itself exact; the others compare
# float32 runs to the tolerances of same_run.


@pytest.mark.parametrize("shortcut, batchnorm", [("A", "torch"), ("B", "caffe")])
def test_packed_resnet_is_its_members_exactly_in_float64(shortcut, batchnorm):
    """The scheme is exact: in float64, 6 SGD steps of a pack of two (CCE and
    DM) give each member's weights and statistics to 1e-12."""
    torch.manual_seed(0)
    members = [resnet.resnet("resnet8", 10, shortcut, "msra", batchnorm).double() for _ in range(2)]
    pack = resnet.PackedResNet(members).double()
    loss_fns = [losses.CCE(check_inputs=False), losses.DMLoss(0.5, 8.0, check_inputs=False)]
    stacked = packed.Stacked(loss_fns)
    optimizers = [torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4) for m in members]
    packed_optimizer = torch.optim.SGD(pack.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    generator = torch.Generator().manual_seed(1)
    for _ in range(6):
        x = torch.randn(16, 3, 32, 32, generator=generator, dtype=torch.float64)
        y = torch.randint(0, 10, (16,), generator=generator)
        for model, optimizer, loss_fn in zip(members, optimizers, loss_fns):
            optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            optimizer.step()
        packed_optimizer.zero_grad()
        stacked(pack(x), y).sum().backward()
        packed_optimizer.step()
    for part, model in zip(packed.split_state(pack.state_dict(), 2), members):
        for key, value in model.state_dict().items():
            assert torch.allclose(part[key].double(), value.double(), rtol=0, atol=1e-12), key
    pack.eval(), [m.eval() for m in members]
    x = torch.randn(4, 3, 32, 32, dtype=torch.float64)
    assert torch.allclose(pack(x), torch.stack([m(x) for m in members]), rtol=0, atol=1e-12)


def test_packed_runs_are_the_separate_runs_also_after_a_resume(data, tmp_path):
    configs = three()
    separate = [ex.run(c, tmp_path / "separate", data, progress=False) for c in configs]
    together = ex.run_packed(configs, tmp_path / "packed", data, progress=False)
    for a, b in zip(separate, together):
        assert_same_run(a, b, tmp_path / "separate", tmp_path / "packed")
        assert b["pack_size"] == 3 and a["pack_size"] == 1
        assert b["device_seconds"] == pytest.approx(b["wall_seconds"] / 3)
        assert [s["pack_size"] for s in b["segments"]] == [3]
        assert b["dm_source_sha256"] == a["dm_source_sha256"] == runs.source_sha256()
    # Each member's weights load into the plain network of its configuration.
    model = resnet.resnet("resnet8", 10)
    model.load_state_dict(weights(tmp_path / "packed", together[1]))

    # Interrupted after 3 iterations and resumed: the same runs.
    assert ex.run_packed(configs, tmp_path / "cut", data, progress=False, stop_at=3) == [None] * 3
    for c in configs:  # each member keeps a checkpoint of its own, where `run` keeps one
        assert (tmp_path / "cut" / c.name() / "checkpoint.pt").exists()
    resumed = ex.run_packed(configs, tmp_path / "cut", data, progress=False)
    for a, b, c in zip(together, resumed, separate):  # the same code on the same CPU: bit for bit
        assert a["history"] == b["history"] and [s["start"] for s in b["segments"]] == [0, 3]
        wa, wb = weights(tmp_path / "packed", a), weights(tmp_path / "cut", b)
        assert all(torch.equal(wa[k], wb[k]) for k in wa)
        assert_same_run(c, b, tmp_path / "separate", tmp_path / "cut")


def test_a_pack_member_resumes_alone_and_packs_form_by_iteration(data, tmp_path):
    configs = three()
    ex.run_packed(configs, tmp_path, data, progress=False, stop_at=1)
    ex.run(configs[0], tmp_path, data, progress=False, stop_at=2)       # member 0 goes on alone ...
    finished = ex.run(configs[1], tmp_path, data, progress=False)       # ... member 1 finishes alone
    results = ex.run_packed(configs, tmp_path, data, progress=False)    # 0 from 2, 2 from 1, 1 stored
    assert results[1] == finished
    assert [s["start"] for s in results[0]["segments"]] == [0, 1, 2]
    assert [s["pack_size"] for s in results[0]["segments"]] == [3, 1, 1]
    assert [s["start"] for s in results[2]["segments"]] == [0, 1]
    separate = [ex.run(c, tmp_path / "separate", data, progress=False) for c in configs]
    for a, b in zip(separate, results):
        assert_same_run(a, b, tmp_path / "separate", tmp_path)


@pytest.mark.parametrize("field, value", [("lr", 0.1), ("seed", 4), ("noise_rate", 0.2), ("model", "resnet20")])
def test_configurations_that_cannot_share_a_pack_are_refused(data, tmp_path, field, value):
    a = tiny()
    b = dataclasses.replace(a, method="DM", **{field: value})
    with pytest.raises(ValueError, match=f"their {field} differs"):
        ex.run_packed([a, b], tmp_path, data, progress=False)
    assert not any(tmp_path.iterdir())  # refused before anything is written
    assert ex.pack_difference(a, dataclasses.replace(a, method="DM", lam=1, beta=3, gce_q=0.5)) is None


def test_a_configuration_given_twice_is_refused(data, tmp_path):
    with pytest.raises(ValueError, match="given twice"):
        ex.run_packed([tiny(), tiny(), tiny(method="MAE")], tmp_path, data, progress=False)
    with pytest.raises(ValueError, match="max_pack must be a positive integer, got 0"):
        ex.run_packed([tiny()], tmp_path, data, progress=False, max_pack=0)


def test_max_pack_splits_a_pack(data, tmp_path):
    results = ex.run_packed(three(), tmp_path, data, progress=False, max_pack=2)
    assert [r["pack_size"] for r in results] == [2, 2, 1]


def test_table1_packs_by_column():
    from dm.experiments import tables

    configs = {(row, col["key"]): tables.table1_config(row, col, ex.PAPER_CIFAR100)
               for row in tables.table1_rows() for col in tables.table1_columns()}
    groups = ex.packs(configs)
    assert [len(g) for g in groups] == [12] * 7
    for group in groups:
        assert len({(c.noise, c.noise_rate) for c in group}) == 1
        assert len({c.name() for c in group}) == 12
