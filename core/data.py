"""Datasets as uint8 tensors, decoded once and cached; batched augmentation with tensor ops.

Every dataset becomes a `TensorDataset`-like `ImageData`: images (N,C,H,W uint8), labels (N int64), class names
and the normalisation constants. Training batches are index slices of these tensors, on the training device;
there is no per-sample PIL work anywhere in the training path.
"""
from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["ImageData", "DataError", "DATASETS", "default_data_root", "load_dataset", "split_train_val",
           "normalise", "augment_batch", "alternating_flips", "iterate_batches"]

DATASETS = ("mnist", "cifar10", "imagefolder")
IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
DOWNLOAD_TIMEOUT_S = 20


class DataError(RuntimeError):
    """A dataset could not be found, downloaded or read; the message says what to do."""


@dataclass
class ImageData:
    images: torch.Tensor  # N,C,H,W uint8
    labels: torch.Tensor  # N int64
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    name: str

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: torch.Tensor) -> ImageData:
        return ImageData(self.images[index], self.labels[index], self.classes, self.mean, self.std, self.name)

    def to(self, device: torch.device | str) -> ImageData:
        return ImageData(self.images.to(device), self.labels.to(device), self.classes, self.mean, self.std,
                         self.name)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])


def default_data_root() -> Path:
    """`TINYVISION_DATA` if set, else ./data (where torchvision downloads to)."""
    return Path(os.environ.get("TINYVISION_DATA", "data")).expanduser()


def _cache_dir() -> Path:
    path = Path(os.environ.get("TINYVISION_CACHE", Path.home() / ".cache" / "tinyvision"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _cached(key: str, build) -> dict:
    """Load `key` from the tensor cache or build it with `build()` and store it atomically."""
    path = _cache_dir() / f"{hashlib.sha1(key.encode()).hexdigest()[:16]}.pt"
    if path.exists():
        try:
            return torch.load(path, weights_only=True)
        except Exception:
            path.unlink(missing_ok=True)  # a truncated cache file is rebuilt, never trusted
    value = build()
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save(value, tmp)
    os.replace(tmp, path)
    return value


def _reachable(urls: list[str]) -> bool:
    """Whether one of `urls` answers within DOWNLOAD_TIMEOUT_S. torchvision's downloader sets no timeout of its own,
    so an offline machine is found out here first, with a timeout that belongs to this request alone."""
    for url in urls:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=DOWNLOAD_TIMEOUT_S):
                return True
        except urllib.error.HTTPError:
            return True  # the server answered; torchvision's own download reports what it says
        except OSError:
            continue
    return False


def _offline(urls: list[str]) -> None:
    if not _reachable(urls):
        raise OSError(f"no download server answered within {DOWNLOAD_TIMEOUT_S} s (this machine looks offline)")


def _load_mnist(root: Path, train: bool, download: bool) -> dict:
    from torchvision.datasets import MNIST

    raw = root / "MNIST" / "raw"
    fetch = download and not (raw / "t10k-labels-idx1-ubyte").exists()
    try:
        if fetch:
            _offline([mirror + MNIST.resources[0][0] for mirror in MNIST.mirrors])
        ds = MNIST(str(root), train=train, download=fetch)
    except Exception as exc:
        raise DataError(
            f"MNIST not found under {root} (expected {raw}/{{train,t10k}}-{{images-idx3,labels-idx1}}-ubyte) "
            f"and it could not be downloaded: {exc}. Set --data-root or TINYVISION_DATA to a folder that has it."
        ) from None
    return {"images": ds.data.unsqueeze(1).contiguous(), "labels": ds.targets.long(),
            "classes": [str(i) for i in range(10)]}


def _read_image_files(files: list[Path], size: int | None, channels: int) -> torch.Tensor:
    from PIL import Image

    mode = "L" if channels == 1 else "RGB"
    out = None
    for i, f in enumerate(files):
        with Image.open(f) as im:
            im = im.convert(mode)
            if size is not None and im.size != (size, size):
                im = im.resize((size, size), Image.BILINEAR)
            arr = np.asarray(im, dtype=np.uint8)
        if out is None:
            out = np.empty((len(files), *arr.shape), dtype=np.uint8)
        elif arr.shape != out.shape[1:]:
            raise DataError(f"{f}: size {arr.shape[:2][::-1]} differs from the first image's; pass an image size")
        out[i] = arr
    if out is None:
        raise DataError("no images to read")
    t = torch.from_numpy(out)
    return t.unsqueeze(1) if channels == 1 else t.permute(0, 3, 1, 2).contiguous()


def _scan_folder(folder: Path) -> tuple[list[Path], list[int], list[str]]:
    classes = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    files, labels = [], []
    for label, name in enumerate(classes):
        for f in sorted((folder / name).rglob("*")):
            if f.suffix.lower() in IMAGE_EXTENSIONS:
                files.append(f)
                labels.append(label)
    return files, labels, classes


def _load_folder_split(folder: Path, size: int | None, channels: int) -> dict:
    files, labels, classes = _scan_folder(folder)
    if len(classes) < 2 or not files:
        raise DataError(f"{folder} must hold one sub-folder per class (at least two) with image files in them")
    return {"images": _read_image_files(files, size, channels), "labels": torch.tensor(labels), "classes": classes}


def _load_cifar10(root: Path, train: bool, download: bool) -> dict:
    jpeg = root / "cifar10-jpeg" / ("train" if train else "test")
    if not (root / "cifar-10-batches-py").exists() and jpeg.is_dir():
        data = _cached(f"cifar10-jpeg:{jpeg.resolve()}", lambda: _load_folder_split(jpeg, 32, 3))
        if data["classes"] != CIFAR10_CLASSES:
            raise DataError(f"{jpeg} has classes {data['classes']}, expected CIFAR-10's {CIFAR10_CLASSES}")
        return data
    from torchvision.datasets import CIFAR10

    try:
        if download and not (root / CIFAR10.base_folder).is_dir():
            _offline([CIFAR10.url])
        ds = CIFAR10(str(root), train=train, download=download)
    except Exception as exc:
        raise DataError(
            f"CIFAR-10 not found under {root} (expected {root}/cifar-10-batches-py, or JPEG copies in "
            f"{root}/cifar10-jpeg/{{train,test}}/<class>/*.jpg) and it could not be downloaded: {exc}. "
            "Set --data-root or TINYVISION_DATA to a folder that has it.") from None
    images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
    return {"images": images, "labels": torch.tensor(ds.targets), "classes": list(ds.classes)}


def _load_imagefolder(root: Path, train: bool, image_size: int, channels: int, seed: int) -> dict:
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist")
    split_dir = root / ("train" if train else "test")
    if (root / "train").is_dir() and (root / "test").is_dir():
        return _cached(f"folder:{split_dir.resolve()}:{image_size}:{channels}",
                       lambda: _load_folder_split(split_dir, image_size, channels))
    # One folder of classes: a seeded 80/20 train/test split.
    data = _cached(f"folder:{root.resolve()}:{image_size}:{channels}",
                   lambda: _load_folder_split(root, image_size, channels))
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(data["labels"]), generator=g)
    n_test = max(1, len(perm) // 5)
    index = perm[n_test:] if train else perm[:n_test]
    return {"images": data["images"][index], "labels": data["labels"][index], "classes": data["classes"]}


def load_dataset(name: str, split: str = "train", root: str | Path | None = None, download: bool = True,
                 image_size: int = 32, channels: int = 3, seed: int = 0) -> ImageData:
    """Load `split` ("train" or "test") of a dataset as uint8 tensors.

    `root` defaults to `TINYVISION_DATA` (or ./data). MNIST and CIFAR-10 are downloaded there by torchvision when
    missing; offline, a missing dataset raises `DataError` naming the folder expected. For "imagefolder", root is
    the folder itself: `train/<class>/*` and `test/<class>/*`, or just `<class>/*` split 80/20 by `seed`.
    """
    if split not in ("train", "test"):
        raise ValueError("split must be 'train' or 'test'")
    root = Path(root).expanduser() if root is not None else default_data_root()
    train = split == "train"
    if name == "mnist":
        data, mean, std = _load_mnist(root, train, download), MNIST_MEAN, MNIST_STD
    elif name == "cifar10":
        data, mean, std = _load_cifar10(root, train, download), CIFAR_MEAN, CIFAR_STD
    elif name == "imagefolder":
        data = _load_imagefolder(root, train, image_size, channels, seed)
        mean, std = (0.5,) * channels, (0.25,) * channels
    else:
        raise ValueError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    return ImageData(data["images"], data["labels"], data["classes"], mean, std, name)


def split_train_val(data: ImageData, val_fraction: float, seed: int) -> tuple[ImageData, ImageData | None]:
    """Seeded split of `data` into (train, validation); `val_fraction` 0 means no validation set."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError("val_split must be in [0, 1)")
    if val_fraction == 0:
        return data, None
    perm = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    n_val = max(1, int(round(len(data) * val_fraction)))
    return data.subset(perm[n_val:]), data.subset(perm[:n_val])


def normalise(images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """uint8 (N,C,H,W) -> float, normalised per channel."""
    m = torch.tensor(mean, device=images.device).view(1, -1, 1, 1)
    s = torch.tensor(std, device=images.device).view(1, -1, 1, 1)
    return (images.float() / 255.0 - m) / s


def _random_translate(x: torch.Tensor, pad: int, g: torch.Generator, mode: str = "constant") -> torch.Tensor:
    """Shift each image by up to `pad` pixels in x and y, one gather for the whole batch. The uncovered border is
    zero (`mode="constant"`) or mirrors the image (`"reflect"`, which adds no black edge a photo never has)."""
    n, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode=mode)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=g).to(x.device)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=g).to(x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chan = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, chan, rows, cols]


def _random_warp(x: torch.Tensor, g: torch.Generator, degrees: float = 12.0, scale: tuple = (0.85, 1.1),
                 shear: float = 0.2, shift: float = 0.1, elastic: float = 0.0) -> torch.Tensor:
    """Batched small rotation/scale/shear/shift, plus an optional smooth elastic displacement, in one resampling.

    `elastic` is the displacement amplitude as a fraction of the image half-width; the field is random noise on a
    5x5 grid upsampled bicubically, so strokes bend the way different hands bend them rather than jitter.
    """
    n = x.shape[0]

    def uniform(lo, hi):
        return (torch.rand(n, generator=g) * (hi - lo) + lo).to(x.device)

    angle = uniform(-degrees, degrees) * torch.pi / 180
    s = uniform(*scale)
    sh = uniform(-shear, shear)
    cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
    theta = torch.stack([torch.stack([cos, -sin + sh, uniform(-shift, shift)], 1),
                         torch.stack([sin, cos, uniform(-shift, shift)], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    if elastic > 0:
        noise = (torch.rand(n, 2, 5, 5, generator=g) * 2 - 1).to(x.device) * elastic
        field = F.interpolate(noise, size=x.shape[-2:], mode="bicubic", align_corners=False)
        grid = grid + field.permute(0, 2, 3, 1)
    return F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")


def _random_stroke_width(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Thicken a third of the digits by one pixel and thin another third, as pens and brushes differ from MNIST's."""
    n = x.shape[0]
    choice = torch.randint(0, 3, (n,), generator=g).to(x.device)[:, None, None, None]
    padded = F.pad(x, (0, 1, 0, 1))
    thick = F.max_pool2d(padded, 2, stride=1)
    thin = -F.max_pool2d(-padded, 2, stride=1)
    return torch.where(choice == 1, thick, torch.where(choice == 2, thin, x))


def augment_batch(images: torch.Tensor, kind: str, g: torch.Generator,
                  flip: torch.Tensor | None = None) -> torch.Tensor:
    """Augment a uint8 batch on its device; returns floats in [0, 255].

    kind "photos": random translate by up to 2 pixels (reflected border) and a horizontal flip of the images where
    `flip` (bool, one per image) is true, or of a random half; kind "digits": stroke width, small affine and
    elastic warp (handwriting varies in slant, proportions and curvature, not only in position).
    """
    x = images.float()
    if kind == "photos":
        x = _random_translate(x, 2, g, mode="reflect")
        if flip is None:
            flip = torch.rand(len(x), generator=g) < 0.5
        return torch.where(flip.to(x.device)[:, None, None, None], x.flip(3), x)
    if kind == "digits":
        x = _random_stroke_width(x, g)
        return _random_warp(x, g, elastic=0.08)
    raise ValueError(f"unknown augmentation kind {kind!r}")


FlipMasks = Callable[[torch.Tensor, int], torch.Tensor]  # (batch's image indices, epoch) -> bool flip per image


def alternating_flips(n: int, seed: int, device: torch.device | str = "cpu") -> FlipMasks:
    """Flip masks that alternate per image: `masks(index, epoch)` is a random half of the images in epoch 1 and,
    from then on, each image is mirrored in every other epoch, so two consecutive epochs show both views of every
    image (random flips show some images the same way several epochs running). The masks live on `device`, the
    batches' index device, so a batch's mask costs no copy between host and accelerator."""
    start = (torch.rand(n, generator=torch.Generator().manual_seed(seed)) < 0.5).to(device)

    def masks(index: torch.Tensor, epoch: int) -> torch.Tensor:
        return start[index] ^ (epoch % 2 == 0)

    return masks


def iterate_batches(n: int, batch_size: int, g: torch.Generator) -> Iterator[torch.Tensor]:
    """Yield index tensors over range(n) in a fresh permutation from `g`, the last batch possibly smaller."""
    order = torch.randperm(n, generator=g)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]
