"""Dataset registry: a name maps to a `DatasetSpec` (what the data is, where it comes from) and its loader.

The CLI's choices, the Train tab, the recipes, the checkpoints' input kind and the tests read the specs; nothing
else knows a dataset's name, channel count or kind. Adding a dataset is one `register(DatasetSpec(...))` with its
loader function, which returns {"images": N,C,H,W uint8, "labels": N int64, "classes": [...]}.

    data = load_dataset("fashion-mnist", "train")   # core.data.ImageData
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .data import AUGMENTATIONS, INPUT_KINDS, DataError, ImageData, cached, default_data_root

__all__ = ["DatasetSpec", "LoadArgs", "register", "list_datasets", "get_dataset_spec", "load_dataset",
           "checkpoint_kind", "folder_kind", "FAST_MODEL", "FOLDER_INPUT", "FOLDER_RECORD", "CIFAR10_CLASSES",
           "FASHION_CLASSES", "PENDIGITS_RENDERS", "FOLDER_TEST_SHARE", "IMAGE_EXTENSIONS"]

DOWNLOAD_TIMEOUT_S = 20
IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]
DIGIT_CLASSES = [str(i) for i in range(10)]
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)

# Per input kind, unless a dataset's spec says otherwise: the augmentation, whether its models are scored on each
# image and its mirror image too (test-time augmentation; not where a mirrored input may be another class), and
# the fast model to train on it.
AUGMENT = {"sketch": "digits", "greyscale": "shift", "photo": "photos"}
TTA_FLIP = {"sketch": False, "greyscale": False, "photo": True}
FAST_MODEL = {"sketch": "digitnet", "greyscale": "digitnet", "photo": "cifarnet"}

PENDIGITS_URL = "https://archive.ics.uci.edu/static/public/81/pen+based+recognition+of+handwritten+digits.zip"
PENDIGITS_FILES = {"train": "pendigits-orig.tra", "test": "pendigits-orig.tes"}
PENDIGITS_RENDERS = 4  # random renderings of each pen digit, made once and cached
HANDWRITING_PER_EPOCH = 0  # handwriting training: renderings of each pen digit one epoch uses (0: all of them)
PENDIGITS_TEST_SHARE = 0.2  # without the test file: this share of whole writers held out (6 of 30), by the seed
# Image folders: the input (channels, size) a kind is read as unless asked otherwise, the share of each class held
# out for testing when the folder has no train/ and test/, and the file by which a folder records its kind.
FOLDER_INPUT = {"sketch": (1, 28), "greyscale": (1, 28), "photo": (3, 32)}
FOLDER_TEST_SHARE = 0.2
FOLDER_RECORD = "tinyvision.json"
FOLDER_CACHE_MIN = 2000
MAX_ARCHIVE_BYTES = 64 << 20  # a downloaded archive larger than this, or a member larger once unpacked, is refused


@dataclass(frozen=True)
class LoadArgs:
    """What a loader is asked for. `root` is the data folder (an image folder's own path for folder datasets)."""
    root: Path
    train: bool
    download: bool
    image_size: int | None  # folder datasets: None for the kind's default (FOLDER_INPUT)
    channels: int | None
    seed: int
    kind: str | None = None  # folder datasets: None for the folder's record (FOLDER_RECORD), else by channels


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    label: str  # for the UI
    loader: Callable[[LoadArgs], dict]
    kind: str | None  # an input kind (core.data.INPUT_KINDS); None: by channels (image folders)
    channels: int | None  # None: chosen when loading (image folders)
    size: int | None
    classes: tuple[str, ...] | None  # None: the folder's sub-folders
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str  # where it comes from: download URL, torchvision class, local folder
    licence: str
    augment: str | None = None  # None: the kind's (AUGMENT)
    tta_flip: bool | None = None  # None: the kind's (TTA_FLIP)
    folder: bool = False  # the data root is the dataset's own folder, given by the user
    notes: str = ""  # what a user should know: renders, splits

    def kind_for(self, channels: int | None = None) -> str:
        """The input kind of this dataset's images (for an image folder, of `channels`-channel images)."""
        return self.kind or _kind_by_channels(channels or self.channels)

    def augment_for(self, channels: int | None = None, kind: str | None = None) -> str:
        return self.augment or AUGMENT[kind or self.kind_for(channels)]

    def tta_flip_for(self, channels: int | None = None, kind: str | None = None) -> bool:
        return TTA_FLIP[kind or self.kind_for(channels)] if self.tta_flip is None else self.tta_flip


def _kind_by_channels(channels: int | None) -> str:
    """The kind of images nothing else is known about (a folder's): greyscale for one channel, else photo."""
    return "greyscale" if channels == 1 else "photo"


_REGISTRY: dict[str, DatasetSpec] = {}


def register(spec: DatasetSpec) -> None:
    """Add a dataset; a name that is taken is refused."""
    if spec.name in _REGISTRY:
        raise ValueError(f"a dataset named {spec.name!r} is registered already")
    if spec.kind is not None and spec.kind not in INPUT_KINDS:
        raise ValueError(f"dataset {spec.name!r}: kind must be one of {INPUT_KINDS}")
    if spec.augment is not None and spec.augment not in AUGMENTATIONS:
        raise ValueError(f"dataset {spec.name!r}: augment must be one of {AUGMENTATIONS}")
    _REGISTRY[spec.name] = spec


def list_datasets() -> list[str]:
    return list(_REGISTRY)


def get_dataset_spec(name: str) -> DatasetSpec:
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown dataset {name!r}; choose one of: {', '.join(_REGISTRY)}") from None


def load_dataset(name: str, split: str = "train", root: str | Path | None = None, download: bool = True,
                 image_size: int | None = None, channels: int | None = None, seed: int = 0,
                 kind: str | None = None) -> ImageData:
    """Load `split` ("train" or "test") of a registered dataset as uint8 tensors.

    `root` defaults to `TINYVISION_DATA` (or ./data). Downloadable datasets are fetched there when missing;
    offline, a missing dataset raises `DataError` naming the folder expected. For a folder dataset, root is the
    folder itself, and `kind`, `image_size` and `channels` say how to read its images (None: the defaults of
    FOLDER_INPUT; the other datasets ignore them).
    """
    spec = get_dataset_spec(name)
    if split not in ("train", "test"):
        raise ValueError("split must be 'train' or 'test'")
    if kind is not None and kind not in INPUT_KINDS:
        raise ValueError(f"unknown input kind {kind!r}; choose one of: {', '.join(INPUT_KINDS)}")
    root = Path(root).expanduser() if root is not None else default_data_root()
    data = spec.loader(LoadArgs(root, split == "train", download, image_size, channels, seed, kind))
    c = data["images"].shape[1]
    mean, std = (spec.mean, spec.std) if spec.channels else ((spec.mean[0],) * c, (spec.std[0],) * c)
    kind = data.get("kind") or spec.kind_for(c)
    return ImageData(data["images"], data["labels"], list(data["classes"]), mean, std, name, kind,
                     spec.augment_for(c, kind), spec.tta_flip_for(c, kind), data.get("parts", {}), data.get("groups"),
                     data.get("items"), data.get("per_epoch", 1))


def checkpoint_kind(meta: dict) -> str:
    """The input kind of a checkpoint's model: recorded since the registry exists, else its dataset's (files of
    older releases); a dataset this release does not know is judged by its channels, as a folder is."""
    if meta.get("kind") in INPUT_KINDS:
        return meta["kind"]
    spec = _REGISTRY.get(meta.get("dataset"))
    channels = meta["input_shape"][0]
    return spec.kind_for(channels) if spec is not None else _kind_by_channels(channels)


# ---------------------------------------------------------------------------------------------------------------
# Downloads

def _reachable(urls: list[str]) -> bool:
    """Whether one of `urls` answers within DOWNLOAD_TIMEOUT_S. torchvision's downloader sets no timeout of its own,
    so an offline machine is found out here first, with a timeout that belongs to this request alone."""
    for url in urls:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=DOWNLOAD_TIMEOUT_S):
                return True
        except urllib.error.HTTPError:
            return True  # the server answered; the download itself reports what it says
        except OSError:
            continue
    return False


def _offline(urls: list[str]) -> None:
    if not _reachable(urls):
        raise OSError(f"no download server answered within {DOWNLOAD_TIMEOUT_S} s (this machine looks offline)")


def _missing(what: str, root: Path, expected: str, exc: BaseException) -> DataError:
    return DataError(f"{what} not found under {root} (expected {expected}) and it could not be downloaded: {exc}. "
                     "Set --data-root or TINYVISION_DATA to a folder that has it.")


# ---------------------------------------------------------------------------------------------------------------
# Loaders

def _idx_loader(torchvision_class: str, folder: str, classes: list[str]) -> Callable[[LoadArgs], dict]:
    """MNIST-format idx files through torchvision (`root/<folder>/raw`), downloaded when missing."""
    def load(a: LoadArgs) -> dict:
        import torchvision.datasets

        cls = getattr(torchvision.datasets, torchvision_class)
        raw = a.root / folder / "raw"
        fetch = a.download and not (raw / "t10k-labels-idx1-ubyte").exists()
        try:
            if fetch:
                _offline([mirror + cls.resources[0][0] for mirror in cls.mirrors])
            ds = cls(str(a.root), train=a.train, download=fetch)
        except Exception as exc:
            raise _missing(folder, a.root, f"{raw}/{{train,t10k}}-{{images-idx3,labels-idx1}}-ubyte", exc) from None
        return {"images": ds.data.unsqueeze(1).contiguous(), "labels": ds.targets.long(), "classes": classes}
    return load


_load_mnist = _idx_loader("MNIST", "MNIST", DIGIT_CLASSES)


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


def _class_files(folder: Path) -> tuple[list[Path], list[int], list[str]]:
    """`_scan_folder`, refusing a folder that is not one sub-folder per class (at least two) with images."""
    files, labels, classes = _scan_folder(folder)
    if len(classes) < 2 or not files:
        raise DataError(f"{folder} must hold one sub-folder per class (at least two) with image files in them")
    return files, labels, classes


def _load_folder_split(folder: Path, size: int | None, channels: int) -> dict:
    files, labels, classes = _class_files(folder)
    return {"images": _read_image_files(files, size, channels), "labels": torch.tensor(labels), "classes": classes}


def _prepared_image(path: Path, kind: str, size: int) -> np.ndarray:
    """One file of a folder, prepared exactly as the app prepares what a user gives a model of this kind: a
    drawing's ink found, fitted and centred (28x28, then `size`), a picture centre-cropped and resized."""
    from .inference import InputError, picture_to_input, sketch_to_digit

    try:
        if kind != "sketch":
            return picture_to_input(path, kind, size)
        digit = sketch_to_digit(path)
    except InputError as exc:
        raise DataError(f"{path}: {exc}") from None
    if digit is None:
        raise DataError(f"{path}: nothing is drawn in this sketch (no dark strokes on a light ground)")
    t = torch.from_numpy(digit)[None, None]
    if size != t.shape[-1]:
        t = torch.nn.functional.interpolate(t, size=(size, size), mode="bilinear", antialias=True)
    return np.clip(t[0, 0].numpy() * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _read_folder(folder: Path, kind: str, size: int) -> dict:
    files, labels, classes = _class_files(folder)
    images = np.stack([_prepared_image(f, kind, size) for f in files])
    t = torch.from_numpy(images)
    return {"images": t.unsqueeze(1) if t.ndim == 3 else t.permute(0, 3, 1, 2).contiguous(),
            "labels": torch.tensor(labels), "classes": classes}


def _folder_images(folder: Path, kind: str, size: int) -> dict:
    """A folder's images, prepared; a large folder's are cached under a key that changes when a file does (a few
    hundred images read in about a second: those are not worth a cache entry)."""
    files = [f for f in sorted(folder.rglob("*")) if f.suffix.lower() in IMAGE_EXTENSIONS]
    if len(files) < FOLDER_CACHE_MIN:
        return _read_folder(folder, kind, size)
    h = hashlib.sha1(str(folder.resolve()).encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.relative_to(folder)}:{st.st_size}:{st.st_mtime_ns}".encode())
    return cached(f"folder:{h.hexdigest()}:{kind}:{size}", lambda: _read_folder(folder, kind, size))


def folder_kind(folder: Path) -> str | None:
    """The input kind a folder records for itself (FOLDER_RECORD, written with the app's own classes), if any."""
    try:
        kind = json.loads((Path(folder) / FOLDER_RECORD).read_text()).get("kind")
    except (OSError, ValueError, AttributeError):
        return None
    return kind if kind in INPUT_KINDS else None


def _stratified_split(labels: torch.Tensor, share: float, seed: int) -> torch.Tensor:
    """Whether each image is held out for testing: `share` of each class (rounded down, so a class of fewer than
    1/share images keeps all of them for training), chosen by the seed."""
    g = torch.Generator().manual_seed(seed)
    test = torch.zeros(len(labels), dtype=torch.bool)
    for c in torch.unique(labels):
        index = torch.nonzero(labels == c).flatten()
        test[index[torch.randperm(len(index), generator=g)[:int(len(index) * share)]]] = True
    return test


def _load_cifar10(a: LoadArgs) -> dict:
    jpeg = a.root / "cifar10-jpeg" / ("train" if a.train else "test")
    if not (a.root / "cifar-10-batches-py").exists() and jpeg.is_dir():
        data = cached(f"cifar10-jpeg:{jpeg.resolve()}", lambda: _load_folder_split(jpeg, 32, 3))
        if data["classes"] != CIFAR10_CLASSES:
            raise DataError(f"{jpeg} has classes {data['classes']}, expected CIFAR-10's {CIFAR10_CLASSES}")
        return data
    from torchvision.datasets import CIFAR10

    try:
        if a.download and not (a.root / CIFAR10.base_folder).is_dir():
            _offline([CIFAR10.url])
        ds = CIFAR10(str(a.root), train=a.train, download=a.download)
    except Exception as exc:
        raise _missing("CIFAR-10", a.root, f"{a.root}/cifar-10-batches-py, or JPEG copies in "
                       f"{a.root}/cifar10-jpeg/{{train,test}}/<class>/*.jpg", exc) from None
    images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
    return {"images": images, "labels": torch.tensor(ds.targets), "classes": list(ds.classes)}


def _load_imagefolder(a: LoadArgs) -> dict:
    if not a.root.is_dir():
        raise DataError(f"image folder {a.root} does not exist")
    kind = a.kind or folder_kind(a.root)
    channels = a.channels or (1 if kind in ("sketch", "greyscale") else 3)
    kind = kind or _kind_by_channels(channels)
    if channels != FOLDER_INPUT[kind][0]:
        raise DataError(f"{kind} images have {FOLDER_INPUT[kind][0]} channel(s), not {channels}: pass --channels "
                        f"{FOLDER_INPUT[kind][0]}" + (", or --kind greyscale" if kind == "photo" else ""))
    size = a.image_size or FOLDER_INPUT[kind][1]
    if (a.root / "train").is_dir() and (a.root / "test").is_dir():
        split_dir = a.root / ("train" if a.train else "test")
        return {**_folder_images(split_dir, kind, size), "kind": kind}
    # One folder of classes: a seeded, per-class 80/20 train/test split.
    data = _folder_images(a.root, kind, size)
    test = _stratified_split(data["labels"], FOLDER_TEST_SHARE, a.seed)
    keep = ~test if a.train else test
    return {"images": data["images"][keep], "labels": data["labels"][keep], "classes": data["classes"], "kind": kind}


# -- pen digits --------------------------------------------------------------------------------------------------

def _download_pendigits(folder: Path) -> None:
    """Fetch UCI's archive and unpack its UNIPEN files (`.Z`, Unix compress) into `folder`. The archive is checked
    before anything is written: its size, and that the members taken are the named files, of bounded size."""
    from .unipen import decompress

    _offline([PENDIGITS_URL])
    with urllib.request.urlopen(PENDIGITS_URL, timeout=DOWNLOAD_TIMEOUT_S) as response:
        body = response.read(MAX_ARCHIVE_BYTES + 1)
    if len(body) > MAX_ARCHIVE_BYTES:
        raise DataError(f"the pen-digits archive is larger than {MAX_ARCHIVE_BYTES >> 20} MB; refused")
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        members = {Path(info.filename).name: info for info in archive.infolist() if not info.is_dir()}
        for name in PENDIGITS_FILES.values():
            info = members.get(name + ".Z")
            if info is None or info.file_size > MAX_ARCHIVE_BYTES:
                continue
            text = decompress(archive.read(info))
            if len(text) > 4 * MAX_ARCHIVE_BYTES:
                raise DataError(f"{name} unpacks to more than {4 * MAX_ARCHIVE_BYTES >> 20} MB; refused")
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".{name}.{os.getpid()}.tmp"
            tmp.write_bytes(text)
            os.replace(tmp, folder / name)
    if not (folder / PENDIGITS_FILES["train"]).is_file():
        raise DataError(f"the pen-digits archive holds no {PENDIGITS_FILES['train']}.Z")


def _pen_file(a: LoadArgs, split: str) -> Path | None:
    """The UNIPEN file of `split` ("train" or "test"), fetched when the training file is missing and allowed."""
    folder = a.root / "pendigits"
    path = folder / PENDIGITS_FILES[split]
    if split == "train" and not path.is_file():
        try:
            if not a.download:
                raise OSError("downloads are off")
            _download_pendigits(folder)
        except (OSError, zipfile.BadZipFile, ValueError) as exc:
            raise _missing("pen digits", a.root, f"{path} (UNIPEN text, from UCI's archive)", exc) from None
    return path if path.is_file() else None


def _render_digits(strokes_list: list, renders: int, seed: int) -> np.ndarray:
    """Render `renders` random drawings of each digit's strokes and preprocess them like a sketch: (n*r, 28, 28)."""
    from .inference import sketch_to_digit
    from .strokes import random_render

    rng = np.random.default_rng(seed)
    out = np.zeros((len(strokes_list) * renders, 28, 28), np.uint8)
    for i, strokes in enumerate(strokes_list):
        for r in range(renders):
            digit = sketch_to_digit({"composite": random_render(strokes, rng)})
            if digit is not None:
                out[i * renders + r] = np.clip(digit * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return out


def _rendered_pen_file(path: Path, renders: int) -> dict:
    """Every digit of a UNIPEN file drawn `renders` times, as the sketchpad and its preprocessing would make it;
    cached. Deterministic: the random renderings come from one seeded generator."""
    from .unipen import parse

    def build() -> dict:
        digits = parse(path.read_text(errors="replace"))
        # About 2 ms a drawing on one core (threads gain nothing; processes would re-import the app): a minute for
        # the 30 writers' file, once.
        images = _render_digits([d["strokes"] for d in digits], renders, seed=0)
        per_digit = torch.tensor([[d["label"], d["writer"]] for d in digits]).repeat_interleave(renders, dim=0)
        return {"images": torch.from_numpy(images).unsqueeze(1), "labels": per_digit[:, 0],
                "writers": per_digit[:, 1]}
    stat = path.stat()
    return cached(f"pendigits:{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}:{renders}", build)


def _load_pendigits(a: LoadArgs) -> dict:
    train_file, test_file = _pen_file(a, "train"), _pen_file(a, "test")
    if test_file is not None:
        data = _rendered_pen_file(train_file if a.train else test_file, PENDIGITS_RENDERS)
        return {"images": data["images"], "labels": data["labels"], "classes": DIGIT_CLASSES,
                "groups": data["writers"]}
    data = _rendered_pen_file(train_file, PENDIGITS_RENDERS)
    writers = torch.unique(data["writers"])
    held_out = writers[torch.randperm(len(writers), generator=torch.Generator().manual_seed(a.seed))]
    held_out = held_out[:max(1, round(len(writers) * PENDIGITS_TEST_SHARE))]
    test = torch.isin(data["writers"], held_out)
    keep = ~test if a.train else test
    return {"images": data["images"][keep], "labels": data["labels"][keep], "classes": DIGIT_CLASSES,
            "groups": data["writers"][keep]}


def _load_handwriting(a: LoadArgs) -> dict:
    mnist = _load_mnist(a)
    parts = {"mnist": (0, len(mnist["labels"]))}
    if a.train:
        pen = _rendered_pen_file(_pen_file(a, "train"), PENDIGITS_RENDERS)
    else:
        test_file = _pen_file(a, "test")
        if test_file is None:
            return {**mnist, "parts": parts}
        pen = _rendered_pen_file(test_file, PENDIGITS_RENDERS)
    parts["pendigits"] = (len(mnist["labels"]), len(mnist["labels"]) + len(pen["labels"]))
    # Writers are known for the pen digits only; a validation split holds them out whole (core.data).
    no_one = torch.full((len(mnist["labels"]),), -1, dtype=torch.long)
    out = {"images": torch.cat([mnist["images"], pen["images"]]), "labels": torch.cat([mnist["labels"],
           pen["labels"]]), "classes": DIGIT_CLASSES, "parts": parts,
           "groups": torch.cat([no_one, pen["writers"]])}
    if a.train and 0 < HANDWRITING_PER_EPOCH < PENDIGITS_RENDERS:
        # The renderings of a digit are consecutive: each epoch trains on a fresh choice among them.
        drawing = torch.arange(len(pen["labels"])) // PENDIGITS_RENDERS
        out.update(items=torch.cat([no_one, drawing]), per_epoch=HANDWRITING_PER_EPOCH)
    return out


# ---------------------------------------------------------------------------------------------------------------
# The datasets

_PEN_SOURCE = f"UCI Pen-Based Recognition of Handwritten Digits, UNIPEN files ({PENDIGITS_URL})"
_PEN_RENDERS = (f"each digit drawn {PENDIGITS_RENDERS} times on the 400 px sketch canvas (random size, position and "
                "brush 6-30 px), then the app's sketch preprocessing")

register(DatasetSpec(
    "mnist", "MNIST (digits)", _load_mnist, "sketch", 1, 28, tuple(DIGIT_CLASSES),
    MNIST_MEAN, MNIST_STD, "torchvision.datasets.MNIST (download)", "CC BY-SA 3.0",
    notes="60,000 train / 10,000 test handwritten digits"))
register(DatasetSpec(
    "fashion-mnist", "Fashion-MNIST (clothes)", _idx_loader("FashionMNIST", "FashionMNIST", FASHION_CLASSES),
    "greyscale", 1, 28,
    tuple(FASHION_CLASSES), (0.2860,), (0.3530,), "torchvision.datasets.FashionMNIST (download)", "MIT",
    augment="shift-flip", tta_flip=True,  # a mirrored shirt is a shirt
    notes="60,000 train / 10,000 test greyscale photos of clothes, light on a black ground"))
register(DatasetSpec(
    "cifar10", "CIFAR-10 (photos)", _load_cifar10, "photo", 3, 32, tuple(CIFAR10_CLASSES),
    (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616),
    "torchvision.datasets.CIFAR10 (download), or a JPEG copy in cifar10-jpeg/", "MIT-style (Krizhevsky, 2009)",
    notes="50,000 train / 10,000 test colour photos, 32x32"))
register(DatasetSpec(
    "pendigits", "Pen digits (30 writers)", _load_pendigits, "sketch", 1, 28, tuple(DIGIT_CLASSES),
    MNIST_MEAN, MNIST_STD, _PEN_SOURCE, "CC BY 4.0",
    notes=f"7,494 training digits by 30 writers; {_PEN_RENDERS}. Test: pendigits-orig.tes when present, else "
          f"{PENDIGITS_TEST_SHARE:.0%} of the training file's writers (6 of 30), whole, chosen by the seed"))
register(DatasetSpec(
    "handwriting", "Handwriting (MNIST + pen digits)", _load_handwriting, "sketch", 1, 28, tuple(DIGIT_CLASSES),
    MNIST_MEAN, MNIST_STD, f"MNIST and {_PEN_SOURCE}", "CC BY-SA 3.0 and CC BY 4.0",
    notes=f"MNIST train + all pen digits of the training file ({_PEN_RENDERS}). Test: MNIST test, plus the "
          "pen-digit test file's renders when present (scored apart too)"))
register(DatasetSpec(
    "imagefolder", "Image folder", _load_imagefolder, None, None, None, None, (0.5,), (0.25,),
    "a local folder: DIR/train/<class>/*, DIR/test/<class>/*, or DIR/<class>/* (split 80/20 by the seed)",
    "yours", folder=True, notes="resized to the image size asked for, greyscale (1 channel) or RGB (3)"))
