"""Honest answers: the energy score, its threshold fitted at the end of training and stored in the
checkpoint, and "not sure" for inputs that are none of a model's classes, through the handler and
through gradio_client."""
import numpy as np
import pytest
import torch
from PIL import Image

from bench.latency import sketch_payload
from bench.unsure import letters, scribbles
from conftest import ROOT
from core import checkpoint as ckpt
from core import train as T
from core.augment import augment_batch
from core.calibration import UNSURE_PASS, energy_score, fit_unsure_threshold
from core.imagedata import ImageData
from core.predictor import Predictor
from core.services.answers import Answers
from core.services.shelf import Shelf

CAT = ROOT / "examples" / "photos" / "cat.jpg"


@pytest.fixture(scope="module")
def answers():
    return Answers(Shelf())


def test_energy_score_is_the_tempered_logsumexp():
    logits = torch.tensor([[4.0, 0.0, -1.0], [0.1, 0.0, 0.2]])
    expected = 0.5 * torch.logsumexp(logits / 0.5, dim=1)
    assert torch.allclose(energy_score(logits, 0.5), expected)
    assert energy_score(logits)[0] > energy_score(logits)[1]  # a confident answer scores higher


def test_the_threshold_passes_the_asked_share_of_held_out_images():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (400, 1, 8, 8), generator=g, dtype=torch.uint8)
    data = ImageData(images, torch.zeros(400, dtype=torch.long), ["a", "b"], (0.5,), (0.25,), "x",
                     "greyscale", "shift", False)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2))
    threshold = fit_unsure_threshold(model, data, temperature=1.0)
    with torch.no_grad():
        scores = energy_score(model((images.float() / 255 - 0.5) / 0.25))
    assert abs((scores >= threshold).float().mean().item() - UNSURE_PASS) < 0.01


def test_a_few_examples_are_seen_through_several_augmented_views():
    images = torch.zeros(6, 1, 8, 8, dtype=torch.uint8)
    images[:, :, 2:6, 2:6] = 255
    data = ImageData(images, torch.tensor([0, 1] * 3), ["a", "b"], (0.5,), (0.25,), "x",
                     "greyscale", "shift", False)
    seen = []
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2))
    model.register_forward_hook(lambda m, i, o: seen.append(len(i[0])))
    threshold = fit_unsure_threshold(model, data, 1.0, augment=True)
    assert sum(seen) >= 400
    # Nearly all of those views pass (UNSURE_PASS_FEW): a model of a few examples must not flag
    # new drawings of its own classes, which vary more than the views it learnt.
    g = torch.Generator().manual_seed(0)
    views = torch.cat([augment_batch(images, "shift", g) for _ in range(100)])
    with torch.no_grad():
        scores = energy_score(model((views / 255 - 0.5) / 0.25))
    assert (scores >= threshold).float().mean().item() > 0.99 > UNSURE_PASS


def test_a_training_stores_the_threshold_and_the_predictor_reads_it(tmp_path, data_root):
    out = tmp_path / "run.pt"
    cfg = T.TrainConfig(dataset="mnist", data_root=str(data_root), max_train_images=512,
                        val_split=0.2, epochs=1, test=False, out=str(out))
    *_, end = T.train(cfg)
    payload = ckpt.load_checkpoint(out)
    assert isinstance(payload["unsure_threshold"],
                      float) and payload["unsure_threshold"] == end["unsure_threshold"]
    predictor = Predictor.load(out)
    assert predictor.unsure_threshold == payload["unsure_threshold"]
    judgement = predictor.judge(np.zeros((28, 28), np.uint8))
    assert judgement.unsure == (judgement.score < predictor.unsure_threshold)
    assert np.allclose(judgement.probs, predictor.probabilities(np.zeros((28, 28), np.uint8)))


def test_every_shipped_checkpoint_has_a_threshold(answers):
    models = answers.shelf.models
    assert models and all(p.unsure_threshold is not None for p in models.values())


def _drawn(array: np.ndarray) -> dict:
    return {"composite": array}


def test_digit_model_flags_letters_and_scribbles_but_not_digits(answers):
    from bench.pendigits import load
    from core.strokes import layout_strokes, render

    rng = np.random.default_rng(1)
    odd = [_drawn(a) for a in letters(20, rng) + scribbles(20, rng)]
    flagged = [answers.answer_digit(s)["unsure"] for s in odd]
    assert sum(flagged) >= len(odd) // 2
    pen = load()[::100]
    digits = [_drawn(render(layout_strokes(d["strokes"], 400, "big"), 400, 12)) for d in pen]
    replies = [answers.answer_digit(s) for s in digits]
    assert sum(a["unsure"] for a in replies) <= len(replies) // 10
    status = answers.predict_digit(odd[flagged.index(True)])[2]
    assert status.startswith("🤔 **Not sure: this does not look like any of 0, 1, 2")


def test_photo_model_flags_a_digit_photo_but_not_a_cat(answers, tmp_path):
    digit = np.full((64, 64, 3), 0, np.uint8)
    digit[12:52, 28:36] = 255  # a white 1 on black, as MNIST shows it
    Image.fromarray(digit).save(tmp_path / "one.png")
    assert answers.answer_photo(str(tmp_path / "one.png"))["unsure"]
    cat = answers.answer_photo(str(CAT))
    assert cat["label"] == "cat" and not cat["unsure"] and cat["message"] == ""


def test_api_answers_carry_unsure_and_old_outputs_stay(tmp_path):
    from gradio_client import handle_file

    from bench.serving import api_client, serve_app

    letter = letters(1, np.random.default_rng(3))[0]
    Image.fromarray(letter).save(tmp_path / "letter.png")
    with serve_app() as url:
        client = api_client(url)
        answer = client.predict(sketch_payload(tmp_path / "letter.png"), None,
                                api_name="/answer_digit")
        assert set(answer) == {"model", "top", "label", "unsure", "score", "threshold", "message"}
        assert answer["unsure"] is (answer["score"] < answer["threshold"])
        label, seen, status = client.predict(sketch_payload(tmp_path / "letter.png"), None,
                                             api_name="/predict_digit")
        assert label["label"] == answer["label"] and ("Not sure" in status) is answer["unsure"]
        cat = client.predict(handle_file(str(CAT)), None, api_name="/answer_photo")
        assert cat["label"] == "cat" and cat["unsure"] is False
