"""The page's words: prompts, notes and messages, in one place.

Messages about a visitor's own input are `InputError`s raised where the input is checked; these
are the texts the page shows on its own account.
"""
from __future__ import annotations

import html
import re
from pathlib import PurePosixPath

from ..kinds import DIGITS, PHOTOS

__all__ = ["TAB_TITLES", "EMPTY_SKETCH", "EMPTY_PHOTO", "DRAW_PROMPT", "OWN_INTRO", "OWN_EMPTY",
           "OWN_UNTRAINED", "ONNX_NOTE", "GENERIC_ERROR", "UNREADABLE_INPUT", "EXPECTED",
           "unreadable", "STOPPING", "NOT_RUNNING", "QUEUED", "NOTHING_TO_RESUME",
           "ONE_TRAINING_EACH", "TRAINER_FULL", "OUT_OF_MEMORY",
           "STOPPED_WAITING", "waiting", "public", "TITLE", "progress_html", "offered"]

TITLE = "# TinyVision Studio\nDraw a digit or drop in a photo; small models answer on this machine."
TAB_TITLES = {DIGITS: "Draw a digit", PHOTOS: "Classify a photo"}

EMPTY_SKETCH = ("✏️ **Draw a digit** (0-9) in the white box. The prediction updates after every "
                "stroke.")
EMPTY_PHOTO = "📷 **Upload a photo** (PNG, JPEG, WebP, any size) or click an example below."

OWN_INTRO = ("Teach a model your own classes: add 2 to 20 classes by name, give each a few "
             "examples (draw them, or upload photos or one .zip with a folder per class), then "
             "train. It starts from the shipped model's features, so ten examples per class are "
             "enough for a first try; a fifth of each class (rounded down) is held out to show how "
             "well it does. Your examples and models are yours only, and are removed an hour after "
             "you leave.")
# The pads' prompts (plain text): the Draw tab's, and the Your classes tab's try-it pad's.
DRAW_PROMPT = "✏️ Draw a digit (0-9) in the white box: the answer follows the pen."
OWN_EMPTY = "✏️ Draw something here to ask your model what it is."
OWN_UNTRAINED = "Train on your classes first (or upload a checkpoint)."

ONNX_NOTE = ("The ONNX file takes the prepared image as float32 [N, C, H, W] in 0..1 and answers "
             "with probabilities and a score; the README shows how to run it with onnxruntime.")

GENERIC_ERROR = ("Something went wrong on the server; the details are in its log. Try again, or "
                 "another input.")
# What a request is told whose payload the web framework itself cannot read (a number where an
# image belongs), in the words of each input it expects; the framework's own text of such errors is
# written for developers and may name server paths.
EXPECTED = {
    "Sketchpad": "an uploaded image file (a drawing: {'composite': handle_file(...)})",
    "ImageEditor": "an uploaded image file (a drawing: {'composite': handle_file(...)})",
    "Image": "an uploaded image file (handle_file(...))",
    "File": "an uploaded file (handle_file(...))",
    "Number": "a number", "Slider": "a number", "Checkbox": "true or false",
    "Dropdown": "one of the offered choices", "Radio": "one of the offered choices",
    "Textbox": "text",
}
UNREADABLE_INPUT = "what was sent could not be read"


def unreadable(endpoint: str | None, inputs: list[str]) -> str:
    """The refusal of a payload that cannot be read, for an endpoint whose inputs are these
    component types (in order)."""
    wanted = [EXPECTED[name] for name in inputs if name in EXPECTED]
    if not wanted:
        return UNREADABLE_INPUT
    where = f" sent to /{endpoint}" if endpoint else ""
    return f"expected {', then '.join(wanted)}, in what was{where or ' sent'}"


STOPPING = "Stopping after this batch; the last completed epoch's checkpoint is kept."
NOT_RUNNING = "No training of yours is running."
QUEUED = ("Another training is running on this machine; yours waits in the queue and starts when "
          "it ends.")
ONE_TRAINING_EACH = ("You have a training running or waiting already: stop it (Stop) before "
                     "starting another.")
TRAINER_FULL = ("The trainer is busy: the line of trainings waiting is full. Try again in a few "
                "minutes.")
OUT_OF_MEMORY = ("the model and its batch do not fit in this machine's memory: try a smaller batch "
                 "size or model")
STOPPED_WAITING = "Stopped before it started: your place in the line is given up."
NOTHING_TO_RESUME = ("Nothing to resume: stop a run after its first epoch, or upload a stopped "
                     "run's checkpoint.")


# An absolute path of this machine (two parts or more; not a URL's)
_SERVER_PATH = re.compile(r"(?<![\w.:/~-])(?:/[^\s/'\"`,;:()<>\[\]{}|]+){2,}/?")


def public(message: str) -> str:
    """A message with every server path in it shortened to the file's (or folder's) name: what a
    visitor is told names their file, never where the server keeps it."""
    return _SERVER_PATH.sub(lambda m: PurePosixPath(m.group().rstrip("/")).name, message)


def waiting(place: int) -> str:
    """The progress line of a training waiting for its turn."""
    ahead = "1 training" if place == 1 else f"{place} trainings"
    return f"Waiting for its turn: {ahead} ahead of yours on this machine."


def progress_html(fraction: float, text: str) -> str:
    """A progress bar with a line of text under it."""
    fraction = min(max(fraction, 0.0), 1.0)
    return (f'<div class="tv-progress"><progress max="1" value="{fraction:.4f}" '
            f'style="width:100%"></progress><div class="tv-progress-text">{html.escape(text)}'
            "</div></div>")


def offered(name: str, tab: str) -> str:
    """The note when a visitor's own model is offered in a predictor tab."""
    return (f"**{name}** is now selected in the *{TAB_TITLES[tab]}* tab — for you only; other "
            "visitors keep the shipped models.")
