"""TinyVision Studio: the web app. The page, one function per tab, its events wired to the web
services of core.services; the decisions are theirs.

    python app.py    # http://127.0.0.1:7860 (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT to change)
"""
from __future__ import annotations

import functools
import inspect
import logging
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.utils import get_upload_folder, is_in_or_equal
from PIL import Image

from core.config import LIMITS, option_of
from core.imagedata import cache_dir
from core.kinds import DIGITS, PHOTOS, get_kind, own_kinds, tab_top_k
from core.models import list_models
from core.preparation import SKETCH, InputError, decoding_error
from core.services import texts
from core.services.answers import OWN_KEY, Answers
from core.services.dashboard import OUTPUTS, TABLE_HEADERS
from core.services.http_guard import http_guard
from core.services.own_classes import (
    STARTS,
    ClassFolders,
    ExampleSet,
    train_archive,
    train_own,
    trained_model,
)
from core.services.page_assets import WEB_DIR, PageAssets, page_compression, runtime_sources
from core.services.page_models import PageModels
from core.services.runs import MAX_WAITING, Trainer
from core.services.settings import MAX_UPLOAD_MB, ServerSettings
from core.services.shelf import Shelf
from core.services.training_requests import (
    FAST,
    RECIPE_FIELDS,
    TrainRequest,
    dataset_label,
    is_folder_dataset,
    offered_datasets,
    recipe,
)
from core.services.visitor_models import SESSION_MODELS_TTL_S, VisitorModels
from core.strokes import CANVAS

ROOT = Path(__file__).resolve().parent
EXAMPLES = sorted((ROOT / "examples" / "photos").glob("*.[jp][pn]g"))
BRUSH_RADIUS = 6  # a pen-like line on this canvas (about 12 px wide): thin lines keep loops open
REQUEST_FIELDS = tuple(f.name for f in fields(TrainRequest))
log = logging.getLogger("tinyvision.app")
# Training calls are let in to the trainer, which runs one and keeps the others in its own bounded
# line (core.services.runs): a call beyond it is refused at once, never left waiting unseen.
TRAINING_CALLS = MAX_WAITING + 2


def _refusal(message: str) -> gr.Error:
    """The error a page or API caller is shown; the web framework prints no traceback of it (what
    is worth a traceback is logged where it happens)."""
    return gr.Error(message, print_exception=False)


def _user_errors(fn: Callable) -> Callable:
    """Show an InputError's message on the page and return it to API callers (server paths
    shortened to names, texts.public; logged in one line); any other error is logged with its
    traceback and answered with texts.GENERIC_ERROR. For a generator (a streaming event) also while
    it streams."""
    def refusal(exc: Exception) -> gr.Error:
        if isinstance(exc, InputError):
            message = texts.public(str(exc))
            log.info("refused %s: %s", fn.__name__, message)  # one line: a refusal is no fault
            return _refusal(message)
        log.exception("%s failed", fn.__name__)
        return _refusal(texts.GENERIC_ERROR)

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def streaming(*args):
            try:
                yield from fn(*args)
            except gr.Error:
                raise
            except Exception as exc:
                raise refusal(exc) from None
        return streaming

    @functools.wraps(fn)
    def wrapper(*args):
        try:
            return fn(*args)
        except gr.Error:
            raise
        except Exception as exc:
            raise refusal(exc) from None
    return wrapper


class _Blocks(gr.Blocks):
    """gr.Blocks whose refusal of a payload it cannot read is a message written for users.

    The app launches with show_error=False, so only gr.Error messages reach the page and the API.
    Gradio checks and decodes each input before any handler runs (pydantic validation, a
    component's preprocess, such as the sketchpad's image decoding); what goes wrong there is
    answered in the project's words, its details logged.
    """

    async def preprocess_data(self, block_fn, inputs, state, *args, **kwargs):
        # A drawing is read from its composite alone: its layers and background, decoded by the
        # framework before any handler runs, are dropped first (a hundred layers naming one large
        # image would each be decoded into memory).
        inputs = [_composite_only(v) if isinstance(b, gr.ImageEditor) else v
                  for b, v in zip(block_fn.inputs, inputs)]
        try:
            return await super().preprocess_data(block_fn, inputs, state, *args, **kwargs)
        except gr.Error as exc:  # a component's own check (a choice, a bound): its words, one line
            log.info("refused an input of %s: %s", block_fn.api_name or block_fn.name, exc.message)
            raise _refusal(texts.public(exc.message)) from None
        except Exception as exc:
            inputs = [type(c).__name__ for c in block_fn.inputs if not isinstance(c, gr.State)]
            message = (decoding_error(exc.__cause__, detail=False)
                       or texts.unreadable(block_fn.api_name, inputs))
            log.info("refused an input of %s: %s (%s)", block_fn.api_name or block_fn.name,
                     message, type(exc).__name__)
            raise _refusal(message) from None
        finally:
            _forget_values(state, block_fn.inputs)

    async def postprocess_data(self, block_fn, predictions, state, *args, **kwargs):
        try:
            return await super().postprocess_data(block_fn, predictions, state, *args, **kwargs)
        finally:
            _forget_values(state, block_fn.outputs)


def _composite_only(value: Any) -> Any:
    """A sketchpad's value with its composite alone (its background where it has no composite)."""
    if not isinstance(value, dict):
        return value
    composite = value.get("composite") or value.get("background")
    return {**value, "background": None, "layers": [], "composite": composite}


def _forget_values(state: Any, blocks: list) -> None:
    """Drop the copy of each value the framework keeps per session for its deep links (closed
    here: core.services.http_guard); kept, every session would hold the last of everything it sent,
    refused or not, until the framework lets the session go."""
    values = getattr(state, "config_values", None)
    if not isinstance(values, dict):
        return
    for block in blocks:
        props = (values.get(getattr(block, "_id", None)) or {}).get("props")
        if isinstance(props, dict) and "value" in props:
            props["value"] = None


def _own_image_file(fn: Callable) -> Callable:
    """Give the model's-eye image of every answer its own file. Gradio stores an output image under
    the hash of its bytes and rewrites that file on every request, so two requests with the same
    image (two visitors clicking one example photo, or the same sketch sent by many clients) race:
    a download that reads the file while the other request truncates it gets an empty, broken
    image. A per-answer tag in the PNG's text chunk changes the hash."""
    @functools.wraps(fn)
    def wrapper(*args):
        label, seen, status = fn(*args)
        if seen is not None:
            seen = Image.fromarray(seen)
            seen.info["answer"] = uuid.uuid4().hex
        return label, seen, status
    return wrapper


def _uploads_only(fn: Callable) -> Callable:
    """Refuse a photo that was not uploaded to this server. With preprocess=False the raw payload
    reaches the handler, and Gradio checks the path only of payloads that carry its FileData
    marker: a {"path": ...} without it would make the handler open any file of the server's (and
    say whether it exists)."""
    @functools.wraps(fn)
    def wrapper(photo, *args):
        path = photo.get("path") if isinstance(photo, dict) else photo
        uploaded = isinstance(path, str) and is_in_or_equal(path, get_upload_folder())
        if photo is not None and not uploaded:
            raise InputError("expected an uploaded image file")
        return fn(photo, *args)
    return wrapper


def _named(fn: Callable, names: Sequence[str]) -> Callable:
    """`fn(*values, request)` shown to the API with these parameter names (the form's fields)."""
    positional = inspect.Parameter.POSITIONAL_OR_KEYWORD
    params = [inspect.Parameter(name, positional) for name in names]
    params.append(inspect.Parameter("request", positional, annotation=gr.Request))
    fn.__signature__ = inspect.Signature(params)
    fn.__annotations__ = {"request": gr.Request}
    return fn


def _session(request: gr.Request | None) -> str:
    return request.session_hash if request is not None and request.session_hash else ""


# Calls waiting in the framework's queue, all events together (a backstop: the trainer keeps its own
# bounded line); and the sessions whose page state the framework keeps (the oldest is dropped).
QUEUE_MAX, SESSIONS_HELD = 256, 2000
# A streaming call whose caller has this many updates waiting unread is not being read (a REST
# call whose stream nobody opened): about half a minute of a training's updates.
UNREAD_LIMIT = 120


def _reader(demo: gr.Blocks, request: gr.Request | None) -> Callable[[], bool]:
    """Whether anyone still reads the updates of this request's session. A page or client that
    leaves closes the stream (the framework then closes the generator); a REST call whose stream
    is never opened only shows as updates piling up unread in the framework's queue for it."""
    session = _session(request)

    def reading() -> bool:
        try:
            waiting = demo._queue.pending_messages_per_session.get(session)
            return waiting is None or waiting.qsize() < UNREAD_LIMIT
        except Exception:  # the framework keeps them otherwise: assume someone reads
            return True
    return reading


# ------------------------------------------------------------------------------------------------
# Pieces several tabs use

PAD_HTML, PAD_CSS = ((WEB_DIR / f"digit_pad.{ext}").read_text() for ext in ("html", "css"))
# The pad's code is one ES module, a page file (cached for a year): each pad imports and mounts it.
PAD_CODE = "\n".join((WEB_DIR / name).read_text() for name in ("sketch_prep.js", "digit_pad.js"))
PAD_LOADER = """
// The pad sends the server a drawing with trigger("drawn", ...) when it cannot answer it itself.
const root = ((window.gradio_config && window.gradio_config.root) || location.origin) + "/";
import(new URL(props.code, root).href).then((pad) => pad.mount({element, trigger, props, watch}));
"""


def _pad(page: _Page, name: str, mode: str, prompt: str, model: dict | None = None,
         untrained: str = "") -> gr.HTML:
    """A drawing pad (web/digit_pad.js): mouse, pen or touch, undo, clear, a brush width. In
    "answer" mode it answers in the page while the pen moves, with `model` (the page's files of
    core.services.page_models), or through the server when the in-page runtime cannot start; in
    "collect" mode its value is the drawing (a PNG data URL)."""
    runtime = page.runtime if mode == "answer" else None
    return gr.HTML(None, html_template=PAD_HTML, css_template=PAD_CSS, js_on_load=PAD_LOADER,
                   elem_id=name, code=page.pad_code, pad=name, mode=mode, canvas=CANVAS,
                   brush=2 * BRUSH_RADIUS, preparation=SKETCH, runtime=runtime, model=model,
                   answer=None, prompt=prompt, untrained=untrained)


def _clear_pad(name: str) -> str:
    return f"() => {{ window.tvPads?.[{name!r}]?.clear(); }}"


def _dashboard(prefix: str, prompt: str) -> dict[str, gr.Component]:
    """The live view of a training: the OUTPUTS of core.services.dashboard but the checkpoint and
    the run."""
    progress = gr.HTML(texts.progress_html(0.0, prompt), elem_id=f"{prefix}-progress")
    figure = dict(show_label=False, interactive=False, format="png")  # figures carry their titles
    with gr.Row():
        curves = gr.Image(label="Loss and accuracy per epoch", height=300, **figure,
                          elem_id=f"{prefix}-curves")
        samples = gr.Image(label="Test samples", height=300, **figure, elem_id=f"{prefix}-samples")
    with gr.Row():
        per_class = gr.Image(label="Per-class accuracy", height=360, **figure,
                             elem_id=f"{prefix}-per-class")
        confusion = gr.Image(label="Confusion matrix", height=360, **figure,
                             elem_id=f"{prefix}-confusion")
    table = gr.Dataframe(headers=TABLE_HEADERS, datatype="str", interactive=False,
                         label="Metrics", elem_id=f"{prefix}-table")
    log_box = gr.Textbox(label="Log", lines=3, max_lines=12, interactive=False,
                         elem_id=f"{prefix}-log")
    report = gr.JSON(label="Latest report (the keys of the CLI's --json)", max_height=260,
                     elem_id=f"{prefix}-report")
    return {"progress": progress, "curves": curves, "samples": samples, "per_class": per_class,
            "confusion": confusion, "table": table, "log": log_box, "report": report}


def _stream(updates: Iterator[dict], note: str,
            finish: Callable[[dict], tuple] = lambda update: ()) -> Iterator:
    """The dashboard's update dicts as output tuples in OUTPUTS order, then the status note (sent
    once), then what `finish` makes of the run's last update (the one with "run"); what did not
    change is skipped."""
    extra = len(finish({}))
    for update in updates:
        last = "run" in update
        yield (*(update[k] if k in update else gr.skip() for k in OUTPUTS), note,
               *(finish(update) if last else (gr.skip(),) * extra))
        note = gr.skip()


def _answer_column(page: _Page, tab: str, prefix: str, prompt: str, seen_size: str) -> tuple:
    """Model dropdown, prediction, status line and the model's-eye view of a predictor tab."""
    shelf = page.answers.shelf
    with gr.Column(scale=2):
        model = gr.Dropdown(choices=shelf.choices(tab), value=shelf.default(tab), label="Model",
                            elem_id=f"{prefix}-model")
        label = gr.Label(num_top_classes=tab_top_k(tab), label="Prediction",
                         elem_id=f"{prefix}-label")
        status = gr.Markdown(prompt, label="Status", elem_id=f"{prefix}-status")
        seen = gr.Image(label=f"What the model saw ({seen_size})", interactive=False, height=240,
                        buttons=[], format="png", elem_id=f"{prefix}-seen")
    return model, label, status, seen


def _onnx_download(prefix: str) -> tuple[gr.Button, gr.File]:
    """A "Download ONNX" button and the file it fills (core.export: the model to run anywhere)."""
    return (gr.Button("Download ONNX", elem_id=f"{prefix}-onnx"),
            gr.File(label="ONNX model (download)", interactive=False, height=120,
                    elem_id=f"{prefix}-onnx-file"))


@dataclass
class _Page:
    """The services behind the page, and the components more than one tab reads or updates."""
    answers: Answers
    trainer: Trainer
    models: VisitorModels
    classes: ClassFolders
    pads: PageModels  # the digit models as the page runs them
    runtime: dict  # where the page loads its runtime from
    pad_code: str  # the URL of the pads' code
    own: gr.State  # the models this visitor trained or uploaded, theirs only
    digit_model: gr.Dropdown | None = None
    photo_model: gr.Dropdown | None = None

    def pad_model(self, key: str | None, own: dict | None) -> dict | None:
        """The page's files of the Draw tab's model `key` (a shipped one, or the visitor's); None
        when there is no digit model at all."""
        if key is None and not self.answers.shelf.default(DIGITS):
            return None
        return self.pads.spec(self.answers.shelf.predictor(key, DIGITS, own))

    def offered(self, own: dict, tab: str, key: str) -> tuple:
        """The predictor tabs' model dropdowns with a visitor's models, `key` selected in `tab`."""
        return tuple(gr.update(choices=self.answers.shelf.choices(t, own),
                               **({"value": key} if t == tab else {})) for t in (DIGITS, PHOTOS))

    def model_buttons(self, use: gr.Button, upload: gr.File, onnx: gr.Button, onnx_file: gr.File,
                      run: gr.State, checkpoint: gr.File, note: gr.Markdown,
                      tab_model: gr.State | None = None, tab_pad: gr.HTML | None = None) -> None:
        """Use this model, Upload a checkpoint and Download ONNX of a tab that trains."""
        dropdowns = [self.own, self.digit_model, self.photo_model]

        def used(state: dict, own: dict, request: gr.Request) -> tuple:
            own, tab, key, message = self.models.use((state or {}).get("checkpoint"), own,
                                                     _session(request))
            return own, *self.offered(own, tab, key), message

        def adopted(path: str | None, own: dict, request: gr.Request) -> tuple:
            own, tab, key, state, message = self.models.adopt(path, own, _session(request))
            mine = ()
            if tab_model is not None:  # the tab's own model (its try-it pad answers with it)
                mine = ({OWN_KEY: own[key]}, gr.update(model=self.pads.spec(own[key])))
            return (own, *self.offered(own, tab, key), state, *mine, state["checkpoint"],
                    message)

        def exported(state: dict) -> tuple[str, str]:
            return self.models.onnx((state or {}).get("checkpoint")), texts.ONNX_NOTE

        use.click(_user_errors(used), [run, self.own], [*dropdowns, note],
                  api_visibility="private")
        mine = [tab_model, tab_pad] if tab_model is not None else []
        upload.upload(_user_errors(adopted), [upload, self.own],
                      [*dropdowns, run, *mine, checkpoint, note], api_visibility="private")
        # Exports take seconds of CPU: one at a time, beside the predictions' and trainings' queues.
        onnx.click(_user_errors(exported), [run], [onnx_file, note], api_visibility="private",
                   concurrency_limit=1, concurrency_id="export")

    def stop(self, request: gr.Request) -> str:
        return texts.STOPPING if self.trainer.stop(_session(request)) else texts.NOT_RUNNING

    def queued(self) -> str:
        return texts.QUEUED if self.trainer.busy() else gr.skip()


# ------------------------------------------------------------------------------------------------
# The tabs

def _draw_tab(page: _Page) -> None:
    """Draw a digit: a pad that answers in the page while the pen moves (the top 3, the 28x28 the
    model saw, "Not sure"), through the server where it must; the API's digit endpoints."""
    answers, shelf = page.answers, page.answers.shelf
    with gr.Tab(texts.TAB_TITLES[DIGITS], id="draw"):
        page.digit_model = gr.Dropdown(choices=shelf.choices(DIGITS), value=shelf.default(DIGITS),
                                       label="Model", elem_id="digit-model")
        pad = _pad(page, "sketch", "answer", texts.DRAW_PROMPT,
                   page.pad_model(shelf.default(DIGITS), {}))
        # /predict_digit and /answer_digit, for API callers only: a sketchpad's value in (its
        # composite is enough), the tab's answer out.
        sketch = gr.Sketchpad(type="numpy", visible=False)
        label, seen = gr.Label(visible=False), gr.Image(visible=False, format="png")
        status, answer = gr.Markdown(visible=False), gr.JSON(visible=False)
        predict_button, answer_button = gr.Button(visible=False), gr.Button(visible=False)

    def from_server(model: str | None, own: dict, event: gr.EventData) -> dict:
        drawing = event._data  # what the pad sent: {"id", "png"}
        return gr.update(answer=answers.drawing_answer(drawing, model, own))

    def chosen(model: str | None, own: dict) -> dict:
        return gr.update(model=page.pad_model(model, own))

    # The pad asks the server only when it cannot answer itself, one drawing at a time (the
    # newest waits; the pad sends it when the answer before it is in).
    pad.drawn(_user_errors(from_server), [page.digit_model, page.own], pad,
              api_visibility="private", trigger_mode="multiple", show_progress="hidden",
              concurrency_id="predict")
    # A model is exported for the page once, the first time it is chosen (seconds of CPU).
    page.digit_model.change(_user_errors(chosen), [page.digit_model, page.own], pad,
                            api_visibility="private", show_progress="hidden",
                            concurrency_limit=1, concurrency_id="export")
    inputs = [sketch, page.digit_model, page.own]
    predict_button.click(_user_errors(_own_image_file(answers.predict_digit)), inputs,
                         [label, seen, status], api_name="predict_digit",
                         concurrency_id="predict", concurrency_limit=2)
    answer_button.click(_user_errors(answers.answer_digit), inputs, answer,
                        api_name="answer_digit", concurrency_id="predict")


def _photo_tab(page: _Page) -> None:
    """Classify a photo: upload, paste or webcam; the top 5 and the input the model saw."""
    answers = page.answers
    with gr.Tab(texts.TAB_TITLES[PHOTOS], id="photo"):
        with gr.Row():
            with gr.Column(scale=3):
                photo = gr.Image(type="filepath", sources=["upload", "clipboard", "webcam"],
                                 label="Photo", height=360, elem_id="photo")
                gr.Examples(examples=[[str(p)] for p in EXAMPLES], inputs=[photo],
                            label="Examples")
            page.photo_model, label, status, seen = _answer_column(
                page, PHOTOS, "photo", texts.EMPTY_PHOTO, "32x32")
        answer, answer_button = gr.JSON(visible=False), gr.Button(visible=False)
    inputs, outputs = [photo, page.photo_model, page.own], [label, seen, status]
    # Old results are cleared at once in the browser, so a refused file never leaves the previous
    # prediction on screen.
    photo.change(None, None, outputs, js=f"() => [null, null, {texts.EMPTY_PHOTO!r}]",
                 queue=False, api_visibility="private")
    # The raw upload goes to the handler (preprocess=False) so that it, not Gradio's own decoder,
    # opens the file with the project's limits and a clear message for a bad one.
    gr.on([photo.change, page.photo_model.change], _user_errors(_own_image_file(_uploads_only(
        answers.classify_image))), inputs, outputs, api_name="classify_image", preprocess=False,
        concurrency_id="predict")
    answer_button.click(_user_errors(_uploads_only(answers.answer_photo)), inputs, answer,
                        api_name="answer_photo", preprocess=False, concurrency_id="predict")


def _own_tab(demo: gr.Blocks, page: _Page) -> None:
    """Your classes: classes and examples per visitor, training from the shipped model, trying
    it out, taking the model to the other tabs or away."""
    kinds = own_kinds()
    with gr.Tab("Your classes", id="own"):
        gr.Markdown(texts.OWN_INTRO)
        with gr.Row():
            with gr.Column(scale=1, min_width=340):
                kind = gr.Radio([(k.label, k.name) for k in kinds], value=kinds[0].name,
                                label="Kind", elem_id="own-kind")
                with gr.Row():
                    new_name = gr.Textbox(label="New class", placeholder="e.g. circle",
                                          max_lines=1, elem_id="own-new-name")
                    add_class = gr.Button("Add class", elem_id="own-add-class")
                target = gr.Dropdown([], value=None, label="Class",
                                     info="new examples go to this class", elem_id="own-class")
                with gr.Row():
                    rename_to = gr.Textbox(label="Rename it to", max_lines=1,
                                           elem_id="own-rename-to")
                    rename = gr.Button("Rename", elem_id="own-rename")
                    remove = gr.Button("Remove class", variant="stop", elem_id="own-remove")
                summary = gr.Markdown(elem_id="own-summary")
                message = gr.Markdown(elem_id="own-message")
                gallery = gr.Gallery(label="Examples of this class", columns=6, height=220,
                                     elem_id="own-gallery")
            with gr.Column(scale=2):
                # (A pad's box is shown or hidden, never the pad: Gradio drops a gr.HTML's own
                # properties when an update reaches it before it is on screen.)
                with gr.Column() as pad_box:
                    pad = _pad(page, "own-sketch", "collect", "")
                add_sketch = gr.Button("Add to the class", variant="primary",
                                       elem_id="own-add-sketch")
                photos = gr.File(file_count="multiple", file_types=["image"],
                                 label="Upload images to the class", visible=False,
                                 elem_id="own-photos")
                shot = gr.Image(sources=["webcam", "clipboard"], type="filepath",
                                label="Webcam or paste", visible=False, height=240,
                                elem_id="own-shot")
                add_shot = gr.Button("Add to the class", visible=False, elem_id="own-add-shot")
                with gr.Row():
                    archive = gr.File(file_types=[".zip"], label="Upload a .zip (one folder per "
                                      "class)", height=120, elem_id="own-zip")
                    with gr.Column():
                        export = gr.Button("Download my examples (.zip)", elem_id="own-export")
                        exported = gr.File(label="Your examples", interactive=False, height=120,
                                           elem_id="own-zip-out")
        with gr.Row():
            start = gr.Radio([("the shipped model (transfer)", STARTS[0]), ("scratch", STARTS[1])],
                             value=STARTS[0], label="Start from", elem_id="own-start")
            fine_tune = gr.Checkbox(True, label="Fine-tune the whole net", elem_id="own-fine-tune",
                                    info="off: only the new output layer learns (faster, less "
                                         "accurate)")
            train_btn = gr.Button("Train on my classes", variant="primary", elem_id="own-train")
            stop_btn = gr.Button("Stop", variant="stop", elem_id="own-stop")
        status = gr.Markdown(elem_id="own-status")
        with gr.Row():
            with gr.Column(scale=2):
                view = _dashboard("own", "Add classes and examples, then click Train on my "
                                  "classes.")
            with gr.Column(scale=1, min_width=320):
                gr.Markdown("**Try it**")
                with gr.Column() as try_box:
                    try_pad = _pad(page, "own-try", "answer", texts.OWN_EMPTY,
                                   untrained=texts.OWN_UNTRAINED)
                try_photo = gr.Image(type="filepath", sources=["upload", "clipboard", "webcam"],
                                     label="Try it: a photo", visible=False, height=240,
                                     elem_id="own-try-photo")
                answer = gr.Label(num_top_classes=3, label="Your model says", visible=False,
                                  elem_id="own-label")
                seen = gr.Image(label="What the model saw", interactive=False, height=160,
                                buttons=[], format="png", visible=False, elem_id="own-seen")
                try_status = gr.Markdown(elem_id="own-try-status")
                checkpoint = gr.File(label="Checkpoint (download)", interactive=False, height=120,
                                     elem_id="own-checkpoint")
                onnx_btn, onnx_file = _onnx_download("own")
                use_btn = gr.Button("Use this model in the other tabs", elem_id="own-use")
                upload = gr.File(label="Upload a checkpoint (.pt)", file_types=[".pt"],
                                 height=120, elem_id="own-upload")
        # The /train_own endpoint's inputs (an archive, its kind, the start) and outputs, for API
        # callers only.
        api_archive = gr.File(visible=False)
        api_kind, api_start = gr.Textbox("", visible=False), gr.Textbox(STARTS[0], visible=False)
        api_report, api_checkpoint = gr.JSON(visible=False), gr.File(visible=False)
        api_button = gr.Button(visible=False)
    run_state = gr.State({"checkpoint": None, "resumable": False})
    # the model this tab trained or was given
    own_model = gr.State({}, time_to_live=SESSION_MODELS_TTL_S)

    def examples(kind: str, request: gr.Request) -> ExampleSet:
        return page.classes.examples(_session(request), kind)

    def add_label(name: str | None) -> tuple:
        text = f"Add to {name}" if name else "Add to the class"
        return tuple(gr.update(value=text) for _ in (add_sketch, add_shot))

    def refresh(ex: ExampleSet, chosen: str | None = None, note: str = "") -> tuple:
        names = list(ex.classes())
        chosen = chosen if chosen in names else (names[-1] if names else None)
        return (gr.update(choices=names, value=chosen), ex.summary(), ex.gallery(chosen), note,
                *add_label(chosen))

    shown_classes = [target, summary, gallery, message, add_sketch, add_shot]

    def show(kind: str, request: gr.Request) -> tuple:
        drawn = get_kind(kind).drawn
        *classes, for_sketch, for_shot = refresh(examples(kind, request))
        return (*classes, {**for_sketch, "visible": drawn}, {**for_shot, "visible": not drawn},
                *(gr.update(visible=drawn) for _ in (pad_box, try_box)),
                *(gr.update(visible=not drawn) for _ in (photos, shot, try_photo, answer, seen)))

    def added_class(kind: str, name: str, request: gr.Request) -> tuple:
        ex = examples(kind, request)
        return (*refresh(ex, ex.add_class(name), f"Class **{name.strip()}** added."), "")

    def renamed(kind: str, old: str | None, new: str, request: gr.Request) -> tuple:
        ex = examples(kind, request)
        return (*refresh(ex, ex.rename_class(old, new), f"Renamed to **{new.strip()}**."), "")

    def removed(kind: str, name: str | None, request: gr.Request) -> tuple:
        ex = examples(kind, request)
        ex.remove_class(name)
        return refresh(ex, None, f"Class **{name}** removed.")

    def picked(kind: str, name: str | None, request: gr.Request) -> tuple:
        return examples(kind, request).gallery(name), *add_label(name)

    def drawn(kind: str, name: str | None, sketch, request: gr.Request) -> tuple:
        ex = examples(kind, request)
        ex.add_sketch(name, sketch)
        return refresh(ex, name, f"Added to **{name}**.")

    def uploaded(kind: str, name: str | None, files, request: gr.Request) -> tuple:
        ex = examples(kind, request)
        report = ex.add_images(name, [files] if isinstance(files, str) else list(files or []))
        return (*refresh(ex, name, report.message().capitalize() + "."), None)

    def imported(kind: str, path: str | None, request: gr.Request) -> tuple:
        if not path:
            raise InputError("no archive was uploaded")
        ex = examples(kind, request)
        report = ex.import_zip(path)
        return (*refresh(ex, None, report.message().capitalize() + "."), None)

    def exporting(kind: str, request: gr.Request) -> str:
        return str(examples(kind, request).download())

    def finished(update: dict) -> tuple:
        """The tab's own model after a run (its try-it pad answers with it), or nothing yet."""
        if not update:
            return gr.skip(), gr.skip()
        own = trained_model(update, page.models.load)
        return own, gr.update(model=page.pads.spec(own[OWN_KEY]) if own else None)

    def train_classes(kind: str, start: str, fine: bool, request: gr.Request):
        updates = train_own(page.trainer, page.answers.shelf, examples(kind, request), start,
                            fine, _session(request), _reader(demo, request))
        yield from _stream(updates, page.trainer.device_note(), finished)

    def train_api(path: str | None, kind: str, start: str, request: gr.Request) -> tuple:
        """/train_own: a .zip of class folders -> (the run's report, its checkpoint)."""
        return train_archive(page.trainer, page.answers.shelf, page.classes, path, kind, start,
                             _session(request))

    def try_from_server(model: dict, event: gr.EventData) -> dict:
        drawing = event._data  # what the pad sent: {"id", "png"}
        return gr.update(answer=page.answers.drawing_answer(drawing, OWN_KEY, model))

    def try_picture(photo, model: dict) -> tuple:
        return page.answers.try_picture(photo, model)

    kind_outputs = [*shown_classes, pad_box, try_box, photos, shot, try_photo, answer, seen]
    gr.on([demo.load, kind.change], _user_errors(show), [kind], kind_outputs,
          api_visibility="private")
    gr.on([add_class.click, new_name.submit], _user_errors(added_class), [kind, new_name],
          [*shown_classes, new_name], api_visibility="private")
    rename.click(_user_errors(renamed), [kind, target, rename_to], [*shown_classes, rename_to],
                 api_visibility="private")
    remove.click(_user_errors(removed), [kind, target], shown_classes, api_visibility="private")
    target.input(_user_errors(picked), [kind, target], [gallery, add_sketch, add_shot],
                 api_visibility="private")
    add_sketch.click(_user_errors(drawn), [kind, target, pad], shown_classes,
                     api_visibility="private").success(None, None, None,
                                                       js=_clear_pad("own-sketch"), queue=False)
    photos.upload(_user_errors(uploaded), [kind, target, photos], [*shown_classes, photos],
                  api_visibility="private")
    add_shot.click(_user_errors(uploaded), [kind, target, shot], [*shown_classes, shot],
                   api_visibility="private")
    archive.upload(_user_errors(imported), [kind, archive], [*shown_classes, archive],
                   api_visibility="private")
    export.click(_user_errors(exporting), [kind], exported, api_visibility="private")
    outputs = [*(view[k] for k in OUTPUTS[:-2]), checkpoint, run_state, status, own_model,
               try_pad]
    train_btn.click(_user_errors(train_classes), [kind, start, fine_tune], outputs,
                    api_visibility="private", concurrency_limit=TRAINING_CALLS,
                    concurrency_id="train", show_progress="minimal",
                    show_progress_on=[view["progress"]])
    stop_btn.click(page.stop, None, status, queue=False, api_visibility="private")
    api_button.click(_user_errors(train_api), [api_archive, api_kind, api_start],
                     [api_report, api_checkpoint], api_name="train_own",
                     concurrency_limit=TRAINING_CALLS, concurrency_id="train")
    try_outputs = [answer, seen, try_status]
    try_pad.drawn(_user_errors(try_from_server), [own_model], try_pad, api_visibility="private",
                  trigger_mode="multiple", show_progress="hidden", concurrency_id="predict")
    try_photo.change(_user_errors(_own_image_file(_uploads_only(try_picture))),
                     [try_photo, own_model], try_outputs, api_visibility="private",
                     preprocess=False, concurrency_id="predict")
    page.model_buttons(use_btn, upload, onnx_btn, onnx_file, run_state, checkpoint, try_status,
                       tab_model=own_model, tab_pad=try_pad)


def _option_input(name: str, value, elem: str, step: float | None = None,
                  info: str | None = None, also: str = "", **shown) -> gr.Component:
    """A field of the Train form, labelled and bounded as core.config declares it: a dropdown of
    its choices, a checkbox, a slider (`step`) or a number box that shows its bounds (`also` added
    to them)."""
    opt, (lo, hi) = option_of(name), LIMITS.get(name, (None, None))
    common = dict(label=opt.form_label(), elem_id=f"train-{elem}", **shown)
    if opt.choices is not None:
        return gr.Dropdown(list(opt.allowed), value=value, **common)
    if isinstance(value, bool):
        return gr.Checkbox(value, **common)
    if step is not None:
        return gr.Slider(lo, hi, step=step, value=value, info=info, **common)
    bounds = f"{lo:g} to {hi:g} (checked on the server){also}"
    return gr.Number(value, precision=0 if isinstance(value, int) else None, minimum=lo,
                     maximum=hi, info=info or bounds, **common)


def _train_tab(demo: gr.Blocks, page: _Page) -> None:
    """Train: a form bounded as core.config declares, a live dashboard, stop and resume, the
    checkpoint to download, to use in the other tabs, or to upload."""
    trainer = page.trainer
    cap = trainer.settings.max_seconds
    with gr.Tab("Train", id="train"):
        with gr.Row():
            with gr.Column(scale=1, min_width=320):
                fast = gr.Button(f"⚡ Fast preset: {FAST['model']} on "
                                 f"{dataset_label(FAST['dataset'])}", elem_id="train-fast")
                form = {
                    "dataset": gr.Dropdown([(dataset_label(d), d) for d in
                                            offered_datasets(trainer.settings)],
                                           value=FAST["dataset"], label="Dataset",
                                           elem_id="train-dataset"),
                    "folder": gr.Textbox("", label="Image folder", visible=False,
                                         elem_id="train-folder",
                                         info="a path inside the folder this server allows; one "
                                              "sub-folder per class"),
                    "model": gr.Dropdown(list_models(), value=FAST["model"], label="Model",
                                         elem_id="train-model", info="choosing a model (or "
                                         "dataset) fills in its default recipe"),
                    "epochs": _option_input("epochs", FAST["epochs"], "epochs", step=1),
                    "batch_size": _option_input("batch_size", FAST["batch_size"], "batch"),
                    "lr": _option_input("lr", FAST["lr"], "lr"),
                    "optimizer": _option_input("optimizer", FAST["optimizer"], "optimizer"),
                    "val_split": _option_input("val_split", 0.0, "val", step=0.05,
                                               info="fraction of the training images held out"),
                    "augment": _option_input("augment", FAST["augment"], "augment"),
                    "amp": _option_input("amp", FAST["amp"], "amp", visible=trainer.amp_available),
                }
                with gr.Accordion("Budget", open=False, elem_id="train-budget"):
                    form["max_steps"] = _option_input("max_steps", 0, "max-steps")
                    form["max_seconds"] = _option_input(
                        "max_seconds", 0.0, "max-seconds",
                        also=f"; this server stops every run after {cap:g} s" if cap else "")
                    form["max_train_images"] = _option_input(
                        "max_train_images", 0, "max-images",
                        info="short epochs: watch several in seconds")
                with gr.Row():
                    train_btn = gr.Button("Train", variant="primary", elem_id="train-start")
                    stop_btn = gr.Button("Stop", variant="stop", elem_id="train-stop")
                    resume_btn = gr.Button("Resume", elem_id="train-resume")
                status = gr.Markdown(trainer.device_note(), elem_id="train-status")
            with gr.Column(scale=2):
                view = _dashboard("train", "Pick a dataset and a model, then click Train.")
                with gr.Row():
                    checkpoint = gr.File(label="Checkpoint (download)", interactive=False,
                                         height=140, elem_id="train-checkpoint")
                    with gr.Column():
                        onnx_btn, onnx_file = _onnx_download("train")
                    with gr.Column():
                        use_btn = gr.Button("Use this model", elem_id="train-use")
                        upload = gr.File(label="Upload a checkpoint (.pt)", file_types=[".pt"],
                                         height=140, elem_id="train-upload")
                use_status = gr.Markdown(elem_id="train-use-status")
    run_state = gr.State({"checkpoint": None, "resumable": False})
    outputs = [*view.values(), checkpoint, run_state, status]

    def train(*args):
        *values, request = args
        asked = TrainRequest(**dict(zip(REQUEST_FIELDS, values)))
        yield from _stream(trainer.run(asked, _session(request), listening=_reader(demo, request)),
                           trainer.device_note())

    def resume(run: dict, folder: str, request: gr.Request):
        if not (run or {}).get("resumable"):
            raise _refusal(texts.NOTHING_TO_RESUME)
        updates = trainer.run(TrainRequest(folder=folder), _session(request),
                              resume_from=run["checkpoint"], listening=_reader(demo, request))
        yield from _stream(updates, trainer.device_note())

    def fill_recipe(dataset: str, model: str) -> tuple:
        r = recipe(model, dataset)
        return (*(r[k] for k in RECIPE_FIELDS), gr.update(visible=is_folder_dataset(dataset)))

    def fast_preset() -> tuple:
        return FAST["dataset"], FAST["model"], 0.0, *fill_recipe(FAST["dataset"], FAST["model"])

    def leave(request: gr.Request) -> None:
        trainer.stop(_session(request))
        page.classes.session_ended(_session(request))
        trainer.folders.session_ended(_session(request))

    recipe_outputs = [*(form[k] for k in RECIPE_FIELDS), form["folder"]]
    gr.on([form["dataset"].input, form["model"].input], _user_errors(fill_recipe),
          [form["dataset"], form["model"]], recipe_outputs, queue=False, api_visibility="private")
    fast.click(fast_preset, None, [form["dataset"], form["model"], form["val_split"],
                                   *recipe_outputs], queue=False, api_visibility="private")
    # One training at a time on this machine; predictions have their own queue ("predict").
    gr.on([train_btn.click, resume_btn.click], page.queued, None, status, queue=False,
          api_visibility="private")
    running = dict(concurrency_limit=TRAINING_CALLS, concurrency_id="train",
                   show_progress="minimal", show_progress_on=[view["progress"]])
    train_btn.click(_user_errors(_named(train, REQUEST_FIELDS)),
                    [form[k] for k in REQUEST_FIELDS], outputs, api_name="train", **running)
    resume_btn.click(_user_errors(resume), [run_state, form["folder"]], outputs,
                     api_visibility="private",
                     **running)
    stop_btn.click(page.stop, None, status, queue=False, api_name="stop_training")
    page.model_buttons(use_btn, upload, onnx_btn, onnx_file, run_state, checkpoint, use_status)
    # A visitor who leaves stops their training, so the machine is free for the next one.
    demo.unload(leave)


def build_app(shelf: Shelf | None = None, settings: ServerSettings | None = None) -> gr.Blocks:
    settings, shelf = settings or ServerSettings.make(), shelf or Shelf()
    trainer = Trainer(settings)
    assets = PageAssets(cache_dir() / "page")
    pads = PageModels(assets, cache_dir() / "onnx", shelf.folder)
    # Uploads and answers' images are files: those older than an hour are deleted, hourly.
    with _Blocks(title="TinyVision Studio", delete_cache=(3600, 3600)) as demo:
        gr.Markdown(texts.TITLE)
        page = _Page(Answers(shelf), trainer, VisitorModels(trainer.folders),
                     ClassFolders(settings.runs_root / "classes"), pads,
                     runtime_sources(assets), assets.add("digit_pad.mjs", PAD_CODE.encode()),
                     gr.State({}, time_to_live=SESSION_MODELS_TTL_S))
        _draw_tab(page)
        _photo_tab(page)
        _own_tab(demo, page)
        _train_tab(demo, page)
    demo.page_assets = assets  # served beside Gradio's routes (launch)
    demo.trainer = trainer  # for benches and tests that watch the runs
    demo.max_upload_mb = settings.max_upload_mb
    default = shelf.default(DIGITS)
    pads.warm([shelf.models[default]] if default else [])
    return demo


def launch(demo: gr.Blocks | None = None, **kwargs) -> gr.Blocks:
    """Start the server (host/port from GRADIO_SERVER_NAME/GRADIO_SERVER_PORT unless given), with
    the page's own files (core.services.page_assets) served beside Gradio's routes.

    show_error=False: only messages written for users (gr.Error, raised from InputError) reach the
    page and the API; everything else is texts.GENERIC_ERROR there and a traceback in the log.
    """
    demo = demo or build_app()
    # An image too large to decode safely is refused wherever it is decoded (the web framework
    # decodes some inputs itself), not decoded with a warning in the log.
    warnings.filterwarnings("error", category=Image.DecompressionBombWarning)
    demo.queue(default_concurrency_limit=2, max_size=QUEUE_MAX)
    routes = [demo.page_assets.route()] if hasattr(demo, "page_assets") else []
    upload_mb = getattr(demo, "max_upload_mb", MAX_UPLOAD_MB)
    kwargs = {"max_file_size": f"{upload_mb}mb", "state_session_capacity": SESSIONS_HELD, **kwargs}
    demo.launch(show_error=False, **kwargs,
                app_kwargs={"routes": routes,
                            "middleware": [http_guard(upload_mb << 20), page_compression()]})
    return demo


if __name__ == "__main__":
    # The server's log: a line per refusal or stopped run, tracebacks of what went wrong.
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("tinyvision").addHandler(handler)
    logging.getLogger("tinyvision").setLevel(logging.INFO)
    launch(build_app(settings=ServerSettings.from_args()))
