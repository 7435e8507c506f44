"""Dataset registry: a name maps to a `DatasetSpec` (what the data is, where it comes from) and
its loader.

The CLI's choices, the Train tab, the recipes, the checkpoints' input kind and the tests read the
specs; nothing else knows a dataset's name. Adding a dataset is one `register(DatasetSpec(...))`
with its loader, a function of `core.imagedata.LoadArgs` that returns {"images": N,C,H,W uint8,
"labels": N int64, "classes": [...]} (and optionally "kind", "parts", "groups", "items",
"per_epoch": see core.imagedata.ImageData).

    data = load_dataset("fashion-mnist", "train")   # core.imagedata.ImageData
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from . import pens
from .augment import AUGMENTATIONS
from .downloads import missing, require_online
from .folders import load_folder_split, load_imagefolder
from .imagedata import DataError, ImageData, LoadArgs, cached, default_data_root
from .kinds import NAMES, by_channels, get_kind
from .pens import DIGIT_CLASSES, PENDIGITS_TEST_SHARE, PENDIGITS_URL, UNIPEN_DOI, load_pendigits

__all__ = ["DatasetSpec", "register", "list_datasets", "pen_stroke_datasets", "get_dataset_spec",
           "load_dataset", "checkpoint_kind", "CIFAR10_CLASSES", "FASHION_CLASSES", "DIGIT_CLASSES"]

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                   "truck"]
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot"]
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
# Handwriting training: renderings of each pen drawing one epoch uses (0: all of them).
HANDWRITING_PER_EPOCH = 0


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    label: str  # for the UI
    loader: Callable[[LoadArgs], dict]
    kind: str | None  # an input kind (core.kinds); None: by channels (image folders)
    channels: int | None  # None: chosen when loading (image folders)
    size: int | None
    classes: tuple[str, ...] | None  # None: the folder's sub-folders
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str  # where it comes from: download URL, torchvision class, local folder
    licence: str
    augment: str | None = None  # None: the kind's (core.kinds)
    tta_flip: bool | None = None  # None: the kind's (core.kinds)
    folder: bool = False  # the data root is the dataset's own folder, given by the user
    notes: str = ""  # what a user should know: renders, splits
    pen_strokes: bool = False  # its images are drawn from pen strokes (--pen-jitter applies)

    def kind_for(self, channels: int | None = None) -> str:
        """The input kind of this dataset's images (for an image folder, of `channels`-channel
        images)."""
        return self.kind or by_channels(channels or self.channels).name

    def augment_for(self, channels: int | None = None, kind: str | None = None) -> str:
        return self.augment or get_kind(kind or self.kind_for(channels)).augment

    def tta_flip_for(self, channels: int | None = None, kind: str | None = None) -> bool:
        if self.tta_flip is not None:
            return self.tta_flip
        return get_kind(kind or self.kind_for(channels)).tta_flip


_REGISTRY: dict[str, DatasetSpec] = {}


def register(spec: DatasetSpec) -> None:
    """Add a dataset; a name that is taken is refused."""
    if spec.name in _REGISTRY:
        raise ValueError(f"a dataset named {spec.name!r} is registered already")
    if spec.kind is not None and spec.kind not in NAMES:
        raise ValueError(f"dataset {spec.name!r}: kind must be one of {NAMES}")
    if spec.augment is not None and spec.augment not in AUGMENTATIONS:
        raise ValueError(f"dataset {spec.name!r}: augment must be one of {AUGMENTATIONS}")
    _REGISTRY[spec.name] = spec


def list_datasets() -> list[str]:
    return list(_REGISTRY)


def pen_stroke_datasets() -> list[str]:
    """The datasets drawn from pen strokes (where --pen-jitter applies)."""
    return [name for name, spec in _REGISTRY.items() if spec.pen_strokes]


def get_dataset_spec(name: str) -> DatasetSpec:
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown dataset {name!r}; choose one of: {', '.join(_REGISTRY)}"
                         ) from None


def load_dataset(name: str, split: str = "train", root: str | Path | None = None,
                 download: bool = True, image_size: int | None = None, channels: int | None = None,
                 seed: int = 0, kind: str | None = None, pen_jitter: float = 0.0) -> ImageData:
    """Load `split` ("train" or "test") of a registered dataset as uint8 tensors.

    `root` defaults to `TINYVISION_DATA` (or ./data). Downloadable datasets are fetched there when
    missing; offline, a missing dataset raises `DataError` naming the folder expected. For a folder
    dataset, root is the folder itself, and `kind`, `image_size` and `channels` say how to read its
    images (None: the kind's defaults, core.kinds; the other datasets ignore them). `pen_jitter`
    moves each stroke of a pen digit's training renderings on its own (core.strokes.jittered).
    """
    spec = get_dataset_spec(name)
    if split not in ("train", "test"):
        raise ValueError("split must be 'train' or 'test'")
    if kind is not None:
        get_kind(kind)
    root = Path(root).expanduser() if root is not None else default_data_root()
    # Only training images are jittered: test images keep the strokes as written.
    args = LoadArgs(root, split == "train", download, image_size, channels, seed, kind,
                    pen_jitter if split == "train" else 0.0)
    data = spec.loader(args)
    c = data["images"].shape[1]
    if spec.channels:
        mean, std = spec.mean, spec.std
    else:
        mean, std = (spec.mean[0],) * c, (spec.std[0],) * c
    kind = data.get("kind") or spec.kind_for(c)
    return ImageData(data["images"], data["labels"], list(data["classes"]), mean, std, name, kind,
                     spec.augment_for(c, kind), spec.tta_flip_for(c, kind), data.get("parts", {}),
                     data.get("groups"), data.get("items"), data.get("per_epoch", 1),
                     data.get("summary", ""))


def checkpoint_kind(meta: dict) -> str:
    """The input kind of a checkpoint's model: recorded since the registry exists, else its
    dataset's (files of older releases); a dataset this release does not know is judged by its
    channels, as a folder is."""
    if meta.get("kind") in NAMES:
        return meta["kind"]
    spec = _REGISTRY.get(meta.get("dataset"))
    channels = meta["input_shape"][0]
    return spec.kind_for(channels) if spec is not None else by_channels(channels).name


# ------------------------------------------------------------------------------------------------
# Loaders of torchvision's datasets, and the handwriting mix

def _idx_loader(torchvision_class: str, folder: str,
                classes: list[str]) -> Callable[[LoadArgs], dict]:
    """MNIST-format idx files through torchvision (`root/<folder>/raw`), downloaded when missing."""
    def load(a: LoadArgs) -> dict:
        import torchvision.datasets

        cls = getattr(torchvision.datasets, torchvision_class)
        raw = a.root / folder / "raw"
        fetch = a.download and not (raw / "t10k-labels-idx1-ubyte").exists()
        try:
            if fetch:
                require_online([mirror + cls.resources[0][0] for mirror in cls.mirrors])
            ds = cls(str(a.root), train=a.train, download=fetch)
        except Exception as exc:
            expected = f"{raw}/{{train,t10k}}-{{images-idx3,labels-idx1}}-ubyte"
            raise missing(folder, a.root, expected, exc) from None
        return {"images": ds.data.unsqueeze(1).contiguous(), "labels": ds.targets.long(),
                "classes": classes}
    return load


_load_mnist = _idx_loader("MNIST", "MNIST", DIGIT_CLASSES)


def _load_cifar10(a: LoadArgs) -> dict:
    jpeg = a.root / "cifar10-jpeg" / ("train" if a.train else "test")
    if not (a.root / "cifar-10-batches-py").exists() and jpeg.is_dir():
        data = cached(f"cifar10-jpeg:{jpeg.resolve()}", lambda: load_folder_split(jpeg, 32, 3))
        if data["classes"] != CIFAR10_CLASSES:
            raise DataError(f"{jpeg} has classes {data['classes']}, expected CIFAR-10's "
                            f"{CIFAR10_CLASSES}")
        return data
    from torchvision.datasets import CIFAR10

    try:
        if a.download and not (a.root / CIFAR10.base_folder).is_dir():
            require_online([CIFAR10.url])
        ds = CIFAR10(str(a.root), train=a.train, download=a.download)
    except Exception as exc:
        raise missing("CIFAR-10", a.root, f"{a.root}/cifar-10-batches-py, or JPEG copies in "
                      f"{a.root}/cifar10-jpeg/{{train,test}}/<class>/*.jpg", exc) from None
    images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
    return {"images": images, "labels": torch.tensor(ds.targets), "classes": list(ds.classes)}


def _pen_parts(a: LoadArgs) -> list[tuple[str, dict, int]]:
    """The pen collections of the handwriting mix for this split: (name, images, labels and
    writers, renderings per drawing)."""
    parts = []
    pen = pens.pen_file(a, "train" if a.train else "test")
    if pen is not None:
        rendered = pens.rendered_pen_file(pen, pens.PENDIGITS_RENDERS, a.pen_jitter)
        parts.append(("pendigits", {**rendered, "groups": rendered["writers"]},
                      pens.PENDIGITS_RENDERS))
    unipen = pens.load_unipen(a)
    parts.append(("unipen", {**unipen, "groups": unipen["groups"] + UNIPEN_WRITERS},
                  pens.UNIPEN_RENDERS))
    return parts


# Writer numbers of the mix: pendigits' own (1-30), UNIPEN's people from here on; MNIST's unknown.
UNIPEN_WRITERS = 1000


def _load_handwriting(a: LoadArgs) -> dict:
    mnist = _load_mnist(a)
    n = len(mnist["labels"])
    images, labels = [mnist["images"]], [mnist["labels"]]
    groups, items = [torch.full((n,), -1, dtype=torch.long)], [torch.full((n,), -1)]
    parts, summaries = {"mnist": (0, n)}, []
    for name, pen, renders in _pen_parts(a):
        start, count = sum(len(x) for x in labels), len(pen["labels"])
        parts[name] = (start, start + count)
        images.append(pen["images"])
        labels.append(pen["labels"])
        groups.append(pen["groups"])
        # The renderings of a drawing are consecutive: each epoch may train on a fresh choice.
        items.append(start + torch.arange(count) // renders)
        summaries.append(pen.get("summary", ""))
    out = {"images": torch.cat(images), "labels": torch.cat(labels), "classes": DIGIT_CLASSES,
           "parts": parts, "groups": torch.cat(groups),
           "summary": "\n".join(s for s in summaries if s)}
    # Writers are known for the pen digits only; a validation split holds them out whole.
    if a.train and HANDWRITING_PER_EPOCH:
        out.update(items=torch.cat(items), per_epoch=HANDWRITING_PER_EPOCH)
    return out


# ------------------------------------------------------------------------------------------------
# The datasets

_PEN_SOURCE = f"UCI Pen-Based Recognition of Handwritten Digits, UNIPEN files ({PENDIGITS_URL})"
_PEN_RENDERS = (f"each digit drawn {pens.PENDIGITS_RENDERS} times on the 400 px sketch canvas "
                "(random size, position and brush 6-30 px), then the app's sketch preprocessing")
_UNIPEN_SOURCE = f"UNIPEN train_r01_v07, section 1a ({UNIPEN_DOI})"

register(DatasetSpec(
    "mnist", "MNIST (digits)", _load_mnist, "sketch", 1, 28, tuple(DIGIT_CLASSES),
    MNIST_MEAN, MNIST_STD, "torchvision.datasets.MNIST (download)", "CC BY-SA 3.0",
    notes="60,000 train / 10,000 test handwritten digits"))
register(DatasetSpec(
    "fashion-mnist", "Fashion-MNIST (clothes)",
    _idx_loader("FashionMNIST", "FashionMNIST", FASHION_CLASSES), "greyscale", 1, 28,
    tuple(FASHION_CLASSES), (0.2860,), (0.3530,), "torchvision.datasets.FashionMNIST (download)",
    "MIT", augment="shift-flip", tta_flip=True,  # a mirrored shirt is a shirt
    notes="60,000 train / 10,000 test greyscale photos of clothes, light on a black ground"))
register(DatasetSpec(
    "cifar10", "CIFAR-10 (photos)", _load_cifar10, "photo", 3, 32, tuple(CIFAR10_CLASSES),
    (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616),
    "torchvision.datasets.CIFAR10 (download), or a JPEG copy in cifar10-jpeg/",
    "MIT-style (Krizhevsky, 2009)", notes="50,000 train / 10,000 test colour photos, 32x32"))
register(DatasetSpec(
    "pendigits", "Pen digits (30 writers)", load_pendigits, "sketch", 1, 28, tuple(DIGIT_CLASSES),
    MNIST_MEAN, MNIST_STD, _PEN_SOURCE, "CC BY 4.0",
    notes=f"7,494 training digits by 30 writers; {_PEN_RENDERS}. Test: pendigits-orig.tes when "
          f"present, else {PENDIGITS_TEST_SHARE:.0%} of the training file's writers (6 of 30), "
          "whole, chosen by the seed", pen_strokes=True))
register(DatasetSpec(
    "unipen", "UNIPEN digits (121 writers)", pens.load_unipen, "sketch", 1, 28,
    tuple(DIGIT_CLASSES), MNIST_MEAN, MNIST_STD, _UNIPEN_SOURCE, "CC BY 4.0",
    notes=f"13,376 isolated digits of 111 people (121 writer ids) at 13 sites, each digit brought "
          f"into one box ({_PEN_RENDERS}). Test: a fifth of the people, whole, by a hash of their "
          "names", pen_strokes=True))
register(DatasetSpec(
    "handwriting", "Handwriting (MNIST + pen digits + UNIPEN)", _load_handwriting, "sketch", 1,
    28, tuple(DIGIT_CLASSES), MNIST_MEAN, MNIST_STD,
    f"MNIST, {_PEN_SOURCE} and {_UNIPEN_SOURCE}", "CC BY-SA 3.0 and CC BY 4.0",
    notes=f"MNIST train + all pen digits of the training file + UNIPEN's training people "
          f"({_PEN_RENDERS}). Test: MNIST test, UNIPEN's test people and the pen-digit test file "
          "when present (each scored apart too)", pen_strokes=True))
register(DatasetSpec(
    "imagefolder", "Image folder", load_imagefolder, None, None, None, None, (0.5,), (0.25,),
    "a local folder: DIR/train/<class>/*, DIR/test/<class>/*, or DIR/<class>/* (split 80/20 by "
    "the seed)", "yours", folder=True,
    notes="resized to the image size asked for, greyscale (1 channel) or RGB (3)"))
