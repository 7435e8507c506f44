"""Bad input through the API: a generated corpus for both predictors, and refused training requests.

    python -m bench.bad_inputs [--variants 8] [--data-root DIR]

The corpus (empty files, all-white, all-black, 1x1, 10000x10000, 16-bit, CMYK, palette, animated
GIF, truncated JPEG, random bytes named .png, SVG, a decompression bomb, wrong types, unknown
models) is written to a temp dir and sent with gradio_client to an app started as `python app.py` in
a subprocess (bench.serving.start_app). Every answer is judged: a prediction, the empty-input
prompt, a clear error (the refusal says what is wrong: it matches the category's message) or unclear
(any other error, a timeout, a traceback). After the corpus the app must still answer a real
prediction. Then bad training requests go to /train (out of range, unknown names, a folder outside
--allow-folders), bad checkpoint files to the page's upload event (code in a pickle, truncated,
another architecture) and bad archives of your own classes to /train_own (not a zip, a zip bomb,
unsafe paths, links, nested archives, too many classes, bad names, no usable images): each must be
refused with its message, run nothing and write nothing. Last, attacks of bench.attacks: a stopped
tiny run's checkpoint whose stored config asks for an enormous model must resume as the small model
it holds, uploads over the size limit must be refused (413), and the app's log must show each
refusal on one line, and no traceback or warning.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bench.latency import print_table
from bench.serving import ROOT, PageSession, api_client, running_app

DIGIT, PHOTO = "/predict_digit", "/classify_image"
PROMPTS = ("Draw a digit", "Upload a photo")
UNREADABLE = (
    "not an image Pillow can read|could not be decoded|the file is empty|cannot identify|truncated"
)
TOO_LARGE = "too large|larger than|decompression bomb"
NEVER = r"(?!)"  # a category that must be answered, never refused: any error is unclear
HEAVY_VARIANTS = 2  # 10000x10000 and bomb files: each is 100+ MB of pixels once decoded
TIMEOUT_S = 120


@dataclass
class Case:
    category: str
    endpoint: str
    args: tuple  # what the client sends: (input, model)
    refusal: str  # regex a clear refusal of this input matches
    # False: a prediction is a wrong answer (the input is not an image that was sent)
    may_predict: bool = True


# ------------------------------------------------------------------------------------------------
# Files

def drawn(i: int, size: int = 400) -> np.ndarray:
    """A black digit-like stroke ("1", "7" or "L" by variant) on white, RGB uint8."""
    a = np.full((size, size, 3), 255, np.uint8)
    s = size // 10
    x = 3 * s + (i % 3) * s // 2
    a[2 * s:8 * s, x:x + s] = 0
    if i % 3 == 1:
        a[2 * s:3 * s, x - 3 * s:x + s] = 0
    elif i % 3 == 2:
        a[7 * s:8 * s, x:x + 3 * s] = 0
    return a


def _png_stream(path: Path, width: int, height: int, bit_depth: int, row: bytes) -> Path:
    """A greyscale PNG of `height` identical rows, compressed as it is written (never held decoded
    in memory)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4,
                                                                                             "big")

    z = zlib.compressobj(9)
    line = b"\0" + row
    body = b"".join(z.compress(line * 256) for _ in range(height // 256))
    body += z.compress(line * (height % 256)) + z.flush()
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([bit_depth, 0, 0, 0, 0])
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT",
                                                                           body) + chunk(b"IEND",
                                                                                         b""))
    return path


def _plain(value: int) -> Callable[[Path, int], Path]:
    modes = ("RGB", "RGBA", "L", "RGB")
    sizes = (400, 28, 1000, 64, 8, 300, 512, 97)

    def make(path: Path, i: int) -> Path:
        mode = modes[i % len(modes)]
        colour = (value,) * len(mode) if mode != "RGBA" else (value, value, value, 255)
        out = path.with_suffix(".png" if i % 2 == 0 else ".jpg" if mode != "RGBA" else ".webp")
        Image.new(mode, (sizes[i % len(sizes)],) * 2, colour).save(out)
        return out
    return make


def _empty(path: Path, i: int) -> Path:
    out = path.with_suffix((".png", ".jpg", ".gif", ".webp")[i % 4])
    out.write_bytes(b"")
    return out


def _one_pixel(path: Path, i: int) -> Path:
    out = path.with_suffix((".png", ".jpg", ".gif", ".bmp")[i % 4])
    Image.new(("RGB", "L", "RGB", "RGB")[i % 4], (1, 1), (i * 37 % 256,
                                                          ) * (1 if i % 4 == 1 else 3)).save(out)
    return out


def _huge(path: Path, i: int) -> Path:
    return _png_stream(path.with_suffix(".png"), 10_000, 10_000, 8, bytes([255 - 40 * i]) * 10_000)


def _bomb(path: Path, i: int) -> Path:
    side = 30_000 + 10_000 * i  # 0.9+ gigapixels of zeros in a few hundred KB
    return _png_stream(path.with_suffix(".png"), side, side, 1, bytes(side // 8))


def _sixteen_bit(path: Path, i: int) -> Path:
    grey = drawn(i)[..., 0].astype(np.uint16) * (257 - i % 2 * 200)
    out = path.with_suffix(".png")
    Image.fromarray(grey).save(out)
    return out


def _cmyk(path: Path, i: int) -> Path:
    out = path.with_suffix(".jpg" if i % 2 == 0 else ".tif")
    Image.fromarray(drawn(i)).convert("CMYK").save(out)
    return out


def _palette(path: Path, i: int) -> Path:
    out = path.with_suffix(".png" if i % 2 == 0 else ".gif")
    Image.fromarray(drawn(i)).convert("P", palette=Image.Palette.ADAPTIVE, colors=2 + i).save(out)
    return out


def _animated(path: Path, i: int) -> Path:
    frames = [Image.fromarray(drawn(i + k)) for k in range(2 + i % 3)]
    out = path.with_suffix(".gif")
    frames[0].save(out, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return out


def _truncated(path: Path, i: int) -> Path:
    source = sorted((ROOT / "examples" / "photos").glob("*.jpg"))[i % 2]
    raw = source.read_bytes()
    out = path.with_suffix(".jpg")
    # From inside the header to 80% of the data
    out.write_bytes(raw[: max(20, len(raw) * (i + 1) // 10)])
    return out


def _random_bytes(path: Path, i: int) -> Path:
    rng = np.random.default_rng(i)
    prefix = b"\x89PNG\r\n\x1a\n" if i % 2 else b""  # half of them even start like a PNG
    out = path.with_suffix(".png")
    out.write_bytes(prefix + rng.integers(0, 256, 64 << i % 8, dtype=np.uint8).tobytes())
    return out


def _svg(path: Path, i: int) -> Path:
    side = (100, 400, 10 ** 6)[i % 3]
    out = path.with_suffix(".svg")
    out.write_text(f'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="{side}" '
                   f'height="{side}"><rect width="100%" height="100%" fill="white"/><path d="M40 '
                   f'20 L40 80" stroke="black" stroke-width="{4 + i}"/></svg>')
    return out


# category -> (file maker, refusal regex, variants cap or None)
FILES: dict[str, tuple[Callable[[Path, int], Path], str, int | None]] = {
    "empty file": (_empty, UNREADABLE, None),
    "all-white": (_plain(255), NEVER, None),
    "all-black": (_plain(0), NEVER, None),
    "1x1": (_one_pixel, r"1x1 pixels", None),
    "10000x10000": (_huge, TOO_LARGE, HEAVY_VARIANTS),
    "16-bit": (_sixteen_bit, NEVER, None),
    "CMYK": (_cmyk, NEVER, None),
    "palette": (_palette, NEVER, None),
    "animated GIF": (_animated, NEVER, None),
    "truncated JPEG": (_truncated, UNREADABLE, None),
    "random bytes .png": (_random_bytes, UNREADABLE, None),
    "SVG": (_svg, UNREADABLE, None),
    "decompression bomb": (_bomb, TOO_LARGE, HEAVY_VARIANTS),
}

# Gradio's own validation refuses these before any handler runs; the app answers in its own words
# (app.py, UNREADABLE_INPUT), never with Gradio's text of the error.
WRONG_TYPE = r"expected an (uploaded )?image|must be an image"
# category -> (values sent as the image input, refusal regex); the first value of each is the
# reduced corpus's
WRONG_TYPES: dict[str, tuple[list, str]] = {
    "number": ([12345, 0, -1.5, 1e308, True], WRONG_TYPE),
    "string": (
        [
            "not an image",
            "",
            "../../../etc/passwd",
            "x" * 5000,
            "data:image/png;base64,iVBORw0KGgo=",
        ],
        WRONG_TYPE,
    ),
    "None": ([None], "^$"),  # the empty-input prompt, never an error
    "wrong structure": (
        [
            {"path": str(ROOT / "examples" / "photos" / "cat.jpg")},
            [1, 2],
            {},
            {"composite": 5, "layers": "x"},
            {"path": "/etc/hostname"},
        ],
        WRONG_TYPE,
    ),
}
BAD_MODELS = [42, "no-such-model", "../checkpoints/mnist-digitnet", ""]
MODEL_REFUSAL = "unknown model|not in the list of choices|choose one of"


def make_corpus(workdir: Path, variants: int = 8) -> list[Case]:
    """Write the corpus under workdir and return its cases for both endpoints (variants=1: one of
    each kind)."""
    from gradio_client import handle_file

    workdir.mkdir(parents=True, exist_ok=True)
    cases = []
    for category, (make, refusal, cap) in FILES.items():
        for i in range(min(variants, cap or variants)):
            f = handle_file(
                str(make(workdir / f"{re.sub(r'[^a-z0-9]+', '-', category.lower())}-{i}", i))
            )
            cases += [Case(category, DIGIT, ({"background": f, "layers": [], "composite": f}, None),
                           refusal), Case(category, PHOTO, (f, None), refusal)]
    for category, (values, refusal) in WRONG_TYPES.items():
        for value in values[:variants]:
            cases += [Case(category, DIGIT, (value, None), refusal, False),
                      Case(category, PHOTO, (value, None), refusal, False)]
            if isinstance(value, (int, str)) and variants > 1:  # the same, as the sketch's layers
                cases.append(Case(category, DIGIT, ({"background": value, "layers": [],
                                                     "composite": value}, None), refusal, False))
    photo = handle_file(str(sorted((ROOT / "examples" / "photos").glob("*.jpg"))[0]))
    digit = handle_file(str(_plain(255)(workdir / "model-white", 0)))
    for model in BAD_MODELS[:variants]:
        cases += [Case("unknown model", DIGIT, ({"background": digit, "layers": [],
                                                 "composite": digit}, model), MODEL_REFUSAL,
                       False), Case("unknown model", PHOTO, (photo, model), MODEL_REFUSAL, False)]
    return cases


def judge(case: Case, outcome: Any) -> str:
    """'prediction', 'prompt', 'clear error' or 'unclear' for what the app answered (a result or an
    exception)."""
    from gradio_client.exceptions import AppError

    if isinstance(outcome, AppError):
        message = str(outcome)
        clear = message and "Traceback" not in message and re.search(case.refusal, message, re.I)
        return "clear error" if clear else "unclear"
    if isinstance(outcome, BaseException):
        return "unclear"
    label, _, status = outcome
    if isinstance(label, dict) and label.get("confidences"):
        return "prediction" if case.may_predict else "unclear"
    return "prompt" if any(p in status for p in PROMPTS) else "unclear"


def send(client, case: Case) -> Any:
    try:
        return client.submit(*case.args, api_name=case.endpoint).result(timeout=TIMEOUT_S)
    except Exception as exc:  # judged, never hidden: every exception is an outcome
        return exc


def healthy(client, workdir: Path) -> bool:
    """The app still answers a real drawn digit correctly."""
    from gradio_client import handle_file

    path = workdir / "healthy.png"
    Image.fromarray(drawn(0)).save(path)
    f = handle_file(str(path))
    label, _, _ = client.predict({"background": f, "layers": [], "composite": f}, None,
                                 api_name=DIGIT)
    return label["label"] == "1"


def run_corpus(client, proc, cases: list[Case]) -> tuple[list[dict], list[str]]:
    """Send every case; rows per category and the details of every unclear answer. Stops at a server
    crash."""
    counts: dict[str, Counter] = {}
    unclear = []
    for case in cases:
        outcome = send(client, case)
        verdict = "crash" if proc.poll() is not None else judge(case, outcome)
        counts.setdefault(case.category, Counter())[verdict] += 1
        # An unclear error, a timeout, or a prediction from a non-image
        if verdict in ("unclear", "crash"):
            unclear.append(f"{case.category} {case.endpoint} {str(case.args)[:120]}: "
                           f"{str(outcome)[:300]!r}")
        if verdict == "crash":
            break
    rows = [
        {
            "category": c,
            "count": sum(n.values()),
            **{k: n[k] for k in ("prediction", "prompt", "clear error", "unclear", "crash")},
        }
        for c, n in counts.items()
    ]
    return rows, unclear


# ------------------------------------------------------------------------------------------------
# Training requests and checkpoint uploads

def checkpoint_hashes(folder: Path = ROOT / "checkpoints") -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.pt"))}


def folder_root(workdir: Path) -> Path:
    """An allowed folder root with one tiny image-folder dataset, a secret folder beside it and a
    symlink out."""
    allowed, secret = workdir / "allowed", workdir / "secret"
    for label in ("a", "b"):
        (allowed / "shapes" / label).mkdir(parents=True, exist_ok=True)
        Image.fromarray(drawn(0 if label == "a" else 1,
                              16)).save(allowed / "shapes" / label / "0.png")
    (secret / "a").mkdir(parents=True, exist_ok=True)
    if not (allowed / "escape").is_symlink():
        (allowed / "escape").symlink_to(secret)
    return allowed


# (request changes, refusal regex): the fast preset with one bad value each
OUT_OF_RANGE = r"must be a number between|greater than|less than|maximum|minimum"
NOT_A_CHOICE = r"not in the list of choices|unknown (model|dataset|optimizer)"
OUTSIDE = "outside the allowed folder"
TRAIN_REFUSALS: list[tuple[dict, str]] = [
    (dict(epochs=10 ** 6), OUT_OF_RANGE),
    (dict(batch_size=0), OUT_OF_RANGE),
    (dict(lr=-1.0), OUT_OF_RANGE),
    (dict(val_split=0.9), OUT_OF_RANGE),
    (dict(max_steps=-5), OUT_OF_RANGE),
    (dict(max_seconds=1e12), OUT_OF_RANGE),
    (dict(model="resnet"), NOT_A_CHOICE),
    (dict(model="../../core/models"), NOT_A_CHOICE),
    (dict(dataset="imagenet"), NOT_A_CHOICE),
    (dict(optimizer="lbfgs"), NOT_A_CHOICE),
    (dict(dataset="imagefolder", model="lenet", folder="../secret"), OUTSIDE),
    (dict(dataset="imagefolder", model="lenet", folder="/etc"), OUTSIDE),
    (dict(dataset="imagefolder", model="lenet", folder="shapes/../../secret"), OUTSIDE),
    (dict(dataset="imagefolder", model="lenet", folder="escape"), OUTSIDE),
]


class _OpensAFile:
    """Unpickling this creates `marker`: proof that a loader ran code from the file."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


# Bad checkpoint uploads (bad_checkpoints builds the files) and the refusal each must get
BAD_CHECKPOINTS = {"pickle with code": "Python objects other than tensors",
                   "truncated file": "not a readable checkpoint",
                   "text file": "not a readable checkpoint",
                   "other architecture": "do not fit model 'digitnet'",
                   "unknown model": "unknown model 'resnet'",
                   "enormous model": "parameters; at most",
                   "hollow tensors": "larger than the data stored",
                   "download on load": "not a dict of architecture settings"}


def bad_checkpoints(workdir: Path, marker: Path) -> dict[str, tuple[Path, str]]:
    """Checkpoint files a visitor might upload, each with the refusal it must get: name -> (file,
    regex).

    Loading "pickle with code" unsafely would create `marker`.
    """
    import torch

    from core import checkpoint as ckpt
    from core import models

    workdir.mkdir(parents=True, exist_ok=True)
    shipped = ROOT / "checkpoints" / "mnist-digitnet.pt"
    meta = {k: v for k, v in ckpt.load_checkpoint(shipped).items() if k not in ("state_dict",
                                                                                "train_state")}
    lenet = models.create_model("lenet", 10, 1, 28).state_dict()
    digitnet = models.create_model("digitnet").state_dict()
    files = {"pickle with code": workdir / "pickle-with-code.pt",
             "truncated file": workdir / "truncated.pt", "text file": workdir / "notes.pt"}
    torch.save({**meta, "state_dict": {}, "hook": _OpensAFile(marker)}, files["pickle with code"])
    files["truncated file"].write_bytes(shipped.read_bytes()[:4096])
    files["text file"].write_text("not a checkpoint")
    for name, changes, weights in [
        ("other architecture", {}, lenet),
        ("unknown model", {"model": "resnet"}, lenet),
        # a claimed million-channel net: checked on the meta device, never allocated
        ("enormous model", {"model_kwargs": {"widths": [10**6] * 3}}, digitnet),
        # a pretrained flag would make building the model download weights
        ("download on load", {"model": "alexnet", "model_kwargs": {"pretrained": True}}, lenet),
        # one stored number per weight "expanded" to its shape: a few KB that would build the net
        ("hollow tensors", {}, {k: torch.zeros((), dtype=v.dtype).expand(v.shape)
                                for k, v in digitnet.items()}),
    ]:
        files[name] = ckpt.save_checkpoint(workdir / f"{name.replace(' ', '-')}.pt", {**meta,
                                                                                      **changes},
                                           weights)
    return {name: (files[name], refusal) for name, refusal in BAD_CHECKPOINTS.items()}


# Bad archives sent to /train_own (bad_archives builds the files) and the refusal each must get
BAD_ARCHIVES = {"not a zip": "not a .zip archive", "zip bomb": "times its packed size",
                "path with ..": "unsafe path", "absolute path": "unsafe path",
                "symbolic link": "symbolic link", "nested zip": "another archive",
                "no class folders": "not in class folders", "one class only": "at least 2 classes",
                "a class without images": "class folder.s. without images",
                "10,000 classes": "entries; at most", "name of 1,000 characters": "class name",
                "1x1 images only": "images that are too small"}


def zip_of(path: Path, entries: dict[str, bytes], links: tuple[str, ...] = ()) -> Path:
    """A .zip of `entries` (name -> bytes, deflated); the names in `links` are stored as symbolic
    links."""
    import stat
    import zipfile

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            if name in links:
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, data)
    return path


def bad_archives(workdir: Path) -> dict[str, tuple[Path, str]]:
    """Archives a visitor might send for their own classes: name -> (file, regex of the refusal it
    must get)."""
    import io

    workdir.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    Image.fromarray(drawn(0, 64)).save(buf, format="PNG")
    png = buf.getvalue()
    tiny = io.BytesIO()
    Image.new("RGB", (1, 1)).save(tiny, format="PNG")
    entries = {"zip bomb": {"a/x.png": bytes(64 << 20)}, "path with ..": {"../../evil/x.png": png},
               "absolute path": {"/tmp/evil/x.png": png},
               "symbolic link": {"a/x.png": b"/etc/passwd"},
               "nested zip": {"a/inner.zip": b"PK\x05\x06" + bytes(18)},
               "no class folders": {"x.png": png}, "one class only": {"a/x.png": png,
                                                                      "a/y.png": png},
               "a class without images": {"a/x.png": png, "b/notes.txt": b"hello"},
               "10,000 classes": {f"c{i}/x.png": b"" for i in range(10_000)},
               "name of 1,000 characters": {"n" * 1000 + "/x.png": png, "b/x.png": png},
               "1x1 images only": {"a/x.png": tiny.getvalue(), "b/x.png": tiny.getvalue()}}
    files = {"not a zip": workdir / "not-a-zip.zip"}
    files["not a zip"].write_bytes(b"PK\x03\x04 but not a zip")
    for name, members in entries.items():
        links = tuple(members) if name == "symbolic link" else ()
        files[name] = zip_of(workdir / f"{re.sub(r'[^a-z0-9]+', '-', name)}.zip", members, links)
    return {name: (files[name], refusal) for name, refusal in BAD_ARCHIVES.items()}


def archive_refusals(url: str, workdir: Path) -> list[dict]:
    """Each bad archive sent to /train_own (photo kind, transfer); rows as training_refusals' and a
    last row that checks nothing was written outside the visitors' folders (the archives' own paths)
    and none is left behind."""
    from gradio_client import handle_file

    client = api_client(url)
    rows = []
    for name, (path, refusal) in bad_archives(workdir / "archives").items():
        try:
            accepted = client.predict(handle_file(str(path)), "photo", "transfer",
                                      api_name="/train_own")
            answer, clear = f"accepted: {accepted!r:.200}", False
        except Exception as exc:  # judged below: only a refusal with the expected message is clear
            answer = str(exc)
            clear = "Traceback" not in answer and bool(re.search(refusal, answer, re.I))
        rows.append({"request": f"/train_own: {name}",
                     "answer": answer.splitlines()[0][:160] if answer else "",
                     "clear refusal": clear})
    escaped = [str(p) for p in (workdir / "evil", Path("/tmp/evil")) if p.exists()]
    left = sorted(str(p) for p in (workdir / "runs" / "classes").rglob("*.png"))
    rows.append({"request": "(after all) files written outside, or left behind",
                 "answer": str(escaped + left), "clear refusal": not escaped and not left})
    return rows


def page_event(url: str, elem_id: str, trigger: str, inputs: list[Any],
               files: dict[int, Path] | None = None,
               timeout: float = TIMEOUT_S) -> tuple[bool, Any]:
    """Run a page event the way the browser does (HTTP upload + queue), also one hidden from
    gradio_client.

    `files` maps input positions to local files that are uploaded first. Returns (success, output or
    error).
    """
    with PageSession(url, timeout) as page:
        inputs = list(inputs)
        for position, path in (files or {}).items():
            inputs[position] = page.upload(path)
        return page.call(page.event(elem_id=elem_id, trigger=trigger), inputs)


def training_refusals(url: str, workdir: Path, cases: list[tuple[dict, str]] = TRAIN_REFUSALS,
                      uploads: list[str] | None = None) -> list[dict]:
    """Bad /train requests through gradio_client and bad checkpoint uploads through the page's
    upload event.

    Each row: what was sent, the answer, and whether it was a clear refusal. The app must have been
    started with `--allow-folders folder_root(workdir)`; `uploads` picks bad_checkpoints() by name
    (default: all).
    """
    client = api_client(url)
    rows = []
    for change, refusal in cases:
        try:
            answer, clear = f"accepted: {client.predict(api_name='/train', **change)!r:.200}", False
        except Exception as exc:  # judged below: only a refusal with the expected message is clear
            answer = str(exc)
            clear = "Traceback" not in answer and bool(re.search(refusal, answer, re.I))
        rows.append({"request": "/train " + ", ".join(f"{k}={v!r}" for k, v in change.items()),
                     "answer": answer.splitlines()[0][:160] if answer else "",
                     "clear refusal": clear})
    marker = workdir / "code-ran"
    files = bad_checkpoints(workdir / "uploads", marker)
    for name in uploads or list(files):
        path, refusal = files[name]
        success, answer = page_event(url, "train-upload", "upload", [None, None], files={0: path})
        answer = str(answer)
        rows.append({"request": f"upload checkpoint: {name}",
                     "answer": answer.splitlines()[0][:160],
                     "clear refusal": not success and bool(re.search(refusal, answer, re.I))})
    rows.append({"request": "(after all) code from a pickle ran", "answer": str(marker.exists()),
                 "clear refusal": not marker.exists()})
    return rows


def attack_rows(proc, url: str, workdir: Path) -> list[dict]:
    """bench.attacks' tampered resume and oversized uploads against this app, then its log. Each
    row: the attack, the answer, and whether it did no harm."""
    from bench.attacks import (
        App,
        log_clean,
        log_lines,
        oversized_resume,
        oversized_uploads,
        stopped_run,
    )
    from core.services.settings import MAX_UPLOAD_MB

    app = App(proc, url, workdir)
    with app.page() as page:
        checkpoint, _ = stopped_run(app, page)
    rows = oversized_resume(app, checkpoint) + oversized_uploads(url, MAX_UPLOAD_MB)
    log = log_lines(workdir / "app.log")
    rows.append({"attack": "(after all) the app's log: each refusal one line, no traceback or "
                           "warning", "answer": json.dumps(log), "harmless": log_clean(log)})
    return rows


def run_files(workdir: Path) -> list[str]:
    """Files inside the app's run folders: a refused request must leave none."""
    return sorted(
        str(p.relative_to(workdir)) for p in (workdir / "runs").glob("run-*/**/*") if p.is_file()
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", type=int, default=8,
                   help="files per category (heavy categories: at most 2)")
    p.add_argument("--data-root", default=None)
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        t0 = time.perf_counter()
        cases = make_corpus(workdir / "corpus", args.variants)
        print(f"corpus: {len(cases)} requests generated in {time.perf_counter() - t0:.1f} s")
        before = checkpoint_hashes()
        allowed = folder_root(workdir)
        with running_app(args.data_root, workdir, ("--allow-folders", str(allowed)),
                         workdir / "app.log") as (proc, url):
            client = api_client(url)
            t0 = time.perf_counter()
            rows, unclear = run_corpus(client, proc, cases)
            seconds = time.perf_counter() - t0
            alive = proc.poll() is None and healthy(client, workdir)
            refusals = training_refusals(url, workdir) + archive_refusals(url,
                                                                          workdir) if alive else []
            leftovers = run_files(workdir)
            attacks = attack_rows(proc, url, workdir) if alive else []
        untouched = checkpoint_hashes() == before

    print(f"\nBad inputs through gradio_client ({len(cases)} requests, {seconds:.0f} s)\n")
    keys = ["count", "prediction", "prompt", "clear error", "unclear", "crash"]
    total = {k: sum(r[k] for r in rows) for k in keys}
    print_table(
        [
            "category",
            "inputs",
            "predictions",
            "empty-input prompts",
            "clear errors",
            "unclear or wrong answers",
            "server crashes",
        ],
        [[r["category"], *(r[k] for k in keys)] for r in rows]
        + [["**total**", *(f"**{total[k]}**" for k in keys)]],
    )
    print(f"\napp serving afterwards (a drawn 1 read as 1): {alive}")
    for line in unclear:
        print("  unclear:", line)
    print("\nBad training requests (/train), checkpoint uploads (the page's upload event), "
          "archives (/train_own)\n")
    print_table(["request", "answer", "clear refusal"], [[r["request"], r["answer"].replace("|",
                                                                                            "/"),
                                                          r["clear refusal"]] for r in refusals])
    print(f"\nrun files written by refused requests: {len(leftovers)}; shipped checkpoints "
          f"unchanged (sha256): {untouched}")
    print("\nAttacks (bench.attacks): a tampered resume, uploads over the size limit, the app's "
          "log\n")
    print_table(["attack", "answer", "harmless"],
                [[r["attack"], r["answer"].replace("|", "/")[:160], r["harmless"]]
                 for r in attacks])
    ok = (alive and untouched and not leftovers and total["unclear"] == total["crash"] == 0
          and all(r["clear refusal"] for r in refusals) and bool(attacks)
          and all(r["harmless"] for r in attacks))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
