"""dm.cifar and dm.resnet: loading through torchvision, fabricated archives,
the 80/20 split, batch augmentation on the device, the CIFAR ResNets."""

import pickle

import numpy as np
import pytest
import torch

from dm import cifar, noise
from dm.resnet import DEPTHS, ResNet, resnet


@pytest.fixture(scope="module", params=["cifar10", "cifar100"])
def fabricated(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(request.param)
    checksums = cifar.fabricate(root, request.param, n_train=250, n_test=60, seed=1)
    return request.param, root, checksums


def test_fabricated_archive_loads_through_torchvision(fabricated):
    name, root, checksums = fabricated
    data = cifar.load(name, root, checksums=checksums)
    c = cifar.NUM_CLASSES[name]
    assert data.name == name and data.num_classes == c
    assert data.x_train.shape == (250, 3, 32, 32) and data.x_train.dtype == np.uint8
    assert data.x_test.shape == (60, 3, 32, 32)
    assert data.y_train.dtype == np.int64 and data.y_train.min() >= 0 and data.y_train.max() < c
    expected = noise.CIFAR10_CLASSES if name == "cifar10" else noise.CIFAR100_FINE
    assert data.classes == tuple(expected)


def test_official_layout_and_pixel_order(fabricated):
    """The files are the official pickles: a dict per batch with ``data`` as
    [n, 3072] rows (channel-major: 1024 red, 1024 green, 1024 blue)."""
    name, root, checksums = fabricated
    folder = root / ("cifar-10-batches-py" if name == "cifar10" else "cifar-100-python")
    first = "data_batch_1" if name == "cifar10" else "train"
    with open(folder / first, "rb") as f:
        entry = pickle.load(f, encoding="latin1")
    assert entry["data"].dtype == np.uint8 and entry["data"].shape[1] == 3072
    data = cifar.load(name, root, checksums=checksums)
    np.testing.assert_array_equal(data.x_train[0].reshape(-1), entry["data"][0])
    if name == "cifar100":
        table = np.asarray(noise.CIFAR100_FINE_TO_COARSE)
        assert np.array_equal(table[entry["fine_labels"]], entry["coarse_labels"])


def test_official_checksums_reject_a_fabricated_archive(fabricated):
    name, root, _ = fabricated
    with pytest.raises(RuntimeError, match=f"{name} not found \\(or corrupted\\)"):
        cifar.load(name, root)


def test_corrupted_file_is_rejected(tmp_path):
    checksums = cifar.fabricate(tmp_path, "cifar10", 100, 20)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(RuntimeError, match="corrupted"):
        cifar.load("cifar10", tmp_path, checksums=checksums)


def test_wrong_coarse_table_is_caught(tmp_path):
    checksums = cifar.fabricate(tmp_path, "cifar100", 200, 20)
    path = tmp_path / "cifar-100-python" / "train"
    with open(path, "rb") as f:
        entry = pickle.load(f)
    entry["coarse_labels"] = [(c + 1) % 20 for c in entry["coarse_labels"]]
    with open(path, "wb") as f:
        pickle.dump(entry, f, protocol=2)
    checksums["train"] = cifar._md5(path)
    with pytest.raises(RuntimeError, match="coarse labels disagree"):
        cifar.load("cifar100", tmp_path, checksums=checksums)


def test_bad_names_and_checksums(tmp_path):
    with pytest.raises(ValueError, match="'cifar1000'"):
        cifar.load("cifar1000", tmp_path)
    with pytest.raises(ValueError, match="lacks an md5"):
        cifar.load("cifar10", tmp_path, checksums={"data_batch_1": "0" * 32})


def test_split_is_stratified_disjoint_and_seeded():
    labels = np.repeat(np.arange(10), 50)
    train, val = cifar.split_train_val(labels, 0.2, seed=3)
    assert len(val) == 100 and len(train) == 400
    assert np.intersect1d(train, val).size == 0 and np.union1d(train, val).size == 500
    assert np.all(np.bincount(labels[val]) == 10)
    again, _ = cifar.split_train_val(labels, 0.2, seed=3)
    assert np.array_equal(train, again)
    assert not np.array_equal(val, cifar.split_train_val(labels, 0.2, seed=4)[1])
    train, val = cifar.split_train_val(labels, 0.0, seed=0)
    assert len(train) == 500 and len(val) == 0
    with pytest.raises(ValueError, match="val_fraction"):
        cifar.split_train_val(labels, 1.0, seed=0)


def test_augment_is_a_crop_of_the_padded_image_or_its_mirror():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8, generator=g)
    out = cifar.augment(images, torch.Generator().manual_seed(1))
    assert out.shape == images.shape and out.dtype == torch.uint8
    padded = torch.nn.functional.pad(images, (4, 4, 4, 4))
    flips = 0
    for i in range(64):
        windows = [padded[i, :, y:y + 32, x:x + 32] for y in range(9) for x in range(9)]
        plain = any(torch.equal(out[i], w) for w in windows)
        mirrored = any(torch.equal(out[i], w.flip(-1)) for w in windows)
        assert plain or mirrored, i
        flips += mirrored and not plain
    assert 16 < flips < 48  # about half are mirrored
    # Seeded: the same generator seed gives the same batch.
    assert torch.equal(out, cifar.augment(images, torch.Generator().manual_seed(1)))
    assert torch.equal(cifar.augment(images, pad=0, flip=False), images)


def test_normalize_uses_the_data_sets_statistics():
    images = torch.full((2, 3, 4, 4), 255, dtype=torch.uint8)
    out = cifar.normalize(images, "cifar10")
    expected = (1 - torch.tensor(cifar.MEAN["cifar10"])) / torch.tensor(cifar.STD["cifar10"])
    torch.testing.assert_close(out[0, :, 0, 0], expected)
    assert out.dtype == torch.float32


@pytest.mark.parametrize("depth, params", [(20, 0.27e6), (32, 0.46e6), (44, 0.66e6), (56, 0.85e6)])
def test_resnet_sizes_match_he_et_al(depth, params):
    """He et al. 2016, Table 6: ResNet-20/32/44/56 have 0.27M/0.46M/0.66M/0.85M
    parameters (10 classes)."""
    model = resnet(f"resnet{depth}", 10)
    count = sum(p.numel() for p in model.parameters())
    assert abs(count - params) / params < 0.02, count
    assert len([m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]) == depth - 1


def test_resnet_forward_and_bad_names():
    model = resnet(8, 100).eval()
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 100)
    for bad in ("resnet45", "vgg16", "resnet"):
        with pytest.raises(ValueError, match="resnet|depth"):
            resnet(bad, 10)
    assert set(DEPTHS) >= {20, 32, 44, 56, 110}
    with pytest.raises(ValueError, match="num_classes"):
        ResNet(20, 1)


def test_torchvision_dataset_gives_pil_images_with_the_override(fabricated):
    name, root, checksums = fabricated
    dataset = cifar.torchvision_dataset(name, root, train=False, checksums=checksums)
    image, label = dataset[0]
    assert image.size == (32, 32) and 0 <= label < cifar.NUM_CLASSES[name]
    data = cifar.load(name, root, checksums=checksums)
    assert np.array_equal(np.asarray(image).transpose(2, 0, 1), data.x_test[0])


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_download_step_extracts_the_official_archive(tmp_path, name):
    """With only the packed archive in the cache, load(download=True) runs
    torchvision's download step: it verifies the archive's md5, finds it in
    place (no network) and extracts it."""
    checksums = cifar.fabricate(tmp_path, name, 120, 30, archive=True)
    assert [p.name for p in tmp_path.iterdir()] == [f"{name.replace('cifar', 'cifar-')}-python.tar.gz"]
    data = cifar.load(name, tmp_path, download=True, checksums=checksums)
    assert data.x_train.shape == (120, 3, 32, 32) and data.x_test.shape == (30, 3, 32, 32)
    with pytest.raises(RuntimeError, match="not found"):  # extracted files are checked too
        cifar.load(name, tmp_path)


def test_projection_shortcuts():
    """Option B adds a 1x1 convolution and batch norm at each of the two
    stage changes; otherwise the network is the same."""
    a, b = resnet(20, 10), resnet(20, 10, shortcut="B")
    extra = sum(p.numel() for p in b.parameters()) - sum(p.numel() for p in a.parameters())
    assert extra == (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)
    assert b.eval()(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(ValueError, match="shortcut must be"):
        resnet(20, 10, shortcut="C")
