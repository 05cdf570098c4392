"""Fidelity: the predictor reproduces the published implementation's outputs.

``fixtures/published_parity.npz`` holds what the published GraCo code (run on CPU, fp32) predicted for a
synthetic image, with a seeded SimpleClick ViT-B base (``isegm.toy.seeded``, conv_seg bias shifted so that
predictions are not saturated and zoom-in crops occur), the released ViT-B LoRA and a seeded CLIP ViT-B/32 text
tower: probabilities on a 10-px lattice, head logits on an 8-px lattice, the mean probability and the zoom-in box
after every click, for no signal, four granularities, two phrases and the 672-px (DAVIS) setting.
See ``fixtures/README.md`` for how it was made.
"""
import json

import numpy as np
import pytest

from isegm.inference.clicker import Click, Clicker
from isegm.inference.predictors import get_predictor
from isegm.model import load_model_config
from isegm.toy.seeded import build_seeded_model

from helpers import FIXTURES

PROB_TOLERANCE = 1e-3
# The fast run (-m "not slow") checks two representative click sequences; the full suite checks every case.
FAST_CASES = {"none-seqA", "gra0.3-seqA"}


@pytest.fixture(scope="module")
def reference():
    return np.load(FIXTURES / "published_parity.npz")


@pytest.fixture(scope="module")
def parity_model(test_weights, reference):
    overrides = json.loads(str(reference["overrides"]))
    return build_seeded_model(load_model_config("graco_vit_base448"), test_weights / "GraCo_base_lora.pth",
                              clip_text=True, overrides=overrides)


def _cases():
    data = np.load(FIXTURES / "published_parity.npz")
    cases = []
    for case in json.loads(str(data["cases"])):
        case_id = f"{case['condition']}-{case['sequence']}"
        marks = () if case_id in FAST_CASES else (pytest.mark.slow,)
        cases.append(pytest.param(case, id=case_id, marks=marks))
    return cases


@pytest.mark.parametrize("case", _cases())
def test_predictions_match_published(case, parity_model, reference):
    logits = {}
    hook = parity_model.head.register_forward_hook(lambda module, inputs, output: logits.update(x=output))
    predictor = get_predictor(parity_model, "NoBRS", "cpu", prob_thresh=0.5, with_flip=True,
                              zoom_in_params={"skip_clicks": -1, "target_size": tuple(case["target_size"])})
    predictor.set_input_image(reference["image"])
    clicker = Clicker()
    try:
        for k, (positive, coords) in enumerate(case["clicks"], 1):
            clicker.add_click(Click(positive, tuple(coords)))
            probs = predictor.get_prediction(clicker, gra=case.get("gra"), phrase=case.get("phrase"))
            key = f"{case['condition']}__{case['sequence']}__click{k}"
            assert tuple(predictor.zoom_in._object_roi) == tuple(reference[f"{key}__roi"]), key
            np.testing.assert_allclose(probs[5::10, 5::10], reference[f"{key}__probs"], atol=PROB_TOLERANCE,
                                       rtol=0, err_msg=key)
            assert abs(float(probs.mean()) - float(reference[f"{key}__mean"])) < 1e-4, key
            np.testing.assert_allclose(logits["x"][0, 0, 4::8, 4::8].numpy(), reference[f"{key}__logits"],
                                       atol=1e-3, rtol=0, err_msg=key)
    finally:
        hook.remove()
