"""TinyVision Studio: the web app. Builds the page and wires events to the handlers in core/; nothing else.

    python app.py    # http://127.0.0.1:7860 (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT to change)
"""
from __future__ import annotations

import argparse
import functools
import inspect
import logging
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import gradio as gr
from gradio.utils import get_upload_folder, is_in_or_equal
from PIL import Image

from core.handlers import DIGITS, EMPTY_PHOTO, EMPTY_SKETCH, PHOTOS, TOP_K, Studio, blank_canvas
from core.inference import InputError, Predictor, decoding_error
from core.models import list_models
from core.own_classes import ExampleSet, archive_kind
from core.strokes import CANVAS
from core.train import OPTIMIZERS
from core.training_ui import (
    FAST,
    LIMITS,
    OUTPUTS,
    TABLE_HEADERS,
    TrainingService,
    TrainRequest,
    dataset_label,
    is_folder_dataset,
    progress_html,
    recipe,
)

ROOT = Path(__file__).resolve().parent
EXAMPLES = sorted((ROOT / "examples" / "photos").glob("*.[jp][pn]g"))
BRUSH_RADIUS = 6  # a pen-like line on this canvas (about 12 px wide): thin lines keep small loops open
log = logging.getLogger("tinyvision.app")


GENERIC_ERROR = "Something went wrong on the server; the details are in its log. Try again, or another input."
# What a request is told whose payload Gradio itself cannot read (a number where an image belongs); Gradio's own
# text of such errors is written for developers and may name server paths.
UNREADABLE_INPUT = "expected an uploaded image file (a sketch: {'composite': handle_file(...)}) in what was sent"


def _user_errors(fn: Callable) -> Callable:
    """Show an InputError's message on the page and return it to API callers; any other error is logged with its
    traceback and answered with GENERIC_ERROR. For a generator (a streaming event) also while it streams."""
    def refusal(exc: Exception) -> gr.Error:
        if isinstance(exc, InputError):
            return gr.Error(str(exc))
        log.exception("%s failed", fn.__name__)
        return gr.Error(GENERIC_ERROR)

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

    The app launches with show_error=False, so only gr.Error messages reach the page and the API. Gradio checks and
    decodes each input before any handler runs (pydantic validation, a component's preprocess, such as the
    sketchpad's image decoding); what goes wrong there is answered in the project's words, its details logged.
    """

    async def preprocess_data(self, *args, **kwargs):
        try:
            return await super().preprocess_data(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as exc:
            log.warning("an input could not be read", exc_info=True)
            raise gr.Error(decoding_error(exc.__cause__, detail=False) or UNREADABLE_INPUT) from None


def _own_image_file(fn: Callable) -> Callable:
    """Give the model's-eye image of every answer its own file. Gradio stores an output image under the hash of its
    bytes and rewrites that file on every request, so two requests with the same image (two visitors clicking one
    example photo, or the same sketch sent by many clients) race: a download that reads the file while the other
    request truncates it gets an empty, broken image. A per-answer tag in the PNG's text chunk changes the hash."""
    @functools.wraps(fn)
    def wrapper(*args):
        label, seen, status = fn(*args)
        if seen is not None:
            seen = Image.fromarray(seen)
            seen.info["answer"] = uuid.uuid4().hex
        return label, seen, status
    return wrapper


def _uploads_only(fn: Callable) -> Callable:
    """Refuse a photo that was not uploaded to this server. With preprocess=False the raw payload reaches the
    handler, and Gradio checks the path only of payloads that carry its FileData marker: a {"path": ...} without
    it would make the handler open any file of the server's (and say whether it exists)."""
    @functools.wraps(fn)
    def wrapper(photo, *args):
        path = photo.get("path") if isinstance(photo, dict) else photo
        if photo is not None and not (isinstance(path, str) and is_in_or_equal(path, get_upload_folder())):
            raise InputError("expected an uploaded image file")
        return fn(photo, *args)
    return wrapper


def _blank_sketch() -> dict:
    # A sketchpad with an image opens with the brush selected; an empty one opens with no tool.
    white = blank_canvas(CANVAS)
    return {"background": white, "layers": [], "composite": white}


# The Clear button presses the sketchpad's own "Clear canvas", and after any clear the brush is picked again (a
# cleared editor has no tool selected). The clear is an input event like a stroke: its prediction resets the answer.
def _click_clear(elem_id: str) -> str:
    return f"""() => {{ document.querySelector("#{elem_id} button[aria-label='Clear canvas']")?.click(); }}"""


def _pick_brush(elem_id: str) -> str:
    brush = f"""document.querySelector("#{elem_id} button[aria-label='Brush']")?.click()"""
    return f"() => {{ setTimeout(() => {brush}, 0); }}"


def _sketchpad(elem_id: str, label: str, height: int = 520) -> gr.Sketchpad:
    """The app's drawing canvas (the Draw tab's, and those of the own-classes tab): a pen-like black brush on white,
    cleared in the browser, the brush picked again after each clear."""
    pad = gr.Sketchpad(value=_blank_sketch(), type="numpy", canvas_size=(CANVAS, CANVAS), fixed_canvas=True,
                       brush=gr.Brush(default_size=BRUSH_RADIUS, colors=["#000000"], color_mode="fixed"),
                       eraser=gr.Eraser(default_size=2 * BRUSH_RADIUS), layers=False, transforms=(), height=height,
                       label=label, elem_id=elem_id)
    pad.clear(None, None, None, js=_pick_brush(elem_id), queue=False, api_visibility="private")
    return pad


def _session(request: gr.Request | None) -> str:
    return request.session_hash if request is not None and request.session_hash else ""


def _train_tab(demo: gr.Blocks, training: TrainingService, studio: Studio, session_models: gr.State,
               digit_model: gr.Dropdown, photo_model: gr.Dropdown) -> None:
    """The Train tab: a form bounded by core.train.LIMITS, a live dashboard, stop/resume, download, use, upload."""
    def bounds(name: str) -> str:
        lo, hi = LIMITS[name]
        return f"{lo:g} to {hi:g} (checked on the server)"

    cap = f"; this server stops every run after {training.max_seconds:g} s" if training.max_seconds else ""
    with gr.Tab("Train", id="train"):
        with gr.Row():
            with gr.Column(scale=1, min_width=320):
                fast = gr.Button(f"⚡ Fast preset: {FAST['model']} on {dataset_label(FAST['dataset'])}",
                                 elem_id="train-fast")
                dataset = gr.Dropdown([(dataset_label(d), d) for d in training.datasets], value=FAST["dataset"],
                                      label="Dataset", elem_id="train-dataset")
                folder = gr.Textbox("", label="Image folder", visible=False, elem_id="train-folder",
                                    info="a path inside the folder this server allows; one sub-folder per class")
                model = gr.Dropdown(list_models(), value=FAST["model"], label="Model", elem_id="train-model",
                                    info="choosing a model (or dataset) fills in its default recipe")
                epochs = gr.Slider(*LIMITS["epochs"], step=1, value=FAST["epochs"], label="Epochs",
                                   elem_id="train-epochs")
                batch_size = gr.Number(FAST["batch_size"], precision=0, minimum=LIMITS["batch_size"][0],
                                       maximum=LIMITS["batch_size"][1], label="Batch size", info=bounds("batch_size"),
                                       elem_id="train-batch")
                lr = gr.Number(FAST["lr"], minimum=LIMITS["lr"][0], maximum=LIMITS["lr"][1], label="Learning rate",
                               info=bounds("lr"), elem_id="train-lr")
                optimizer = gr.Dropdown(list(OPTIMIZERS), value=FAST["optimizer"], label="Optimizer",
                                        elem_id="train-optimizer")
                val_split = gr.Slider(*LIMITS["val_split"], step=0.05, value=0.0, label="Validation split",
                                      info="fraction of the training images held out", elem_id="train-val")
                augment = gr.Checkbox(FAST["augment"], label="Augmentation", elem_id="train-augment")
                amp = gr.Checkbox(True, label="Mixed precision (AMP)", visible=training.amp_available,
                                  elem_id="train-amp")
                with gr.Accordion("Budget", open=False, elem_id="train-budget"):
                    max_steps = gr.Number(0, precision=0, minimum=LIMITS["max_steps"][0],
                                          maximum=LIMITS["max_steps"][1], label="Max steps (0 = no limit)",
                                          info=bounds("max_steps"), elem_id="train-max-steps")
                    max_seconds = gr.Number(0, minimum=LIMITS["max_seconds"][0], maximum=LIMITS["max_seconds"][1],
                                            label="Max seconds of training (0 = no limit)",
                                            info=bounds("max_seconds") + cap, elem_id="train-max-seconds")
                    max_train_images = gr.Number(0, precision=0, minimum=LIMITS["max_train_images"][0],
                                                 maximum=LIMITS["max_train_images"][1],
                                                 label="Train on at most N images (0 = all)",
                                                 info="short epochs: watch several in seconds",
                                                 elem_id="train-max-images")
                with gr.Row():
                    train_btn = gr.Button("Train", variant="primary", elem_id="train-start")
                    stop_btn = gr.Button("Stop", variant="stop", elem_id="train-stop")
                    resume_btn = gr.Button("Resume", elem_id="train-resume")
                status = gr.Markdown(training.device_note(), elem_id="train-status")
            with gr.Column(scale=2):
                view = _dashboard("train", "Pick a dataset and a model, then click Train.")
                with gr.Row():
                    checkpoint = gr.File(label="Checkpoint (download)", interactive=False, height=140,
                                         elem_id="train-checkpoint")
                    with gr.Column():
                        onnx_btn, onnx_out = _onnx_download("train")
                    with gr.Column():
                        use_btn = gr.Button("Use this model", elem_id="train-use")
                        upload = gr.File(label="Upload a checkpoint (.pt)", file_types=[".pt"], height=140,
                                         elem_id="train-upload")
                use_status = gr.Markdown(elem_id="train-use-status")
    run_state = gr.State({"checkpoint": None, "resumable": False})

    shown = {**view, "checkpoint": checkpoint, "run": run_state}

    def stream(updates) -> Iterator[tuple]:
        yield from _stream(updates, training.device_note())

    def train(dataset: str, model: str, epochs: int, batch_size: int, lr: float, optimizer: str, val_split: float,
              augment: bool, amp: bool, max_steps: int, max_seconds: float, max_train_images: int, folder: str,
              request: gr.Request):
        asked = TrainRequest(dataset=dataset, model=model, epochs=epochs, batch_size=batch_size, lr=lr,
                             optimizer=optimizer, val_split=val_split, augment=augment, amp=amp, max_steps=max_steps,
                             max_seconds=max_seconds, max_train_images=max_train_images, folder=folder)
        yield from stream(training.run(asked, _session(request)))

    def resume(run: dict, request: gr.Request):
        if not (run or {}).get("resumable"):
            raise gr.Error("Nothing to resume: stop a run after its first epoch, or upload a stopped run's checkpoint.")
        yield from stream(training.run(TrainRequest(), _session(request), resume_from=run["checkpoint"]))

    def stop(request: gr.Request) -> str:
        if training.stop(_session(request)):
            return "Stopping after this batch; the last completed epoch's checkpoint is kept."
        return "No training of yours is running."

    def queued_note() -> str:
        return ("Another training is running on this machine; yours waits in the queue and starts when it ends."
                if training.busy() else gr.skip())

    def use(run: dict, own: dict):
        own, kind, key, message = training.use_checkpoint((run or {}).get("checkpoint"), own)
        return own, *_offer_update(studio, own, kind, key), message

    def adopt(path: str | None, own: dict):
        own, kind, key, run, message = training.adopt_upload(path, own)
        return own, *_offer_update(studio, own, kind, key), run, run["checkpoint"], message

    def fill_recipe(dataset: str, model: str) -> tuple:
        r = recipe(model, dataset)
        return r["epochs"], r["batch_size"], r["lr"], r["optimizer"], r["augment"], gr.update(
            visible=is_folder_dataset(dataset))

    form = [dataset, model, epochs, batch_size, lr, optimizer, val_split, augment, amp, max_steps, max_seconds,
            max_train_images, folder]
    recipe_fields = [epochs, batch_size, lr, optimizer, augment, folder]
    outputs = [*shown.values(), status]
    for chosen in (dataset.input, model.input):
        chosen(_user_errors(fill_recipe), [dataset, model], recipe_fields, queue=False, api_visibility="private")
    fast.click(lambda: (FAST["dataset"], FAST["model"], 0.0, *fill_recipe(FAST["dataset"], FAST["model"])), None,
               [dataset, model, val_split, *recipe_fields], queue=False, api_visibility="private")
    # One training at a time on this machine; predictions have their own queue ("predict") and stay responsive.
    train_btn.click(queued_note, None, status, queue=False, api_visibility="private")
    train_btn.click(_user_errors(train), form, outputs, api_name="train", concurrency_limit=1,
                    concurrency_id="train", show_progress="minimal", show_progress_on=[view["progress"]])
    resume_btn.click(queued_note, None, status, queue=False, api_visibility="private")
    resume_btn.click(_user_errors(resume), [run_state], outputs, api_visibility="private", concurrency_limit=1,
                     concurrency_id="train", show_progress="minimal", show_progress_on=[view["progress"]])
    stop_btn.click(stop, None, status, queue=False, api_name="stop_training")
    use_btn.click(_user_errors(use), [run_state, session_models],
                  [session_models, digit_model, photo_model, use_status], api_visibility="private")
    upload.upload(_user_errors(adopt), [upload, session_models],
                  [session_models, digit_model, photo_model, run_state, checkpoint, use_status],
                  api_visibility="private")
    _wire_onnx(training, onnx_btn, run_state, onnx_out, use_status)
    def leave(request: gr.Request) -> None:
        training.stop(_session(request))
        training.session_ended(_session(request))

    # A visitor who leaves stops their training, so the machine is free for the next one.
    demo.unload(leave)

OWN_INTRO = ("Teach a model your own classes: add 2 to 20 classes by name, give each a few examples (draw them, "
             "or upload photos or one .zip with a folder per class), then train. It starts from the shipped "
             "model's features, so ten examples per class are enough for a first try; a fifth of each class "
             "(rounded down) is held out to show how well it does. Your examples and models are yours only, and "
             "are removed an hour after you leave.")
OWN_EMPTY = "✏️ **Draw** something here to ask your model what it is."


def _own_tab(demo: gr.Blocks, training: TrainingService, studio: Studio, session_models: gr.State,
             digit_model: gr.Dropdown, photo_model: gr.Dropdown) -> None:
    """The Your classes tab: classes and examples per visitor, training from the shipped model, trying it out."""
    def examples(kind: str, request: gr.Request) -> ExampleSet:
        return training.examples(_session(request), kind)

    with gr.Tab("Your classes", id="own"):
        gr.Markdown(OWN_INTRO)
        with gr.Row():
            with gr.Column(scale=1, min_width=340):
                kind = gr.Radio([("Sketches", "sketch"), ("Photos", "photo")], value="sketch", label="Kind",
                                elem_id="own-kind")
                with gr.Row():
                    new_name = gr.Textbox(label="New class", placeholder="e.g. circle", max_lines=1,
                                          elem_id="own-new-name")
                    add_class = gr.Button("Add class", elem_id="own-add-class")
                target = gr.Dropdown([], value=None, label="Class", info="new examples go to this class",
                                     elem_id="own-class")
                with gr.Row():
                    rename_to = gr.Textbox(label="Rename it to", max_lines=1, elem_id="own-rename-to")
                    rename = gr.Button("Rename", elem_id="own-rename")
                    remove = gr.Button("Remove class", variant="stop", elem_id="own-remove")
                summary = gr.Markdown(elem_id="own-summary")
                message = gr.Markdown(elem_id="own-message")
                gallery = gr.Gallery(label="Examples of this class", columns=6, height=220, elem_id="own-gallery")
            with gr.Column(scale=2):
                pad = _sketchpad("own-sketch", "Draw an example", height=460)
                add_sketch = gr.Button("Add to the class", variant="primary", elem_id="own-add-sketch")
                photos = gr.File(file_count="multiple", file_types=["image"], label="Upload images to the class",
                                 visible=False, elem_id="own-photos")
                shot = gr.Image(sources=["webcam", "clipboard"], type="filepath", label="Webcam or paste",
                                visible=False, height=240, elem_id="own-shot")
                add_shot = gr.Button("Add to the class", visible=False, elem_id="own-add-shot")
                with gr.Row():
                    archive = gr.File(file_types=[".zip"], label="Upload a .zip (one folder per class)", height=120,
                                      elem_id="own-zip")
                    with gr.Column():
                        export = gr.Button("Download my examples (.zip)", elem_id="own-export")
                        exported = gr.File(label="Your examples", interactive=False, height=120,
                                           elem_id="own-zip-out")
        with gr.Row():
            start = gr.Radio([("the shipped model (transfer)", "transfer"), ("scratch", "scratch")],
                             value="transfer", label="Start from", elem_id="own-start")
            fine_tune = gr.Checkbox(True, label="Fine-tune the whole net", elem_id="own-fine-tune",
                                    info="off: only the new output layer learns (faster, less accurate)")
            train_btn = gr.Button("Train on my classes", variant="primary", elem_id="own-train")
            stop_btn = gr.Button("Stop", variant="stop", elem_id="own-stop")
        status = gr.Markdown(elem_id="own-status")
        with gr.Row():
            with gr.Column(scale=2):
                view = _dashboard("own", "Add classes and examples, then click Train on my classes.")
            with gr.Column(scale=1, min_width=320):
                try_pad = _sketchpad("own-try", "Try it: draw", height=360)
                try_photo = gr.Image(type="filepath", sources=["upload", "clipboard", "webcam"],
                                     label="Try it: a photo", visible=False, height=240, elem_id="own-try-photo")
                answer = gr.Label(num_top_classes=3, label="Your model says", elem_id="own-label")
                seen = gr.Image(label="What the model saw", interactive=False, height=160, buttons=[], format="png",
                                elem_id="own-seen")
                try_status = gr.Markdown(elem_id="own-try-status")
                checkpoint = gr.File(label="Checkpoint (download)", interactive=False, height=120,
                                     elem_id="own-checkpoint")
                onnx_btn, onnx_out = _onnx_download("own")
                use_btn = gr.Button("Use this model in the other tabs", elem_id="own-use")
                upload = gr.File(label="Upload a checkpoint (.pt)", file_types=[".pt"], height=120,
                                 elem_id="own-upload")
        # The /train_own endpoint's inputs (an archive, its kind, the start) and outputs, for API callers only.
        api_archive = gr.File(visible=False)
        api_kind, api_start = gr.Textbox("", visible=False), gr.Textbox("transfer", visible=False)
        api_report, api_checkpoint = gr.JSON(visible=False), gr.File(visible=False)
        api_button = gr.Button(visible=False)
    run_state = gr.State({"checkpoint": None, "resumable": False})
    own_model = gr.State({})  # {"own": Predictor} once this tab trained or was given a model

    def add_label(name: str | None) -> tuple:
        return tuple(gr.update(value=f"Add to {name}" if name else "Add to the class") for _ in (add_sketch, add_shot))

    def refresh(ex: ExampleSet, chosen: str | None = None, note: str = "") -> tuple:
        names = list(ex.classes())
        chosen = chosen if chosen in names else (names[-1] if names else None)
        return gr.update(choices=names, value=chosen), ex.summary(), ex.gallery(chosen), note, *add_label(chosen)

    shown_classes = [target, summary, gallery, message, add_sketch, add_shot]

    def show(kind: str, request: gr.Request) -> tuple:
        sketches = kind == "sketch"
        *classes, for_sketch, for_shot = refresh(examples(kind, request))
        return (*classes, {**for_sketch, "visible": sketches}, {**for_shot, "visible": not sketches},
                *(gr.update(visible=sketches) for _ in (pad, try_pad)),
                *(gr.update(visible=not sketches) for _ in (photos, shot, try_photo)))

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
        ex = examples(kind, request)
        if not path:
            raise InputError("no archive was uploaded")
        report = ex.import_zip(path)
        return (*refresh(ex, None, report.message().capitalize() + "."), None)

    def exporting(kind: str, request: gr.Request) -> str:
        ex = examples(kind, request)
        if not ex.counts():
            raise InputError("there are no examples to download yet")
        return str(ex.export_zip(ex.folder.parent / f"my-{kind}-classes.zip"))

    def start_from(kind: str, start: str) -> str | None:
        if start not in ("transfer", "scratch"):
            raise InputError(f"start from 'transfer' or 'scratch' (got {start!r})")
        if start == "scratch":
            return None
        key = studio.default(DIGITS if kind == "sketch" else PHOTOS)
        if key is None:
            raise InputError("no shipped model of this kind is installed to start from; train from scratch")
        return str(studio.models[key].path)

    def own_predictor(update: dict) -> dict:
        path = (update.get("run") or {}).get("checkpoint")
        return {"own": Predictor.load(path)} if path else {}

    def train_classes(kind: str, start: str, fine: bool, request: gr.Request):
        ex = examples(kind, request)
        updates = training.run_own(ex, start_from(kind, start), fine, _session(request))
        yield from _stream(updates, training.device_note(), own_predictor)

    def train_api(path: str | None, kind: str, start: str, request: gr.Request) -> tuple[dict, str]:
        """/train_own: a .zip of class folders -> (the run's report, its checkpoint). The kind defaults to the
        one the archive records (an archive downloaded from this tab), else photo."""
        if not path:
            raise InputError("send a .zip with one folder of images per class")
        ex = training.examples(f"api-{uuid.uuid4().hex[:12]}", kind or archive_kind(path) or "photo")
        try:
            report = ex.import_zip(path)
            try:
                ex.check_trainable()
            except InputError as exc:  # say what the import skipped: it is often why
                raise InputError(f"{exc}; the archive: {report.message()}") from None
            *_, final = training.run_own(ex, start_from(ex.kind, start or "transfer"), True, _session(request))
        finally:
            ex.clear()
        return final["report"], final["checkpoint"]

    def stop_classes(request: gr.Request) -> str:
        if training.stop(_session(request)):
            return "Stopping after this batch; the last completed epoch's checkpoint is kept."
        return "No training of yours is running."

    def try_sketch(sketch, model: dict) -> tuple:
        if not model:
            return None, None, "Train on your classes first (or upload a checkpoint)."
        if model["own"].kind != "sketch":
            raise InputError("this model reads photos: switch the kind to Photos to try it")
        label, seen_, note = studio.predict_digit(sketch, "own", model)
        return label, seen_, OWN_EMPTY if label is None else note

    def try_picture(photo, model: dict) -> tuple:
        if not model:
            return None, None, "Train on your classes first (or upload a checkpoint)."
        if model["own"].kind == "sketch":
            raise InputError("this model reads sketches: switch the kind to Sketches to try it")
        return studio.classify_image(photo, "own", model)

    def use_classes_model(run: dict, own: dict):
        own, kind_, key, note = training.use_checkpoint((run or {}).get("checkpoint"), own)
        return own, *_offer_update(studio, own, kind_, key), note

    def adopt_classes_model(path: str | None, own: dict):
        own, kind_, key, run, note = training.adopt_upload(path, own)
        return own, *_offer_update(studio, own, kind_, key), run, {"own": own[key]}, run["checkpoint"], note

    kind_outputs = [*shown_classes, pad, try_pad, photos, shot, try_photo]
    kind.change(_user_errors(show), [kind], kind_outputs, api_visibility="private")
    demo.load(_user_errors(show), [kind], kind_outputs, api_visibility="private")
    add_class.click(_user_errors(added_class), [kind, new_name], [*shown_classes, new_name],
                    api_visibility="private")
    new_name.submit(_user_errors(added_class), [kind, new_name], [*shown_classes, new_name],
                    api_visibility="private")
    rename.click(_user_errors(renamed), [kind, target, rename_to], [*shown_classes, rename_to],
                 api_visibility="private")
    remove.click(_user_errors(removed), [kind, target], shown_classes, api_visibility="private")
    target.input(_user_errors(picked), [kind, target], [gallery, add_sketch, add_shot], api_visibility="private")
    add_sketch.click(_user_errors(drawn), [kind, target, pad], shown_classes, api_visibility="private").success(
        None, None, None, js=_click_clear("own-sketch"), queue=False)
    photos.upload(_user_errors(uploaded), [kind, target, photos], [*shown_classes, photos], api_visibility="private")
    add_shot.click(_user_errors(uploaded), [kind, target, shot], [*shown_classes, shot], api_visibility="private")
    archive.upload(_user_errors(imported), [kind, archive], [*shown_classes, archive], api_visibility="private")
    export.click(_user_errors(exporting), [kind], exported, api_visibility="private")
    outputs = [*(view[k] for k in OUTPUTS[:-2]), checkpoint, run_state, status, own_model]
    train_btn.click(_user_errors(train_classes), [kind, start, fine_tune], outputs, api_visibility="private",
                    concurrency_limit=1, concurrency_id="train", show_progress="minimal",
                    show_progress_on=[view["progress"]])
    stop_btn.click(stop_classes, None, status, queue=False, api_visibility="private")
    api_button.click(_user_errors(train_api), [api_archive, api_kind, api_start], [api_report, api_checkpoint],
                     api_name="train_own", concurrency_limit=1, concurrency_id="train")
    try_outputs = [answer, seen, try_status]
    try_pad.input(_user_errors(_own_image_file(try_sketch)), [try_pad, own_model], try_outputs,
                  api_visibility="private", trigger_mode="always_last", show_progress="hidden",
                  concurrency_id="predict")
    try_photo.change(_user_errors(_own_image_file(_uploads_only(try_picture))), [try_photo, own_model], try_outputs,
                     api_visibility="private", preprocess=False, concurrency_id="predict")
    use_btn.click(_user_errors(use_classes_model), [run_state, session_models],
                  [session_models, digit_model, photo_model, try_status], api_visibility="private")
    upload.upload(_user_errors(adopt_classes_model), [upload, session_models],
                  [session_models, digit_model, photo_model, run_state, own_model, checkpoint, try_status],
                  api_visibility="private")
    _wire_onnx(training, onnx_btn, run_state, onnx_out, try_status)


def _onnx_download(prefix: str) -> tuple[gr.Button, gr.File]:
    """A "Download ONNX" button and the file it fills (core.export: the model to run anywhere)."""
    return (gr.Button("Download ONNX", elem_id=f"{prefix}-onnx"),
            gr.File(label="ONNX model (download)", interactive=False, height=120, elem_id=f"{prefix}-onnx-file"))


def _wire_onnx(training: TrainingService, button: gr.Button, run_state: gr.State, out: gr.File,
               note: gr.Markdown) -> None:
    def exported(run: dict) -> tuple[str, str]:
        return training.onnx_file((run or {}).get("checkpoint")), ONNX_NOTE

    # Exports take seconds of CPU: one at a time, beside the predictions' and the trainings' queues.
    button.click(_user_errors(exported), [run_state], [out, note], api_visibility="private",
                 concurrency_limit=1, concurrency_id="export")


ONNX_NOTE = ("The ONNX file takes the prepared image as float32 [N, C, H, W] in 0..1 and answers with probabilities "
             "and a score; the README shows how to run it with onnxruntime.")


def _offer_update(studio: Studio, own: dict, kind: str, key: str) -> tuple:
    """The Draw and photo tabs' model dropdowns with a visitor's model added (and selected in its own tab)."""
    return tuple(gr.update(choices=studio.choices(k, own), **({"value": key} if k == kind else {}))
                 for k in (DIGITS, PHOTOS))


def _dashboard(prefix: str, prompt: str) -> dict[str, gr.Component]:
    """The live view of a training (progress, curves, test samples, per-class bars, confusion matrix, metrics table,
    log, report): the OUTPUTS of core.training_ui but the checkpoint and the run."""
    progress = gr.HTML(progress_html(0.0, prompt), elem_id=f"{prefix}-progress")
    with gr.Row():
        # The figures carry their own titles; a floating label would cover them.
        curves = gr.Image(label="Loss and accuracy per epoch", show_label=False, interactive=False, format="png",
                          height=300, elem_id=f"{prefix}-curves")
        samples = gr.Image(label="Test samples", show_label=False, interactive=False, format="png", height=300,
                           elem_id=f"{prefix}-samples")
    with gr.Row():
        per_class = gr.Image(label="Per-class accuracy", show_label=False, interactive=False, format="png",
                             height=360, elem_id=f"{prefix}-per-class")
        confusion = gr.Image(label="Confusion matrix", show_label=False, interactive=False, format="png", height=360,
                             elem_id=f"{prefix}-confusion")
    table = gr.Dataframe(headers=TABLE_HEADERS, datatype="str", interactive=False, label="Metrics",
                         elem_id=f"{prefix}-table")
    log = gr.Textbox(label="Log", lines=3, max_lines=12, interactive=False, elem_id=f"{prefix}-log")
    report = gr.JSON(label="Latest report (the keys of the CLI's --json)", max_height=260, elem_id=f"{prefix}-report")
    return {"progress": progress, "curves": curves, "samples": samples, "per_class": per_class,
            "confusion": confusion, "table": table, "log": log, "report": report}


def _stream(updates: Iterator[dict], note: str, *extra: Callable[[dict], object]) -> Iterator[tuple]:
    """Core's update dicts (core.training_ui) as output tuples in OUTPUTS order, then the status note (sent once),
    then one value per `extra` function of the run's last update (the one with "run"); what did not change is
    skipped."""
    for update in updates:
        last = "run" in update
        yield (*(update[k] if k in update else gr.skip() for k in OUTPUTS), note,
               *(f(update) if last else gr.skip() for f in extra))
        note = gr.skip()


def training_from_args(argv: list[str] | None = None) -> TrainingService:
    """The Train tab's server settings: flags, else TINYVISION_ALLOW_FOLDERS / TINYVISION_MAX_TRAIN_SECONDS."""
    p = argparse.ArgumentParser(description="TinyVision Studio web app")
    p.add_argument("--allow-folders", metavar="DIR", default=os.environ.get("TINYVISION_ALLOW_FOLDERS"),
                   help="offer the image-folder dataset for folders inside DIR (nothing outside it)")
    p.add_argument("--max-train-seconds", type=float,
                   default=float(os.environ.get("TINYVISION_MAX_TRAIN_SECONDS", 0)),
                   help="cap every training run at this many seconds (0: no cap)")
    args = p.parse_args(argv)
    return TrainingService(folder_root=args.allow_folders, max_seconds=args.max_train_seconds)


def _answer_column(studio: Studio, kind: str, prefix: str, prompt: str, seen_size: str) -> tuple:
    """Model dropdown, prediction, status line and the model's-eye view of a predictor tab."""
    with gr.Column(scale=2):
        model = gr.Dropdown(choices=studio.choices(kind), value=studio.default(kind), label="Model",
                            elem_id=f"{prefix}-model")
        label = gr.Label(num_top_classes=TOP_K[kind], label="Prediction", elem_id=f"{prefix}-label")
        status = gr.Markdown(prompt, label="Status", elem_id=f"{prefix}-status")
        seen = gr.Image(label=f"What the model saw ({seen_size})", interactive=False, height=240, buttons=[],
                        format="png", elem_id=f"{prefix}-seen")
    return model, label, status, seen


def build_app(studio: Studio | None = None, training: TrainingService | None = None) -> gr.Blocks:
    studio = studio or Studio()
    predict_digit = _user_errors(_own_image_file(studio.predict_digit))
    classify_image = _user_errors(_own_image_file(_uploads_only(studio.classify_image)))

    # Every stroke uploads the canvas and every answer writes an image: files older than an hour are deleted, hourly.
    with _Blocks(title="TinyVision Studio", delete_cache=(3600, 3600)) as demo:
        gr.Markdown("# TinyVision Studio\nDraw a digit or drop in a photo; small models answer on this machine.")
        with gr.Tab("Draw a digit", id="draw"):
            with gr.Row():
                with gr.Column(scale=3):
                    sketch = _sketchpad("sketch", "Draw a digit")
                    clear_sketch = gr.Button("Clear", elem_id="clear-sketch")
                digit_model, digit_label, digit_status, digit_seen = _answer_column(studio, DIGITS, "digit",
                                                                                    EMPTY_SKETCH, "28x28")
            # /answer_digit: the same answer as one JSON dict (with "unsure"), for API callers only.
            digit_answer, digit_answer_button = gr.JSON(visible=False), gr.Button(visible=False)
        with gr.Tab("Classify a photo", id="photo"):
            with gr.Row():
                with gr.Column(scale=3):
                    photo = gr.Image(type="filepath", sources=["upload", "clipboard", "webcam"], label="Photo",
                                     height=360, elem_id="photo")
                    gr.Examples(examples=[[str(p)] for p in EXAMPLES], inputs=[photo], label="Examples")
                photo_model, photo_label, photo_status, photo_seen = _answer_column(studio, PHOTOS, "photo",
                                                                                    EMPTY_PHOTO, "32x32")
            photo_answer, photo_answer_button = gr.JSON(visible=False), gr.Button(visible=False)
        session_models = gr.State({})  # the models this visitor trained or uploaded (Train tab), theirs only
        training = training or TrainingService()
        _own_tab(demo, training, studio, session_models, digit_model, photo_model)
        _train_tab(demo, training, studio, session_models, digit_model, photo_model)

        digit_outputs = [digit_label, digit_seen, digit_status]
        # Each finished stroke is an input event; "always_last" skips strokes a busy server has not reached yet.
        # (The sketchpad's change event does not fire for strokes drawn in the browser.)
        sketch.input(predict_digit, [sketch, digit_model, session_models], digit_outputs, api_name="predict_digit",
                     trigger_mode="always_last", show_progress="hidden", concurrency_id="predict",
                     concurrency_limit=2)
        digit_model.change(predict_digit, [sketch, digit_model, session_models], digit_outputs,
                           api_visibility="private", show_progress="hidden", concurrency_id="predict")
        # Clearing happens in the browser. (A fresh canvas sent from the server left the editor reloading it, with a
        # spinner, and it dropped the next strokes.)
        clear_sketch.click(None, None, None, js=_click_clear("sketch"), queue=False, api_visibility="private")

        photo_outputs = [photo_label, photo_seen, photo_status]
        # The raw upload goes to the handler (preprocess=False) so that it, not Gradio's own decoder, opens the
        # file with the project's limits and a clear message for a bad one. Old results are cleared at once in
        # the browser, so a refused file never leaves the previous prediction on screen.
        photo.change(None, None, photo_outputs, js=f"() => [null, null, {EMPTY_PHOTO!r}]", queue=False,
                     api_visibility="private")
        photo.change(classify_image, [photo, photo_model, session_models], photo_outputs, api_name="classify_image",
                     preprocess=False, concurrency_id="predict")
        photo_model.change(classify_image, [photo, photo_model, session_models], photo_outputs, preprocess=False,
                           api_visibility="private", concurrency_id="predict")
        digit_answer_button.click(_user_errors(studio.answer_digit), [sketch, digit_model, session_models],
                                  digit_answer, api_name="answer_digit", concurrency_id="predict")
        photo_answer_button.click(_user_errors(_uploads_only(studio.answer_photo)),
                                  [photo, photo_model, session_models], photo_answer, api_name="answer_photo",
                                  preprocess=False, concurrency_id="predict")
    return demo


def launch(demo: gr.Blocks | None = None, **kwargs) -> gr.Blocks:
    """Start the server (host/port from GRADIO_SERVER_NAME/GRADIO_SERVER_PORT unless given).

    show_error=False: only messages written for users (gr.Error, raised from InputError) reach the page and the
    API; everything else is GENERIC_ERROR there and a traceback in the server's log.
    """
    demo = demo or build_app()
    demo.queue(default_concurrency_limit=2)
    demo.launch(show_error=False, **kwargs)
    return demo


if __name__ == "__main__":
    launch(build_app(training=training_from_args()))
