"""The dataset loop and summary of isegm.inference.evaluation, shared by evaluate.py and the quick start."""
import numpy as np
import pytest

from isegm.data.datasets import EvaluationDataset, SampleError
from isegm.data.sample import DSample
from isegm.inference.evaluation import (DatasetResult, Protocol, Signal, evaluate_dataset,
                                        format_row, noc_thresholds, summarize, table_header)
from isegm.signals import GRANULARITY_LEVELS


class TwoObjectsAndABrokenSample(EvaluationDataset):
    name = "scripted"

    def __init__(self):
        super().__init__()
        for sample_id in ("a", "broken", "b"):
            self._add(sample_id, None)

    def _load(self, sample_id, key):
        if sample_id == "broken":
            raise SampleError("broken: no mask")
        labels = np.zeros((10, 10), np.int32)
        labels[:, :5], labels[:, 5:] = 1, 2
        return DSample(np.zeros((10, 10, 3), np.uint8), labels, [1, 2], sample_id=sample_id)


class SignalRecorder:
    """Covers the left half of the image on every click and records the signal of each call."""

    def __init__(self):
        self.calls = []

    def set_input_image(self, image):
        pass

    def get_prediction(self, clicker, gra=None, phrase=None):
        self.calls.append((gra, phrase))
        probs = np.zeros((10, 10), np.float32)
        probs[:, :5] = 1.0
        return probs


def test_every_object_with_its_signal_and_broken_samples_skipped():
    predictor = SignalRecorder()
    result = evaluate_dataset(TwoObjectsAndABrokenSample(), predictor, Protocol(max_iou_thr=0.9, max_clicks=3),
                              lambda sample: Signal(phrase=f"part of {sample.sample_id}"), name="scripted")
    # the left object is found at once, the right one never (3 clicks): 2 objects in each of the 2 good samples
    assert [len(ious) for ious in result.all_ious] == [1, 3, 1, 3]
    assert result.skipped == ["broken: no mask"] and result.gra_indices == []
    assert {phrase for _, phrase in predictor.calls} == {"part of a", "part of b"}
    summary = summarize(result, 3, noc_thresholds(0.9))
    assert summary.thresholds == pytest.approx([0.8, 0.85, 0.9])
    assert summary.noc == [2.0, 2.0, 2.0] and summary.over_max == [2, 2, 2] and summary.samples == 4
    row = format_row("NoBRS", "scripted", summary, 61.0)
    assert row.count("|") == 11 and "2.00" in row and "0:01:01" in row
    assert "NoC@90%" in table_header(3, "tiny") and ">=3@85%" in table_header(3, "tiny")


def test_oracle_signal_records_the_chosen_granularity():
    predictor = SignalRecorder()
    result = evaluate_dataset(TwoObjectsAndABrokenSample(), predictor, Protocol(max_iou_thr=0.9, max_clicks=2),
                              Signal(oracle=True, clean=True), indices=[0])
    assert len(result.all_ious) == 2 and len(result.gra_indices) == 2
    assert {gra for gra, _ in predictor.calls} == set(GRANULARITY_LEVELS)
    assert Signal(oracle=True, clean=True).describe() == "oracle-clean" and Signal(gra=0.5).describe() == "gra=0.5"
    assert Signal().describe() == "none" and isinstance(result, DatasetResult)
