"""From what a user gives (a sketch, a photo, a file) to the image a model takes.

Sketches are normalised the way MNIST was made: ink found whatever the colours, cropped, scaled to
fit a 20x20 box keeping the aspect ratio, very thin and very thick strokes brought nearer a common
width, centred by centre of mass in 28x28, white on black. Photos are oriented by EXIF, flattened
onto white, centre-cropped and resized with antialiasing.

This module imports nothing else of the project: it is the bottom layer, which the datasets (a
folder of drawings is read as the app reads a drawing), the predictor and the web services share.
Problems with what a user gave are `InputError`s whose message is written for that user.
"""
from __future__ import annotations

import base64
import binascii
import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["InputError", "decoding_error", "open_image", "open_drawing", "load_photo",
           "sketch_to_digit",
           "photo_to_input", "greyscale_to_input", "MAX_PHOTO_PIXELS", "MAX_FILE_BYTES",
           "MAX_SKETCH_SIDE", "SKETCH"]

MAX_PHOTO_PIXELS = 40_000_000  # larger images are refused, not decoded
MAX_FILE_BYTES = 30 * 1024 * 1024
MAX_SKETCH_SIDE = 4096
MAX_DRAWING_CHARS = 4 << 20  # a drawing sent by the page as a PNG data URL, at most this long
# The sketch preparation's constants: one definition, read by `sketch_to_digit` and, through each
# digit model's description (core.services.page_models), by the page's own port of it
# (web/sketch_prep.js), so that both make the same 28x28.
SKETCH = {
    "ink_threshold": 76,  # ink is a pixel this far from the background's level (0.3 of full)
    "min_ink_pixels": 12,  # fewer ink pixels: nothing is drawn
    "min_extent": 0.02,  # ink within less than this share of the canvas: a dot, not a digit
    "scale": 4,  # the work is done at 4x the output's resolution, then area-averaged down
    "box": 80,  # the digit is fitted to 20x20 (at 4x), keeping its aspect ratio
    "side": 112,  # and centred by mass in 28x28 (at 4x)
    # The band of stroke widths that sketches are brought into, as 2*area/perimeter of the ink
    # (>0.5) at 4x: thinner lines are thickened, thicker ones thinned (a little at most,
    # `max_thinning`). MNIST's own width is 7.7 px at 112x112 (~1.9 px at 28x28), but thin lines
    # read better when left thin: they keep small loops (a nine's head, a seven's hook) open. On
    # the recorded pen digits (bench.pen_accuracy) thickening thin lines to 7.7 gives 96.7%, to 3.7
    # gives 97.3%. Thinning thick lines towards 3.7 too would gain 0.1 point there but breaks the
    # hairlines of bold serif digits.
    "stroke_4x": [3.7, 7.7],
    "max_thinning": 5,
}


class InputError(ValueError):
    """The input cannot be used; the message is meant for the person who sent it."""


# ------------------------------------------------------------------------------------------------
# Sketches

def _as_array(value: Any) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, Image.Image):
        return np.asarray(value)
    if isinstance(value, (str, Path)):
        return np.asarray(open_image(value))
    raise InputError("the sketch must be an image")


def _sketch_array(sketch: Any) -> np.ndarray | None:
    """The image in what a sketchpad sends: a dict with composite/layers/background, or an image."""
    if sketch is None:
        return None
    if isinstance(sketch, dict):
        for key in ("composite", "background"):
            if sketch.get(key) is not None:
                return _as_array(sketch[key])
        layers = [layer for layer in sketch.get("layers") or [] if layer is not None]
        return _as_array(layers[-1]) if layers else None
    return _as_array(sketch)


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    a = np.nan_to_num(arr.astype(np.float32))
    peak = float(a.max()) if a.size else 0.0
    scale = 255.0 / 65535.0 if peak > 255 else (255.0 if peak <= 1.0 else 1.0)
    return np.clip(a * scale, 0, 255).astype(np.uint8)


def _ink_map(arr: np.ndarray) -> np.ndarray:
    """Ink strength 0..255 (uint8) for an RGB(A)/grey array: distance from the background colour,
    any polarity.

    Channel-wise integer maxima instead of float reductions: this runs on every stroke of a
    400x400+ canvas. Each channel is copied out to a contiguous array first: numpy's elementwise
    maxima are several times faster on those than on the interleaved channels of an RGB(A) image.
    """
    a = _to_uint8(arr)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim == 2:
        channels = [a]
    elif a.ndim == 3 and a.shape[2] in (3, 4):
        channels = [np.ascontiguousarray(a[..., i]) for i in range(3)]
        if a.shape[2] == 4:
            alpha = a[..., 3]
            if alpha.min() < 255:
                # Transparent canvas: what is drawn is what has alpha; colour it onto white.
                al = alpha.astype(np.uint16)
                channels = [((c * al + 255 * (255 - al)) // 255).astype(np.uint8)
                            for c in channels]
    else:
        raise InputError("the sketch must be a grey, RGB or RGBA image")
    ink = None
    for c in channels:
        border = np.concatenate([c[0], c[-1], c[:, 0], c[:, -1]])
        background = int(np.median(border))
        d = _absdiff(c, background)
        ink = d if ink is None else np.maximum(ink, d, out=ink)
    return ink


def _absdiff(channel: np.ndarray, value: int) -> np.ndarray:
    """|channel - value| for uint8 data without widening to a larger type.

    The value is spread into an array of the channel's shape: numpy compares two arrays in vector
    instructions but an array with a scalar element by element (about 20x slower on a 400x400
    channel)."""
    level = np.full_like(channel, value)
    return np.maximum(channel, level) - np.minimum(channel, level)


def _stroke_width(mask: torch.Tensor) -> float:
    """2*area/perimeter of a binary (1,1,H,W) mask: the mean width of long strokes.

    The mask is a tight crop, so ink touches its edges; a zero border makes those edges count as
    perimeter (max-pooling pads with -inf, which alone would erode nothing there: a straight
    vertical 1 then measured no perimeter, a huge width, and was thinned away)."""
    mask = F.pad(mask, (1, 1, 1, 1))
    inner = -F.max_pool2d(-mask, 3, 1, 1)
    perimeter = (mask - inner).sum().item()
    return 2.0 * mask.sum().item() / max(perimeter, 1.0)


def sketch_to_digit(sketch: Any) -> np.ndarray | None:
    """MNIST-style 28x28 float image (white digit on black, values 0..1), or None when nothing is
    drawn. The steps and constants (SKETCH) are the page's too (web/sketch_prep.js)."""
    arr = _sketch_array(sketch)
    if arr is None or arr.size == 0:
        return None
    if arr.ndim >= 2 and max(arr.shape[:2]) > MAX_SKETCH_SIDE:
        raise InputError(f"the sketch is larger than {MAX_SKETCH_SIDE} pixels on a side")
    k = SKETCH
    ink = _ink_map(arr)
    mask = ink > k["ink_threshold"]
    if np.count_nonzero(mask) < k["min_ink_pixels"]:
        return None
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    crop = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].astype(np.float32) / 255.0
    h, w = crop.shape
    if max(h, w) < k["min_extent"] * min(ink.shape):
        return None  # a dot or a stray click, not a digit
    box, side = k["box"], k["side"]
    scale = box / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    t = torch.from_numpy(np.ascontiguousarray(crop))[None, None]
    t = F.interpolate(t, size=(nh, nw), mode="bilinear", antialias=True,
                      align_corners=False).clamp(0, 1)
    width = _stroke_width((t > 0.5).float())
    thinnest, thickest = k["stroke_4x"]
    grow, shrink = int(round(thinnest - width)), int(round(width - thickest))
    if grow >= 2:
        n = grow + 1 if grow % 2 == 0 else grow
        t = F.max_pool2d(F.pad(t, (n, n, n, n)), n, 1, n // 2)[..., n:-n, n:-n]
    elif shrink >= 3:
        n = min(shrink, k["max_thinning"]) | 1
        t = -F.max_pool2d(-F.pad(t, (n, n, n, n)), n, 1, n // 2)[..., n:-n, n:-n]
    canvas = torch.zeros(1, 1, side, side)
    img = t[0, 0]
    total = img.sum().item()
    ys, xs = torch.arange(nh, dtype=torch.float32), torch.arange(nw, dtype=torch.float32)
    cy = (img.sum(1) * ys).sum().item() / total if total > 0 else nh / 2
    cx = (img.sum(0) * xs).sum().item() / total if total > 0 else nw / 2
    top, left = int(round(side / 2 - cy)), int(round(side / 2 - cx))
    # Keep the whole box on the canvas even when the centre of mass is far from the box centre.
    top, left = min(max(top, 0), side - nh), min(max(left, 0), side - nw)
    canvas[0, 0, top:top + nh, left:left + nw] = img
    return F.avg_pool2d(canvas, k["scale"])[0, 0].numpy()


# ------------------------------------------------------------------------------------------------
# Photos and files

def open_image(source: Any) -> Image.Image:
    """Open a path, bytes or file object with Pillow's limits; errors become InputError."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise InputError("the file does not exist")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise InputError(f"the file is larger than {MAX_FILE_BYTES // 2**20} MB")
        if path.stat().st_size == 0:
            raise InputError("the file is empty")
    elif isinstance(source, (bytes, bytearray)):
        source = io.BytesIO(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(source)
            w, h = im.size
            if w * h > MAX_PHOTO_PIXELS:
                raise InputError(f"the image is too large ({w}x{h}); at most "
                                 f"{MAX_PHOTO_PIXELS // 10**6} megapixels")
            im.load()
    except InputError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as exc:
        raise InputError(decoding_error(exc)) from None
    return im


def open_drawing(data_url: Any) -> np.ndarray:
    """A drawing the page sent (a PNG as a data URL) as an RGB array; InputError for anything
    else."""
    prefix = "data:image/png;base64,"
    if not isinstance(data_url, str) or not data_url.startswith(prefix):
        raise InputError("expected a drawing (a PNG data URL)")
    if len(data_url) > MAX_DRAWING_CHARS:
        raise InputError(f"the drawing is larger than {MAX_DRAWING_CHARS >> 20} MB")
    try:
        data = base64.b64decode(data_url[len(prefix):], validate=True)
    except (binascii.Error, ValueError):
        raise InputError("the drawing could not be decoded (not base64)") from None
    image = open_image(data)
    if max(image.size) > MAX_SKETCH_SIDE:
        raise InputError(f"the sketch is larger than {MAX_SKETCH_SIDE} pixels on a side")
    return np.asarray(load_photo(image))


def decoding_error(exc: BaseException | None, detail: bool = True) -> str | None:
    """What to tell a user whose image failed to decode with `exc` (None if it is no decoding
    error); `detail` adds the decoder's own first line, for errors of this project's decoding only
    (other code's may name paths)."""
    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return "the image is too large to decode safely"
    if isinstance(exc, UnidentifiedImageError):
        return "the file is not an image Pillow can read (PNG, JPEG, WebP, GIF, BMP, TIFF)"
    if isinstance(exc, (OSError, SyntaxError, ValueError)):
        if not detail:
            return "the image could not be decoded"
        first = str(exc).splitlines()[0] if str(exc) else "corrupt"
        return f"the image could not be decoded ({first})"
    return None


def load_photo(source: Any) -> Image.Image:
    """Any readable image -> upright RGB, transparency flattened onto white."""
    im = source if isinstance(source, Image.Image) else (
        Image.fromarray(source) if isinstance(source, np.ndarray) else open_image(source))
    if im.width < 1 or im.height < 1:
        raise InputError("the image is empty")
    try:
        im = ImageOps.exif_transpose(im)
    except Exception:
        pass  # a broken EXIF block is no reason to refuse the pixels
    if getattr(im, "n_frames", 1) > 1:
        im.seek(0)
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im, dtype=np.float32)
        im = Image.fromarray((a * (255.0 / max(a.max(), 1.0))).astype(np.uint8))
    elif im.mode == "F":
        a = np.asarray(im, dtype=np.float32)
        lo, hi = float(a.min()), float(a.max())
        im = Image.fromarray(((a - lo) * (255.0 / max(hi - lo, 1e-6))).astype(np.uint8))
    if im.mode in ("P", "PA", "LA", "La") or "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "RGBa"):
        white = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, im.convert("RGBA"))
    return im.convert("RGB")


def photo_to_input(source: Any, size: int = 32) -> np.ndarray:
    """Centre-crop to a square and resize with antialiasing: (size, size, 3) uint8."""
    im = load_photo(source)
    w, h = im.size
    side = min(w, h)
    box = ((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side)
    resized = im.resize((size, size), Image.LANCZOS, box=box, reducing_gap=3.0)
    return np.asarray(resized, dtype=np.uint8)


def greyscale_to_input(source: Any, size: int = 28) -> np.ndarray:
    """A picture for a greyscale model: centre-cropped, resized, grey, and turned light-on-dark if
    its border is light, since greyscale training sets such as Fashion-MNIST show a light object on
    a black ground (a photo of a shoe on a white table would otherwise be the negative of everything
    the model saw): (size, size) uint8."""
    rgb = photo_to_input(source, size).astype(np.float32)
    grey = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    if np.median(border) > 127:
        grey = 255.0 - grey
    return np.clip(grey + 0.5, 0, 255).astype(np.uint8)
