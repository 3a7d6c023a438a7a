"""dm.data.cifar and dm.models.resnet: loading through torchvision, fabricated archives,
the 80/20 split, batch augmentation on the device, the CIFAR ResNets."""

import pickle

import numpy as np
import pytest
import torch

from dm import noise
from dm.data import cache
from dm.data import cifar
from dm.models.resnet import DEPTHS, ResNet, resnet


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
    """Files that are neither the official ones nor a known copy are refused,
    naming their content digest."""
    name, root, checksums = fabricated
    digest = cifar.load(name, root, checksums=checksums).digest
    with pytest.raises(RuntimeError, match=f"not the official ones .* digest {digest} is no known copy"):
        cifar.load(name, root)


def test_missing_files_are_reported(tmp_path):
    with pytest.raises(RuntimeError, match="cifar10 not found \\(or corrupted\\).*download=True"):
        cifar.load("cifar10", tmp_path)


def test_a_known_copy_is_recognised_by_its_content(fabricated, monkeypatch):
    """A copy listed in COPIES loads without checksums and says which copy it
    is; its identity goes into result.json."""
    name, root, checksums = fabricated
    digest = cifar.load(name, root, checksums=checksums).digest
    assert len(digest) == 64
    monkeypatch.setitem(cifar.COPIES, (name, digest), "test copy")
    data = cifar.load(name, root)
    assert not data.fabricated and data.copy == "test copy" and data.digest == digest
    assert data.identity()["description"].endswith(f"test copy, content digest {digest[:8]}…")


def test_content_digest_depends_on_every_part():
    rng = np.random.default_rng(0)
    parts = [rng.integers(0, 256, (4, 3, 32, 32), dtype=np.uint8), np.arange(4),
             rng.integers(0, 256, (2, 3, 32, 32), dtype=np.uint8), np.arange(2)]
    digest = cifar.content_digest(*parts)
    assert digest == cifar.content_digest(*[p.copy() for p in parts])
    for i in range(4):
        changed = [p.copy() for p in parts]
        changed[i].flat[0] += 1
        assert cifar.content_digest(*changed) != digest, i


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
    checksums["train"] = cache.md5(path)
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
    with pytest.raises(RuntimeError, match="not the official ones"):  # extracted files are checked too
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


# --- the authors' own pipeline (their Matlab process_imgdataint8.m) ---------------

def _matlab_square(img: np.ndarray, margin: int = 4, size: int = 36) -> np.ndarray:
    """process_imgdataint8.m's crop, imresize and padarray for one uint8
    ``[3, H, W]`` image, written line by line from the Matlab code (1-based
    indices) and imresize's published algorithm, in float64 and unrounded:
    the reference `cifar.authors_square` must round."""
    rgb = img.astype(np.float64)
    h, w = img.shape[1:]
    gray = np.floor(0.298936021293775 * rgb[0] + 0.587043074451121 * rgb[1]
                    + 0.114020904255103 * rgb[2] + 0.5)                   # rgb2gray, uint8
    row, col = np.nonzero(gray < 250)
    if row.size == 0:                                                     # Matlab would fail
        ymin, ymax, xmin, xmax = 1, h - 1, 1, w - 1
    else:
        row, col = row + 1, col + 1
        xmin, xmax = max(0, col.min() - margin), min(w, col.max() + margin)
        ymin, ymax = max(0, row.min() - margin), min(h, row.max() + margin)
    # imcrop(img, [xmin ymin width height]) in spatial coordinates: pixels
    # round(ymin) .. round(ymin + height), clamped to the image.
    r1, r2 = max(1, ymin), min(h, ymin + (ymax - ymin + 1))
    c1, c2 = max(1, xmin), min(w, xmin + (xmax - xmin + 1))
    crop = rgb[:, r1 - 1:r2, c1 - 1:c2]
    ch, cw = crop.shape[1:]
    scale = size / max(ch, cw)                       # imresize(.., [size NaN]) or [NaN size]
    out_h, out_w = int(np.ceil(ch * scale)), int(np.ceil(cw * scale))

    def contributions(n_in, n_out):                  # imresize's, bicubic, scale > 1
        m = np.zeros((n_out, n_in))
        for x in range(1, n_out + 1):
            u = x / scale + 0.5 * (1 - 1 / scale)
            for i in range(int(np.floor(u - 2)), int(np.floor(u - 2)) + 6):
                d = abs(u - i)
                k = (1.5 * d**3 - 2.5 * d**2 + 1 if d <= 1 else
                     -0.5 * d**3 + 2.5 * d**2 - 4 * d + 2 if d <= 2 else 0.0)
                m[x - 1, min(max(i, 1), n_in) - 1] += k
            m[x - 1] /= m[x - 1].sum()
        return m

    resized = contributions(ch, out_h) @ crop @ contributions(cw, out_w).T
    square = np.full((3, size, size), 255.0)
    top, left = (size - out_h) // 2, (size - out_w) // 2      # padarray 'pre': floor(missing / 2)
    square[:, top:top + out_h, left:left + out_w] = resized
    return square


def _white_with(rect, colour=(10, 120, 200), h=32, w=32):
    """A white image with a uniformly coloured rectangle (0-based inclusive
    rows r0..r1, columns c0..c1)."""
    (r0, r1), (c0, c1) = rect
    img = torch.full((3, h, w), 255, dtype=torch.uint8)
    img[:, r0:r1 + 1, c0:c1 + 1] = torch.tensor(colour, dtype=torch.uint8).view(3, 1, 1)
    return img


def test_authors_square_crops_the_content_box():
    # Rectangle rows 8..19, columns 6..25: box rows [8 - 4, 19 + 6) = [4, 25)
    # (21 rows), columns [2, 31) (29): the long side 29 -> 36, the rows
    # ceil(21 * 36 / 29) = 27, padded with floor(9 / 2) = 4 white rows before, 5 after.
    img = _white_with(((8, 19), (6, 25)))
    sq = cifar.authors_square(img[None])
    assert sq.shape == (1, 3, 36, 36) and sq.dtype == torch.uint8
    sq = sq[0]
    assert torch.all(sq[:, :4] == 255) and torch.all(sq[:, 31:] == 255)
    # The rectangle's interior (canvas rows 11..20, columns 8..26, away from its
    # edges by more than the bicubic support) has its colour.
    inside = sq[:, 11:21, 8:27].int() - torch.tensor([10, 120, 200]).view(3, 1, 1)
    assert inside.abs().max() <= 1
    # Content at the image's top-left corner (rows 0..19, columns 0..9): box
    # rows [0, 25), columns [0, 15); the 25 rows -> 36, the 15 columns ->
    # ceil(15 * 36 / 25) = 22, placed at columns 7..28: 7 white columns
    # before, 7 after, and column 7 (the box's left edge, dark) already picture.
    sq = cifar.authors_square(_white_with(((0, 19), (0, 9)))[None])[0]
    assert torch.all(sq[:, :, :7] == 255) and torch.all(sq[:, :, 29:] == 255)
    assert sq[:, 0, 7].max() <= 200 and sq[0, 0, 7] <= 20   # (10, 120, 200) at the corner
    # The threshold is on Matlab's gray rounded to uint8: a (249, 249, 249)
    # pixel at (10, 10) is dark, so the box is [10 - 4, 10 + 6) = [6, 16) and the
    # pixel lands at canvas (4 + 0.5) * 3.6 - 0.5 = 15.7; a (250, 250, 250) one
    # is white, the box is the whole image and it lands at 10.5 * 1.125 - 0.5 = 11.3.
    img = torch.full((2, 3, 32, 32), 255, dtype=torch.uint8)
    img[0, :, 10, 10], img[1, :, 10, 10] = 249, 250
    sq = cifar.authors_square(img)
    for square, centre in zip(sq, (15.7, 11.3)):
        darkest = divmod(int(square[0].argmin()), 36)
        assert abs(darkest[0] - centre) < 1 and abs(darkest[1] - centre) < 1, darkest


def test_authors_square_matches_the_matlab_code():
    """Against `_matlab_square`, a float64 line-by-line port: within rounding
    (half a grey level) on boxes wide, tall, square, at the edges, a single
    dark pixel, and a whole image without white."""
    g = torch.Generator().manual_seed(0)
    images = [_white_with(((8, 19), (6, 25))), _white_with(((0, 19), (0, 9))),
              _white_with(((3, 27), (20, 31)), (250, 10, 90)), _white_with(((15, 15), (2, 2)))]
    # A box whose margin differs from the pixels just outside it: (255, 255,
    # 210) is still white (gray 249.9 -> 250), but imresize replicates the
    # box's edge and never reads the pure white outside.
    images[0][2, 4:25, 2:31] = 210
    images[0][:, 8:20, 6:26] = torch.tensor([10, 120, 200], dtype=torch.uint8).view(3, 1, 1)
    noisy = torch.randint(0, 200, (4, 3, 32, 32), dtype=torch.uint8, generator=g)
    noisy[0, :, :7], noisy[1, :, :, 24:], noisy[2, :, 20:, :11] = 255, 255, 255
    images = torch.cat([torch.stack(images), noisy])
    sq = cifar.authors_square(images)
    for i in range(len(images)):
        ref = np.clip(_matlab_square(images[i].numpy()), 0, 255)
        assert np.abs(sq[i].numpy() - ref).max() <= 0.5 + 1e-6, i
    # Without white the box is the whole image, so the square is the 32 -> 36
    # bicubic upscale. With torch's kernel (a = -0.75) instead of Matlab's
    # (-0.5) the same code gives F.interpolate's; the two kernels differ.
    whole = noisy[3:]
    torchs = torch.nn.functional.interpolate(whole.float(), size=36, mode="bicubic", align_corners=False)
    mine = cifar._square_chunk(whole, 36, 4, 250, a=-0.75)
    assert (mine.float() - torchs.clamp(0, 255)).abs().max() <= 0.5 + 1e-3
    assert (sq[7].float() - torchs[0].clamp(0, 255)).abs().max() > 2


def test_authors_square_all_white_empty_and_chunks(monkeypatch):
    white = torch.full((2, 3, 32, 32), 255, dtype=torch.uint8)
    assert torch.all(cifar.authors_square(white) == 255)
    assert cifar.authors_square(white[:0]).shape == (0, 3, 36, 36)
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (7, 3, 32, 32), dtype=torch.uint8, generator=g)
    images[::2, :, :6] = 255
    whole = cifar.authors_square(images)
    monkeypatch.setattr(cifar, "_AUTHORS_CHUNK", 3)   # the same, three images at a time
    assert torch.equal(cifar.authors_square(images), whole)


def test_authors_augment_flips_then_crops_at_offsets_0_to_3():
    g = torch.Generator().manual_seed(0)
    squares = torch.randint(0, 256, (256, 3, 36, 36), dtype=torch.uint8, generator=g)
    out = cifar.authors_augment(squares, torch.Generator().manual_seed(1))
    assert out.shape == (256, 3, 32, 32) and out.dtype == torch.uint8
    assert torch.equal(out, cifar.authors_augment(squares, torch.Generator().manual_seed(1)))
    assert not torch.equal(out, cifar.authors_augment(squares, torch.Generator().manual_seed(2)))
    seen = set()
    for i in range(256):
        found = [(y, x, f) for f, s in ((False, squares[i]), (True, squares[i].flip(-1)))
                 for y in range(4) for x in range(4) if torch.equal(out[i], s[:, y:y + 32, x:x + 32])]
        assert len(found) == 1, i     # exactly one window of the square or its mirror
        seen.add(found[0])
    assert {y for y, _, _ in seen} == {x for _, x, _ in seen} == {0, 1, 2, 3}
    assert {f for _, _, f in seen} == {False, True}


def test_authors_test_crop_takes_the_window_at_offset_1():
    g = torch.Generator().manual_seed(0)
    squares = torch.randint(0, 256, (3, 3, 36, 36), dtype=torch.uint8, generator=g)
    out = cifar.authors_test_crop(squares)
    assert out.shape == (3, 3, 32, 32) and out.dtype == torch.uint8
    assert torch.equal(out, squares[:, :, 1:33, 1:33])


def test_normalize_authors_is_bgr_minus_the_means():
    images = torch.zeros((2, 3, 4, 4), dtype=torch.uint8)
    images[1, :, 2, 3] = torch.tensor([10, 20, 30], dtype=torch.uint8)      # R, G, B
    out = cifar.normalize_authors(images)
    assert out.dtype == torch.float32 and out.shape == images.shape
    torch.testing.assert_close(out[1, :, 2, 3], torch.tensor([30 - 125.3, 20 - 123.0, 10 - 113.9]))
    torch.testing.assert_close(out[0, :, 0, 0], -torch.tensor(cifar.AUTHORS_MEAN_BGR))


def test_authors_pipeline_rejects_bad_inputs():
    good = torch.zeros((2, 3, 32, 32), dtype=torch.uint8)
    with pytest.raises(ValueError, match="float32"):
        cifar.authors_square(good.float())
    with pytest.raises(ValueError, match=r"\(3, 32, 32\)"):
        cifar.authors_square(good[0])
    with pytest.raises(ValueError, match=r"\(2, 4, 32, 32\)"):
        cifar.normalize_authors(torch.zeros((2, 4, 32, 32), dtype=torch.uint8))
    with pytest.raises(ValueError, match="ndarray"):
        cifar.normalize_authors(good.numpy())
    with pytest.raises(ValueError, match="40x40"):
        cifar.authors_square(torch.zeros((1, 3, 40, 40), dtype=torch.uint8))
    with pytest.raises(ValueError, match="32x32"):
        cifar.authors_augment(good)
    with pytest.raises(ValueError, match="int64"):
        cifar.authors_test_crop(torch.zeros((1, 3, 36, 36), dtype=torch.int64))
