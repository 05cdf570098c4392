import numpy as np
import pytest
import torch

from isegm.inference.evaluation import evaluate_sample, evaluate_sample_oracle
from isegm.inference.metrics import compute_noc_metric, get_iou, noc
from isegm.inference.predictors import get_predictor
from isegm.signals import GRANULARITY_LEVELS


def test_iou_ignores_label_minus_one():
    gt = np.array([[1, 1, 0, -1]])
    assert get_iou(gt, np.array([[True, False, False, True]])) == pytest.approx(0.5)
    assert get_iou(gt, np.array([[True, True, False, True]])) == 1.0
    assert get_iou(np.zeros((2, 2)), np.zeros((2, 2), bool)) == 0.0


def test_noc_with_20_click_cap():
    assert noc([0.5, 0.85, 0.91], 0.9) == 3
    assert noc([0.95], 0.9) == 1
    assert noc([0.5] * 20, 0.9) == 20
    assert noc([0.5, 0.6], 0.9, max_clicks=20) == 20  # stopped early without reaching it: counts as the cap
    nocs, _, over = compute_noc_metric([np.array([0.95]), np.array([0.5] * 20)], [0.8, 0.9])
    assert nocs == [10.5, 10.5] and over == [1, 1]


class ScriptedPredictor:
    """Returns, for granularity g, the mask of column block ``reach[g]`` ... enough to script IoU sequences."""

    def __init__(self, ious_by_gra):
        self.ious_by_gra = ious_by_gra  # gra -> list of IoUs per click
        self.calls = []
        self.original_image = torch.zeros(1, 3, 10, 10)
        self.prev_prediction = torch.zeros(1, 1, 10, 10)

    def set_input_image(self, image):
        self.prev_prediction = torch.zeros(1, 1, 10, 10)

    def get_prediction(self, clicker, gra=None, phrase=None):
        self.calls.append(gra)
        seq = self.ious_by_gra[gra]
        iou = seq[min(len(clicker) - 1, len(seq) - 1)]
        probs = np.zeros((10, 10), np.float32)
        probs[:, : int(round(iou * 10))] = 1.0  # gt is the whole image: IoU = covered fraction
        return probs


def _oracle(ious_by_gra, max_clicks=5):
    predictor = ScriptedPredictor(ious_by_gra)
    gt = np.ones((10, 10), np.int32)
    ious, index = evaluate_sample_oracle(np.zeros((10, 10, 3), np.uint8), gt, predictor, 0.9, pred_thr=0.5,
                                         max_clicks=max_clicks)
    return ious, index, predictor.calls


def test_oracle_picks_fewest_clicks_then_best_first_iou():
    table = {g: [0.1, 0.2, 0.3, 0.4, 0.5] for g in GRANULARITY_LEVELS}
    table[0.3] = [0.5, 0.9]     # reaches at 2 clicks
    table[0.6] = [0.7, 0.9]     # also 2 clicks, better first IoU -> chosen
    table[0.9] = [0.6, 0.8, 1.0]
    ious, index, calls = _oracle(table)
    assert GRANULARITY_LEVELS[index] == 0.6 and ious.tolist() == pytest.approx([0.7, 0.9])
    # sweeps after the first success stop once they exceed 2 clicks: 3 calls, not 5
    assert calls.count(0.9) == 3 and calls.count(1.0) == 3 and calls.count(0.1) == 5


def test_oracle_tie_on_first_iou_keeps_smaller_granularity_and_never_reached_counts_all():
    table = {g: [0.3, 0.4, 0.5] for g in GRANULARITY_LEVELS}
    table[0.2] = [0.6, 0.7, 0.8]
    table[0.7] = [0.6, 0.1, 0.1]
    ious, index, _ = _oracle(table, max_clicks=3)
    assert GRANULARITY_LEVELS[index] == 0.2 and len(ious) == 3


def test_evaluate_sample_stops_at_target(tiny_model, rgb_image):
    predictor = get_predictor(tiny_model, "NoBRS", "cpu", zoom_in_params={"skip_clicks": -1, "target_size": (224, 224)})
    gt = np.zeros(rgb_image.shape[:2], np.int32)
    gt[30:90, 40:120] = 1
    clicks, ious, probs = evaluate_sample(rgb_image, gt, predictor, max_iou_thr=0.0, pred_thr=0.5, max_clicks=5)
    assert len(ious) == 1 and len(clicks) == 1 and probs.shape == gt.shape
    clicks, ious, _ = evaluate_sample(rgb_image, gt, predictor, max_iou_thr=1.01, pred_thr=0.5, max_clicks=4, gra=0.4)
    assert len(ious) == 4 and ious.dtype == np.float32


def _real_like_sample(rgb_image):
    gt = np.zeros(rgb_image.shape[:2], np.int32)
    gt[30:90, 40:120] = 1
    gt[28:30, 40:120] = -1
    return gt


@pytest.mark.parametrize("threshold", [0.5, 0.98])
def test_batched_oracle_equals_sequential_clean_oracle(tiny_model, rgb_image, threshold):
    predictor = get_predictor(tiny_model, "NoBRS", "cpu", zoom_in_params={"skip_clicks": -1, "target_size": (224, 224)})
    gt = _real_like_sample(rgb_image)
    kwargs = dict(max_iou_thr=threshold, pred_thr=0.5, max_clicks=4)
    sequential = evaluate_sample_oracle(rgb_image, gt, predictor, clean=True, **kwargs)
    batched = evaluate_sample_oracle(rgb_image, gt, predictor, clean=True, batched=True, **kwargs)
    assert batched[1] == sequential[1]
    assert np.array_equal(batched[0], sequential[0])


def test_batched_oracle_needs_clean_sweeps(tiny_model, rgb_image):
    predictor = get_predictor(tiny_model, "NoBRS", "cpu")
    with pytest.raises(ValueError, match="clean"):
        evaluate_sample_oracle(rgb_image, _real_like_sample(rgb_image), predictor, 0.9, batched=True)


def test_published_oracle_carries_zoom_state_between_sweeps(tiny_model, rgb_image):
    """Default (published) mode: a sweep's first click sees the zoom-in state left by the previous sweep."""
    predictor = get_predictor(tiny_model, "NoBRS", "cpu", zoom_in_params={"skip_clicks": -1, "target_size": (224, 224)})
    seen = []
    original = predictor.zoom_in.transform

    def spy(image_nd, clicks_lists):
        seen.append((len(clicks_lists[0]), predictor.zoom_in._prev_probs is not None))
        return original(image_nd, clicks_lists)

    predictor.zoom_in.transform = spy
    evaluate_sample_oracle(rgb_image, _real_like_sample(rgb_image), predictor, 1.01, pred_thr=0.5, max_clicks=2)
    first_clicks = [had_state for n, had_state in seen if n == 1]
    assert first_clicks[0] is False and all(first_clicks[1:])  # carried over from sweep 2 on
    seen.clear()
    evaluate_sample_oracle(rgb_image, _real_like_sample(rgb_image), predictor, 1.01, pred_thr=0.5, max_clicks=2,
                           clean=True)
    assert not any(had_state for n, had_state in seen if n == 1)
