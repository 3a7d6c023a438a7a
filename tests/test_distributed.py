"""DMLoss and DN with ``distributed=True`` under DistributedDataParallel: two
CPU processes (gloo), each with half of a fixed global batch, get the
parameter gradients one process gets on the whole batch; ``distributed=False``
normalises each half on its own and so gets a different gradient.

The two processes are spawned once per module (`ddp_results`), run every case
and write what they saw to files; the tests compare those with single-process
references computed here. Tolerance in float32: ``rtol=1e-6`` with ``atol``
1e-6 times the largest entry of each parameter's gradient (float64: 1e-12).
"""

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

import dm
from dm.packed import Stacked

WORLD, B, C = 2, 16, 5
RANK0_ZERO = [0.0, 0.0, 0.0, 1.0, 2.0]  # every class of rank 0's half has weight 0
CASES = {
    "DM lam=0.5 beta=8": lambda d: dm.DMLoss(0.5, 8.0, distributed=d),
    "DM lam=0.5 beta=8 eps=0": lambda d: dm.DMLoss(0.5, 8.0, eps=0.0, distributed=d),
    "DM lam=0 beta=-0.52": lambda d: dm.DMLoss(0.0, -0.52, distributed=d),
    "DM lam=1 beta=40 eps=0": lambda d: dm.DMLoss(1.0, 40.0, eps=0.0, distributed=d),
    "DM lam=0 beta=400 (exp overflows float32)": lambda d: dm.DMLoss(0.0, 400.0, distributed=d),
    "DM lam=2 beta=24 class weight": lambda d: dm.DMLoss(2.0, 24.0, weight=[1.0, 2.0, 0.5, 3.0, 0.0], distributed=d),
    "DM class weight 0 on all of rank 0": lambda d: dm.DMLoss(0.5, 8.0, weight=RANK0_ZERO, distributed=d),
    "DM reduction=none": lambda d: dm.DMLoss(0.5, 8.0, reduction="none", distributed=d),
    "DN(CCE)": lambda d: dm.DN(dm.CCE(), distributed=d),
    "DN(GCE(0.7))": lambda d: dm.DN(dm.GCE(0.7), distributed=d),
    "DN(MAE)": lambda d: dm.DN(dm.MAE(), distributed=d),
    "DN(CCE) class weight": lambda d: dm.DN(dm.CCE(weight=[1.0, 2.0, 0.5, 3.0, 0.0]), distributed=d),
    "DN(GCE(0.7)) class weight 0 on all of rank 0": lambda d: dm.DN(dm.GCE(0.7, weight=RANK0_ZERO), distributed=d),
    "DN(CCE) reduction=none": lambda d: dm.DN(dm.CCE(), reduction="none", distributed=d),
}
FLOAT64 = ("DM lam=0.5 beta=8", "DN(GCE(0.7)) class weight 0 on all of rank 0")
RUNS = [(name, torch.float32) for name in CASES] + [(name, torch.float64) for name in FLOAT64]


def global_batch(dtype):
    """16 examples; the second half's inputs are 4 times larger, so its
    probabilities and DM weights differ from the first half's. Rank 0's
    labels lie in {0, 1, 2}, rank 1's in {2, 3, 4}."""
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(B, 6, generator=generator) * torch.tensor([1.0] * (B // 2) + [4.0] * (B // 2))[:, None]
    y = torch.cat([torch.randint(0, 3, (B // 2,), generator=generator),
                   torch.randint(2, 5, (B // 2,), generator=generator)])
    return x.to(dtype), y


def mlp(dtype):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, C)).to(dtype)


def gradients(model, loss, x, y):
    """The parameters' gradients and the value of ``loss(model(x), y)``
    (summed where the loss returns per-example terms)."""
    model.zero_grad()
    value = loss(model(x), y).sum()
    value.backward()
    return [p.grad.detach().clone() for p in model.parameters()], value.detach()


def worker(rank, init_file, out_dir):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    results = {}
    for name, dtype in RUNS:
        x, y = global_batch(dtype)
        half = slice(rank * B // WORLD, (rank + 1) * B // WORLD)
        ddp = nn.parallel.DistributedDataParallel(mlp(dtype))
        for distributed in (True, False):
            results[name, dtype, distributed] = gradients(ddp, CASES[name](distributed), x[half], y[half])
    # Stacked calls a distributed member on its own, so it all-reduces as it does alone
    x, y = global_batch(torch.float32)
    logits = mlp(torch.float32)(x[rank * B // WORLD:][:B // WORLD]).detach()
    members = [dm.DMLoss(0.5, 8.0, distributed=True), dm.DN(dm.GCE(0.7), distributed=True), dm.DMLoss(0.5, 8.0)]
    stacked = logits.expand(3, -1, -1).clone().requires_grad_(True)
    Stacked(members)(stacked, y[rank * B // WORLD:][:B // WORLD]).sum().backward()
    alone = []
    for member in members:
        z = logits.clone().requires_grad_(True)
        member(z, y[rank * B // WORLD:][:B // WORLD]).backward()
        alone.append(z.grad)
    results["stacked"] = stacked.grad, torch.stack(alone)
    torch.save(results, f"{out_dir}/rank{rank}.pt")
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp")
    mp.spawn(worker, args=(str(folder / "init"), str(folder)), nprocs=WORLD, join=True)
    return [torch.load(folder / f"rank{rank}.pt") for rank in range(WORLD)]


def assert_same_gradients(got, expected, dtype):
    rtol = 1e-6 if dtype == torch.float32 else 1e-12
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=rtol, atol=rtol * e.abs().max().item())


@pytest.mark.parametrize("name, dtype", RUNS, ids=[f"{n}, {str(d)[6:]}" for n, d in RUNS])
def test_ddp_with_distributed_gets_the_global_batch_gradient(ddp_results, name, dtype):
    x, y = global_batch(dtype)
    expected, value = gradients(mlp(dtype), CASES[name](False), x, y)
    for rank in range(WORLD):
        got, _ = ddp_results[rank][name, dtype, True]
        assert_same_gradients(got, expected, dtype)
    # each value is N times the process's share: their mean is the global batch's value
    mean = sum(ddp_results[rank][name, dtype, True][1] for rank in range(WORLD)) / WORLD
    torch.testing.assert_close(mean, value, rtol=1e-6 if dtype == torch.float32 else 1e-12, atol=0)


@pytest.mark.parametrize("name", CASES)
def test_ddp_without_distributed_normalises_each_slice(ddp_results, name):
    """distributed=False: the mean of the halves' own normalised gradients,
    which is not the global batch's."""
    x, y = global_batch(torch.float32)
    per_half = [gradients(mlp(torch.float32), CASES[name](False), x[h], y[h])[0]
                for h in (slice(0, B // 2), slice(B // 2, B))]
    expected = [(a + b) / 2 for a, b in zip(*per_half)]
    got, _ = ddp_results[0][name, torch.float32, False]
    assert_same_gradients(got, expected, torch.float32)
    whole, _ = gradients(mlp(torch.float32), CASES[name](False), x, y)
    difference = max(((g - w).abs().max() / w.abs().max()).item() for g, w in zip(got, whole))
    assert difference > 1e-3, difference  # a thousand times the tolerance


def test_stacked_calls_a_distributed_loss_on_its_own(ddp_results):
    stacked = Stacked([dm.DMLoss(0.5, 8.0, distributed=True), dm.DN(dm.CCE(), distributed=True),
                       dm.DMLoss(0.5, 8.0), dm.DMLoss(1.0, 16.0)])
    assert stacked.vectorised == [False, False, True] and stacked.groups == [[0], [1], [2, 3]]
    for rank in range(WORLD):
        got, alone = ddp_results[rank]["stacked"]
        torch.testing.assert_close(got, alone, rtol=1e-6, atol=1e-6 * alone.abs().max().item())
    with pytest.raises(RuntimeError, match="default process group"):
        stacked(torch.randn(4, 8, 5), torch.randint(0, 5, (8,)))


@pytest.mark.parametrize("loss", [dm.DMLoss(0.5, 8.0, distributed=True),
                                  dm.DN(dm.GCE(0.7, weight=[1.0, 2.0, 0.5]), distributed=True)], ids=repr)
def test_distributed_without_a_process_group_is_an_error(loss):
    assert not dist.is_initialized()
    name = type(loss).__name__
    with pytest.raises(RuntimeError, match=rf"{name}\(distributed=True\) .* default process group, but none is "
                                           r"initialised: call torch.distributed.init_process_group\(\)"):
        loss(torch.randn(4, 3), torch.tensor([0, 1, 2, 0]))


def test_one_process_equals_the_per_process_loss(tmp_path):
    """World size 1: the global batch is the process's batch (DN to the bit,
    DMLoss to float rounding: its softmax is computed another way)."""
    generator = torch.Generator().manual_seed(2)
    logits = torch.randn(32, 5, generator=generator) * 4
    labels = torch.randint(0, 5, (32,), generator=generator)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'init'}", rank=0, world_size=1)
    try:
        for name, make in CASES.items():
            results = []
            for distributed in (False, True):
                z = logits.clone().requires_grad_(True)
                value = make(distributed)(z, labels)
                value.sum().backward()
                results.append((value.detach(), z.grad))
            (value, grad), (distributed_value, distributed_grad) = results
            if name.startswith("DN"):
                assert torch.equal(distributed_value, value) and torch.equal(distributed_grad, grad), name
            torch.testing.assert_close(distributed_value, value, rtol=1e-6, atol=0)
            torch.testing.assert_close(distributed_grad, grad, rtol=1e-6, atol=1e-6 * grad.abs().max().item())
    finally:
        dist.destroy_process_group()


def test_repr_shows_distributed():
    assert repr(dm.DMLoss(0.5, 8.0, distributed=True)) == "DMLoss(lam=0.5, beta=8.0, eps=1e-06, distributed=True)"
    assert "distributed=True" in repr(dm.DN(dm.CCE(), distributed=True))
    assert "distributed" not in repr(dm.DMLoss(0.5, 8.0)) + repr(dm.DN(dm.CCE()))
    assert dm.DMLoss(0.5, 8.0).distributed is False and dm.DN(dm.CCE()).distributed is False
