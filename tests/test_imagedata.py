import numpy as np
import pytest
import torch
from PIL import Image

from core import augment as A
from core import datasets as DS
from core import downloads
from core import imagedata as D


def test_offline_without_data_names_the_folder_and_does_not_hang(tmp_path, monkeypatch):
    import socket

    def refuse(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    before = socket.getdefaulttimeout()
    for name, expected in (("mnist", "MNIST/raw"), ("fashion-mnist", "FashionMNIST/raw"),
                           ("cifar10", "cifar10-jpeg"), ("pendigits",
                                                         "pendigits/pendigits-orig.tra"),
                           ("handwriting", "MNIST/raw")):
        with pytest.raises(D.DataError) as info:
            DS.load_dataset(name, "test", root=tmp_path)
        assert str(tmp_path) in str(info.value) and expected in str(info.value)
        assert "looks offline" in str(info.value)
    assert socket.getdefaulttimeout() == before  # the process-wide default is never touched


def test_the_download_probe_has_its_own_timeout(tmp_path, monkeypatch):
    import socket
    import urllib.request

    timeouts = []

    def unreachable(request, timeout=None):
        timeouts.append((request.get_method(), timeout, socket.getdefaulttimeout()))
        raise OSError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", unreachable)
    with pytest.raises(D.DataError, match="looks offline"):
        DS.load_dataset("mnist", "train", root=tmp_path)
    assert timeouts and all(t == ("HEAD", downloads.DOWNLOAD_TIMEOUT_S, None) for t in timeouts)


def test_mnist_real_data_is_exact(data_root):
    test = DS.load_dataset("mnist", "test", root=data_root)
    assert test.images.shape == (10000, 1, 28, 28) and test.images.dtype == torch.uint8
    assert test.labels[:5].tolist() == [7, 2, 1, 0, 4]
    assert torch.bincount(test.labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974,
                                                    1009]


def test_cifar10_jpeg_copy_is_read_with_cifar_class_order(data_root):
    test = DS.load_dataset("cifar10", "test", root=data_root)
    assert test.images.shape == (10000, 3, 32, 32)
    assert test.classes == DS.CIFAR10_CLASSES
    assert torch.bincount(test.labels).tolist() == [1000] * 10


def _write_folder(root, classes=("cat", "dog"), n=10, size=(20, 16)):
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (*size[::-1], 3),
                                         dtype=np.uint8)).save(root / c / f"{i}.png")


def test_imagefolder_single_folder_is_split_80_20_by_seed(tmp_path):
    _write_folder(tmp_path)
    train = DS.load_dataset("imagefolder", "train", root=tmp_path, image_size=24, channels=3,
                            seed=1)
    test = DS.load_dataset("imagefolder", "test", root=tmp_path, image_size=24, channels=3, seed=1)
    assert train.classes == ["cat", "dog"] and len(train) == 16 and len(test) == 4
    assert train.images.shape[1:] == (3, 24, 24)


def test_imagefolder_with_train_test_folders(tmp_path):
    _write_folder(tmp_path / "train", n=6)
    _write_folder(tmp_path / "test", n=2)
    test = DS.load_dataset("imagefolder", "test", root=tmp_path, image_size=16, channels=1)
    assert len(test) == 4 and test.images.shape[1:] == (1, 16, 16)


def test_imagefolder_errors_are_clear(tmp_path):
    with pytest.raises(D.DataError, match="does not exist"):
        DS.load_dataset("imagefolder", "train", root=tmp_path / "nope")
    (tmp_path / "only").mkdir()
    with pytest.raises(D.DataError, match="one sub-folder per class"):
        DS.load_dataset("imagefolder", "train", root=tmp_path)


def test_split_is_seeded_and_disjoint():
    data = D.ImageData(torch.zeros(100, 1, 4, 4, dtype=torch.uint8), torch.arange(100), ["a", "b"],
                       (0.5,), (0.5,), "x")
    a_train, a_val = D.split_train_val(data, 0.2, seed=3)
    b_train, b_val = D.split_train_val(data, 0.2, seed=3)
    assert len(a_val) == 20 and len(a_train) == 80
    assert torch.equal(a_val.labels, b_val.labels)
    assert not set(a_val.labels.tolist()) & set(a_train.labels.tolist())


def test_each_epoch_uses_a_fresh_choice_of_an_items_renderings_and_every_loose_image():
    # 3 loose images, 10 drawings x 4 renderings
    items = torch.tensor([-1, -1, -1] + [i // 4 for i in range(40)])
    data = D.ImageData(torch.zeros(43, 1, 4, 4, dtype=torch.uint8), torch.arange(43), ["a"], (0.5,),
                       (0.5,), "x", items=items, per_epoch=2)
    g = torch.Generator().manual_seed(0)
    pools = [D.epoch_pool(data, g) for _ in range(4)]
    assert D.epoch_size(data) == 3 + 10 * 2 and all(len(p) == D.epoch_size(data) for p in pools)
    for pool in pools:
        assert pool[:3].tolist() == [0, 1, 2] and torch.equal(pool, pool.sort().values)
        assert torch.bincount(items[pool[3:]], minlength=10).tolist() == [2] * 10
    assert len({tuple(p.tolist()) for p in pools}) == 4  # drawn afresh
    # Over epochs every rendering is used; without items the pool is everything.
    pools += [D.epoch_pool(data, g) for _ in range(16)]
    assert set(torch.cat(pools).tolist()) == set(range(43))
    assert D.epoch_pool(D.ImageData(data.images, data.labels, ["a"], (0.5,), (0.5,), "x"),
                        g) is None
    # A subset (a validation split, a size cap) keeps the items of the images it keeps.
    assert torch.equal(data.subset(torch.tensor([5, 9])).items, torch.tensor([0, 1]))


def test_batched_augmentation_shapes_ranges_and_randomness():
    g = torch.Generator().manual_seed(0)
    photos = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    out = A.augment_batch(photos, "photos", g)
    assert out.shape == photos.shape and out.min() >= 0 and out.max() <= 255
    assert not torch.equal(out, photos.float())
    digits = torch.zeros(8, 1, 28, 28, dtype=torch.uint8)
    digits[:, :, 8:20, 12:16] = 255
    out = A.augment_batch(digits, "digits", g)
    assert out.shape == digits.shape and out.max() <= 255.001
    assert (out.sum((1, 2, 3)) > 0).all()  # the digit survives the affine jitter


def test_translate_moves_pixels_by_at_most_the_padding():
    g = torch.Generator().manual_seed(1)
    x = torch.zeros(64, 1, 9, 9)
    x[:, :, 4, 4] = 1
    out = A._random_translate(x, 2, g)
    pos = out.view(64, -1).argmax(1)
    rows, cols = pos // 9, pos % 9
    assert ((rows - 4).abs() <= 2).all() and ((cols - 4).abs() <= 2).all()
    assert len(set(zip(rows.tolist(), cols.tolist()))) > 5


def test_photo_shifts_mirror_the_border_and_flips_follow_the_mask():
    grey = torch.full((16, 3, 32, 32), 77, dtype=torch.uint8)
    out = A.augment_batch(grey, "photos", torch.Generator().manual_seed(0))
    assert (out == 77).all()  # a reflected border adds no black edge, whatever the shift
    ramp = torch.arange(32, dtype=torch.uint8).repeat(4, 3, 32, 1)
    every = torch.ones(4, dtype=torch.bool)
    flipped = A.augment_batch(ramp, "photos", torch.Generator().manual_seed(5), every)
    kept = A.augment_batch(ramp, "photos", torch.Generator().manual_seed(5), ~every)
    assert torch.equal(flipped, kept.flip(3)) and not torch.equal(flipped, kept)


def test_alternating_flips_show_each_image_both_ways_every_two_epochs():
    masks = A.alternating_flips(1000, seed=3)
    index = torch.randperm(1000)[:300]
    first, second, third = (masks(index, epoch) for epoch in (1, 2, 3))
    assert 100 < int(first.sum()) < 200  # a random half to start
    assert torch.equal(second, ~first) and torch.equal(third, first)
    # The same after a resume
    assert torch.equal(A.alternating_flips(1000, seed=3)(index, 1), first)
    assert not torch.equal(A.alternating_flips(1000, seed=4)(index, 1), first)
