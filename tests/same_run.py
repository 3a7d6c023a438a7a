"""What the packing, data-parallel and GPU tests share: a tiny fabricated
CIFAR-10, tiny ResNet-8 configurations, and the check that two ways of
training gave the same run."""

import dataclasses

import pytest
import torch

from dm.data import cifar
from dm.experiments import cifar as ex


def fabricated_cifar10(root):
    """400 training and 100 test images in CIFAR-10's format, loaded."""
    return cifar.load("cifar10", root, checksums=cifar.fabricate(root, "cifar10", 400, 100, seed=0))


def tiny(**changes):
    """A ResNet-8 run of 4 iterations at lr 0.02 on 40% symmetric noise."""
    base = dict(dataset="cifar10", model="resnet8", iterations=4, batch_size=32, lr=0.02,
                lr_milestones=(3,), eval_every=2, checkpoint_every=2, noise_rate=0.4)
    base.update(changes)
    return dataclasses.replace(ex.PAPER_CIFAR10_RESNET56, **base)


def three(**changes):
    """CCE, DM and GCE on one column: the pack of issue 13's test."""
    base = tiny(**changes)
    return [dataclasses.replace(base, method="CCE"), dataclasses.replace(base, method="DM", lam=0.5, beta=8),
            dataclasses.replace(base, method="GCE", gce_q=0.7)]


def weights(runs_dir, result):
    return torch.load(runs_dir / result["name"] / "model.pt")


# float32: packed (grouped kernels, a stacked loss) or data-parallel (the
# halves of a batch summed apart) runs add in another order than a plain run,
# so the two agree to rounding, which SGD steps amplify (measured: 6
# iterations at lr 0.05 reach 2e-4, so these tests train 4 at lr 0.02). After
# them every weight and statistic agrees to 2e-5 absolute (measured: at most
# 2.4e-6, under ATEN_CPU_CAPABILITY=default and avx512), each training loss to
# 1e-5 relative, and each accuracy to one test image in 100 (an argmax tie may
# go either way).
WEIGHT_ATOL, LOSS_RTOL, ACCURACY_ATOL = 2e-5, 1e-5, 0.01 + 1e-9


def assert_same_run(a, b, runs_a, runs_b):
    """Results ``a`` (in ``runs_a``) and ``b`` (in ``runs_b``) are one run:
    the same configuration, history and final weights, to the tolerances above."""
    assert a["name"] == b["name"] and a["config"] == b["config"]
    ha, hb = a["history"], b["history"]
    assert ha["iteration"] == hb["iteration"] and ha["lr"] == hb["lr"]
    assert ha["train_loss"] == pytest.approx(hb["train_loss"], rel=LOSS_RTOL)
    for key in ("test_accuracy", "train_accuracy_noisy_labels", "train_accuracy_corrupted"):
        assert ha[key] == pytest.approx(hb[key], abs=ACCURACY_ATOL), key
    wa, wb = weights(runs_a, a), weights(runs_b, b)
    assert list(wa) == list(wb)
    for key in wa:
        assert wa[key].shape == wb[key].shape and wa[key].dtype == wb[key].dtype, key
        assert torch.allclose(wa[key].double(), wb[key].double(), rtol=0, atol=WEIGHT_ATOL), key
