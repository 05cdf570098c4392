import numpy as np
import pytest
import torch

from isegm.inference.clicker import Click, Clicker
from isegm.inference.predictors import BasePredictor, get_predictor
from isegm.model.phrase_encoder import PhraseEncoderUnavailable


@pytest.fixture
def predictor(tiny_model, rgb_image):
    predictor = get_predictor(tiny_model, "NoBRS", "cpu", prob_thresh=0.49, with_flip=True,
                              zoom_in_params={"skip_clicks": -1, "target_size": (224, 224)})
    predictor.set_input_image(rgb_image)
    return predictor


def clicks(*items):
    clicker = Clicker()
    for positive, coords in items:
        clicker.add_click(Click(positive, coords))
    return clicker


def test_prediction_is_probability_map_of_image_size(predictor, rgb_image):
    probs = predictor.get_prediction(clicks((True, (60, 80)), (False, (10, 10))))
    assert isinstance(predictor, BasePredictor)
    assert probs.shape == rgb_image.shape[:2] and probs.dtype == np.float32
    assert 0 <= probs.min() and probs.max() <= 1
    assert predictor.prev_prediction.shape == (1, 1, 120, 160)


def test_granularity_changes_the_prediction(predictor, rgb_image):
    a = predictor.get_prediction(clicks((True, (60, 80))), gra=0.1)
    predictor.set_input_image(rgb_image)
    b = predictor.get_prediction(clicks((True, (60, 80))), gra=1.0)
    assert np.abs(a - b).max() > 1e-4


@pytest.mark.parametrize("image, message", [
    (np.zeros((50, 60), np.uint8), "grayscale"),
    (np.zeros((50, 60, 1), np.uint8), "grayscale"),
    (np.zeros((50, 60, 4), np.uint8), "RGBA"),
    (np.zeros((50, 60, 3), np.float32), "uint8"),
    (np.zeros((2, 50, 60, 3), np.uint8), "H x W x 3"),
    (torch.zeros(3, 50, 60), "not a tensor"),
])
def test_bad_images_are_refused(predictor, image, message):
    with pytest.raises(ValueError, match=message):
        predictor.set_input_image(image)


@pytest.mark.parametrize("coords", [(120, 5), (5, 160), (-1, 5), (5, -3)])
def test_clicks_outside_the_image_are_refused(predictor, coords):
    with pytest.raises(ValueError, match="outside the 120 x 160 image"):
        predictor.get_prediction(clicks((True, coords)))


def test_bad_signals_are_refused(predictor):
    with pytest.raises(ValueError, match="granularity must be"):
        predictor.get_prediction(clicks((True, (5, 5))), gra=1.5)
    with pytest.raises(ValueError, match="not both"):
        predictor.get_prediction(clicks((True, (5, 5))), gra=0.5, phrase="head")
    with pytest.raises(ValueError, match="empty"):
        predictor.get_prediction(clicks((True, (5, 5))), phrase="  ")


def test_phrase_without_clip_weights_says_what_is_missing(predictor):
    with pytest.raises(PhraseEncoderUnavailable, match="ViT-B-32.pt.*--clip-weights"):
        predictor.get_prediction(clicks((True, (5, 5))), phrase="head")


def test_prediction_needs_an_image(tiny_model):
    with pytest.raises(ValueError, match="set_input_image"):
        get_predictor(tiny_model, "NoBRS", "cpu").get_prediction(clicks((True, (5, 5))))


def test_only_nobrs_mode(tiny_model):
    with pytest.raises(ValueError, match="only 'NoBRS'"):
        get_predictor(tiny_model, "f-BRS-B", "cpu")


def test_predict_granularities_matches_single_predictions_and_keeps_state(tiny_model, rgb_image):
    from isegm.inference.clicker import Click, Clicker
    from isegm.inference.predictors import get_predictor

    predictor = get_predictor(tiny_model, "NoBRS", "cpu", zoom_in_params=dict(skip_clicks=-1, target_size=(224, 224)))
    predictor.set_input_image(rgb_image)
    clicker = Clicker()
    clicker.add_click(Click(is_positive=True, coords=(60, 80), indx=0))
    before = predictor.get_states()["prev_prediction"].clone()
    strip = predictor.predict_granularities(clicker, [0.2, 0.7, 1.0])
    assert torch.equal(predictor.get_states()["prev_prediction"], before)
    # The batched and the single forwards differ by the kernels' summation order only (float32 rounding, about 1e-6
    # of the logits); a mix-up of batch rows or granularities differs by the granularity's own effect on the mask.
    # Tolerance: 1e-3 of that effect, measured here.
    effect = np.abs(strip[0] - strip[2]).max()
    assert effect > 1e-3, "the granularity changes the prediction"
    for gra, probs in zip([0.2, 0.7, 1.0], strip):
        predictor.set_input_image(rgb_image)
        single = predictor.get_prediction(clicker, gra=gra)
        assert np.abs(probs - single).max() <= 1e-3 * effect, gra


def test_cpu_runs_large_batches_in_chunks_with_the_same_result(tiny_model, rgb_image):
    """Batches over CPU_IMAGES_PER_FORWARD images go through the model in chunks (larger ones are slower per image on
    a CPU); each request keeps its own rows and granularity."""
    from isegm.inference.clicker import Click, Clicker
    from isegm.inference.predictors import get_predictor
    from isegm.inference.predictors.base import CPU_IMAGES_PER_FORWARD, ModelRequest

    predictor = get_predictor(tiny_model, "NoBRS", "cpu", with_flip=True,
                              zoom_in_params=dict(skip_clicks=-1, target_size=(224, 224)))
    predictor.set_input_image(rgb_image)
    clicker = Clicker()
    clicker.add_click(Click(is_positive=True, coords=(60, 80), indx=0))
    request = predictor.prepare(clicker, gra=0.2)
    granularities = [0.2, 0.5, 0.8]  # with the flip: 6 images
    requests = [ModelRequest(request.image, request.clicks_lists, g, None) for g in granularities]
    sizes = []
    hook = tiny_model.register_forward_hook(lambda module, args, out: sizes.append(args[0].shape[0]))
    try:
        chunked = predictor.forward(requests)
    finally:
        hook.remove()
    assert sizes == [CPU_IMAGES_PER_FORWARD] * 3 == [2, 2, 2]
    effect = (chunked[0] - chunked[-1]).abs().max()
    assert effect > 1e-3, "the granularity changes the logits"
    for request, logits in zip(requests, chunked):
        alone = predictor.forward([request])[0]
        assert (logits - alone).abs().max() <= 1e-3 * effect, request.gra
