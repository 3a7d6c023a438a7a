"""dm.packed.Stacked: K losses on stacked logits give each model its own loss's
value and designed gradient."""

import pytest
import torch

import dm
from dm.packed import Stacked


def members():
    return [dm.CCE(), dm.DMLoss(0.5, 8.0), dm.DMLoss(0.0, -0.5, eps=0.0), dm.DMLoss(2.0, 24.0),
            dm.GCE(0.7), dm.GCE(0.3, reduction="sum"), dm.MAE(), dm.MSE(), dm.SL(0.1, 1.0),
            dm.DN(dm.GCE(0.3)), dm.DN(dm.CCE()), dm.DN(dm.MAE()),
            dm.CCE(weight=[1.0, 2.0, 0.5, 1.0, 1.0, 3.0, 1.0, 1.0, 1.0, 1.0]),  # called one by one
            torch.nn.CrossEntropyLoss()]  # not a dm loss: called one by one


def one_by_one(losses, logits, targets):
    values, grads = [], []
    for k, loss in enumerate(losses):
        z = logits.detach()[k].clone().requires_grad_(True)
        value = loss(z, targets[k])
        value.backward()
        values.append(value.detach())
        grads.append(z.grad)
    return torch.stack(values), torch.stack(grads)


@pytest.mark.parametrize("dtype, rtol", [(torch.float64, 1e-12), (torch.float32, 1e-5), (torch.bfloat16, 1e-2)])
def test_each_model_gets_its_own_loss(dtype, rtol):
    losses = members()
    generator = torch.Generator().manual_seed(0)
    K, B, C = len(losses), 16, 10
    scale = torch.logspace(-1, 1.5, B)[None, :, None]  # p from about 0 to about 1
    logits = (torch.randn(K, B, C, generator=generator) * scale).to(dtype).requires_grad_(True)
    targets = torch.randint(0, C, (K, B), generator=generator)
    values = Stacked(losses)(logits, targets)
    values.sum().backward()
    expected_values, expected_grads = one_by_one(losses, logits, targets)
    assert values.shape == (K,) and logits.grad.dtype == dtype
    torch.testing.assert_close(values.float(), expected_values.float(), rtol=rtol, atol=0)
    torch.testing.assert_close(logits.grad.double(), expected_grads.double(), rtol=rtol,
                               atol=rtol * expected_grads.double().abs().max().item())


def test_shared_targets_and_the_extremes():
    # p -> 1 and p -> 0 in float32: the stacked DM gives what DMLoss gives.
    losses = [dm.DMLoss(0.5, 8.0), dm.DMLoss(0.5, 8.0, eps=0.0), dm.DN(dm.CCE())]
    rows = torch.tensor([[60.0] + [0.0] * 9, [-60.0] + [0.0] * 9, [1e4] + [0.0] * 9, [1.0] * 10])
    logits = rows.expand(3, 4, 10).clone().requires_grad_(True)
    targets = torch.zeros(4, dtype=torch.long)
    Stacked(losses)(logits, targets).sum().backward()
    _, expected = one_by_one(losses, logits, targets.expand(3, 4))
    assert torch.isfinite(logits.grad).all()
    torch.testing.assert_close(logits.grad, expected, rtol=1e-6, atol=0)


def test_bad_input_is_refused_with_the_value_named():
    stacked = Stacked([dm.CCE(), dm.DMLoss(0.5, 8.0)])
    with pytest.raises(ValueError, match=r"shape \[K=2, B, C\]"):
        stacked(torch.zeros(3, 4, 5), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="targets must have shape"):
        stacked(torch.zeros(2, 4, 5), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="logits must be finite"):
        stacked(torch.full((2, 4, 5), float("nan")), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 4\], found 7"):
        stacked(torch.zeros(2, 4, 5), torch.full((4,), 7))
    with pytest.raises(ValueError, match="reduction='none'"):
        Stacked([dm.CCE(reduction="none")])


@pytest.mark.parametrize("losses", [
    [dm.DMLoss(0.5, 8.0), dm.DMLoss(0.0, 2.0), dm.DMLoss(1.0, 16.0, eps=0.0)],  # one group: the whole stack
    [dm.GCE(0.7), dm.GCE(0.3), dm.CCE(), dm.DN(dm.CCE()), dm.DN(dm.CCE()), dm.GCE(0.5)],  # groups out of order
    [dm.GCE(0.7), dm.CCE(weight=[1.0, 2.0, 1.0, 0.5, 1.0]), dm.DMLoss(0.5, 8.0), dm.GCE(0.3)],  # one called alone
], ids=["one group", "groups out of order", "one called alone"])
def test_every_arrangement_of_groups_agrees_with_the_losses_one_by_one(losses):
    generator = torch.Generator().manual_seed(1)
    K, B, C = len(losses), 8, 5
    logits = (4 * torch.randn(K, B, C, generator=generator)).requires_grad_(True)
    targets = torch.randint(0, C, (K, B), generator=generator)
    values = Stacked(losses)(logits, targets)
    values.sum().backward()
    expected_values, expected_grads = one_by_one(losses, logits, targets)
    torch.testing.assert_close(values, expected_values, rtol=1e-5, atol=0)
    torch.testing.assert_close(logits.grad, expected_grads, rtol=1e-5, atol=1e-7)
