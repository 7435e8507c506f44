"""The page's words: prompts, notes and messages, in one place.

Messages about a visitor's own input are `InputError`s raised where the input is checked; these
are the texts the page shows on its own account.
"""
from __future__ import annotations

import html

from ..kinds import DIGITS, PHOTOS

__all__ = ["TAB_TITLES", "EMPTY_SKETCH", "EMPTY_PHOTO", "DRAW_PROMPT", "OWN_INTRO", "OWN_EMPTY",
           "OWN_UNTRAINED", "ONNX_NOTE", "GENERIC_ERROR", "UNREADABLE_INPUT", "STOPPING",
           "NOT_RUNNING", "QUEUED", "NOTHING_TO_RESUME", "TITLE", "progress_html", "offered"]

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
# image belongs); the framework's own text of such errors is written for developers and may name
# server paths.
UNREADABLE_INPUT = ("expected an uploaded image file (a sketch: {'composite': handle_file(...)}) "
                    "in what was sent")

STOPPING = "Stopping after this batch; the last completed epoch's checkpoint is kept."
NOT_RUNNING = "No training of yours is running."
QUEUED = ("Another training is running on this machine; yours waits in the queue and starts when "
          "it ends.")
NOTHING_TO_RESUME = ("Nothing to resume: stop a run after its first epoch, or upload a stopped "
                     "run's checkpoint.")


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
