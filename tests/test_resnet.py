"""dm.models.resnet's Caffe options: Caffe's batch-norm estimate and msra filler."""

import math

import pytest
import torch

from dm.models.resnet import CaffeBatchNorm2d, resnet


def test_caffe_batchnorm_uses_the_normalised_moving_average():
    """After t training batches, the test-time mean and variance are
    sum_k a^k x_(t-k) / sum_k a^k over the batches' statistics (the running
    variance, as in Caffe and PyTorch, the unbiased one)."""
    torch.manual_seed(0)
    a = 0.999
    bn = CaffeBatchNorm2d(3, fraction=a)
    batches = [torch.randn(8, 3, 4, 4) * (1 + k) + k for k in range(5)]
    for x in batches:
        bn.train()(x)
    weights = torch.tensor([a ** (len(batches) - 1 - k) for k in range(len(batches))], dtype=torch.float64)
    means = torch.stack([x.double().mean((0, 2, 3)) for x in batches])
    variances = torch.stack([x.double().var((0, 2, 3), unbiased=True) for x in batches])
    mean = (weights[:, None] * means).sum(0) / weights.sum()
    var = (weights[:, None] * variances).sum(0) / weights.sum()
    x = torch.randn(2, 3, 4, 4)
    expected = (x.double() - mean.view(1, 3, 1, 1)) / torch.sqrt(var.view(1, 3, 1, 1) + bn.eps)
    torch.testing.assert_close(bn.eval()(x).double(), expected, rtol=1e-4, atol=1e-4)
    # PyTorch's own estimate (momentum 0.1 from mean 0, var 1) is far from it after 5 batches.
    plain = torch.nn.BatchNorm2d(3)
    for x_ in batches:
        plain.train()(x_)
    assert not torch.allclose(plain.eval()(x).double(), expected, atol=0.1)


def test_caffe_batchnorm_untrained_and_in_a_state_dict():
    bn = CaffeBatchNorm2d(2).eval()
    out = bn(torch.ones(1, 2, 2, 2))
    assert torch.isfinite(out).all()  # Caffe's 0 for an untrained layer, not a division by zero
    trained = CaffeBatchNorm2d(2)
    trained.train()(torch.randn(4, 2, 3, 3))
    copy = CaffeBatchNorm2d(2)
    copy.load_state_dict(trained.state_dict())
    x = torch.randn(1, 2, 3, 3)
    torch.testing.assert_close(copy.eval()(x), trained.eval()(x))


def test_msra_filler_is_he_over_the_fan_in_on_convolutions_and_the_linear_layer():
    torch.manual_seed(0)
    caffe = resnet("resnet20", 100, "B", init="msra", batchnorm="caffe")
    default = resnet("resnet20", 100)
    conv = caffe.blocks[4].conv2.weight       # 32 x 32 x 3 x 3: fan-in 288, fan-out 288
    first = caffe.conv.weight                  # 16 x 3 x 3 x 3: fan-in 27, fan-out 144
    assert first.std().item() == pytest.approx(math.sqrt(2 / 27), rel=0.15)
    assert default.conv.weight.std().item() == pytest.approx(math.sqrt(2 / 144), rel=0.15)
    assert conv.std().item() == pytest.approx(math.sqrt(2 / 288), rel=0.05)
    assert caffe.fc.weight.std().item() == pytest.approx(math.sqrt(2 / 64), rel=0.05)
    assert torch.count_nonzero(caffe.fc.bias) == 0
    assert isinstance(caffe.bn, CaffeBatchNorm2d) and not isinstance(default.bn, CaffeBatchNorm2d)
    assert caffe(torch.randn(2, 3, 32, 32)).shape == (2, 100)
    with pytest.raises(ValueError, match="'xavier'"):
        resnet("resnet8", 10, init="xavier")
    with pytest.raises(ValueError, match="'sync'"):
        resnet("resnet8", 10, batchnorm="sync")
