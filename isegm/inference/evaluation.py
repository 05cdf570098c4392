"""The NoC evaluation loop: simulated clicks until a target IoU, with a fixed signal or the oracle granularity."""
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Tuple

import numpy as np
import torch

from ..signals import GRANULARITY_LEVELS
from .clicker import Click, Clicker
from .metrics import get_iou
from .predictors import BasePredictor

Callback = Callable[[np.ndarray, np.ndarray, np.ndarray, object, int, List[Click]], None]


@dataclass
class Protocol:
    """Stop when IoU >= ``max_iou_thr`` (after at least ``min_clicks``) or after ``max_clicks``; masks are
    probabilities > ``pred_thr``."""
    max_iou_thr: float = 0.90
    pred_thr: float = 0.5
    min_clicks: int = 1
    max_clicks: int = 20

    def done(self, iou: float, click_indx: int) -> bool:
        return iou >= self.max_iou_thr and click_indx + 1 >= self.min_clicks


def evaluate_sample(image: np.ndarray, gt_mask: np.ndarray, predictor: BasePredictor, max_iou_thr: float,
                    pred_thr: float = 0.49, min_clicks: int = 1, max_clicks: int = 20, sample_id=None,
                    gra: Optional[float] = None, phrase: Optional[str] = None, callback: Optional[Callback] = None
                    ) -> Tuple[List[Click], np.ndarray, np.ndarray]:
    """Run one click sequence; returns the clicks, the IoU after each click and the last probability map."""
    protocol = Protocol(max_iou_thr, pred_thr, min_clicks, max_clicks)
    clicker = Clicker(gt_mask=gt_mask)
    pred_mask = np.zeros(gt_mask.shape, dtype=bool)
    ious, probs = [], None
    predictor.set_input_image(image)
    for click_indx in range(max_clicks):
        clicker.make_next_click(pred_mask)
        probs = predictor.get_prediction(clicker, gra=gra, phrase=phrase)
        pred_mask = probs > pred_thr
        ious.append(get_iou(gt_mask, pred_mask))
        if callback is not None:
            callback(image, gt_mask, probs, sample_id, click_indx, clicker.clicks_list)
        if protocol.done(ious[-1], click_indx):
            break
    return clicker.clicks_list, np.array(ious, dtype=np.float32), probs


@dataclass
class _Sweep:
    """One granularity's click sequence inside the oracle."""
    gra: float
    clicker: Clicker
    predictor: BasePredictor
    pred_mask: np.ndarray
    ious: List[float] = field(default_factory=list)
    stop_indx: Optional[int] = None


def _select(sweeps: List[_Sweep], max_clicks: int) -> Tuple[np.ndarray, int]:
    """Fewest clicks (stop index; a sweep that never stopped used all ``max_clicks``); ties go to the best
    first-click IoU (compared in float32, as published), then to the smaller granularity."""
    stops = np.array([max_clicks - 1 if s.stop_indx is None else s.stop_indx for s in sweeps])
    candidates = np.flatnonzero(stops == stops.min())
    best = candidates[int(np.argmax(np.array([sweeps[i].ious[0] for i in candidates], dtype=np.float32)))]
    return np.array(sweeps[best].ious, dtype=np.float32), int(best)


def evaluate_sample_oracle(image: np.ndarray, gt_mask: np.ndarray, predictor: BasePredictor, max_iou_thr: float,
                           pred_thr: float = 0.49, min_clicks: int = 1, max_clicks: int = 20, sample_id=None,
                           callback: Optional[Callback] = None, clean: bool = False, batched: bool = False
                           ) -> Tuple[np.ndarray, int]:
    """Oracle granularity: run the loop for g = 0.1 .. 1.0 and keep the best sweep.

    A sweep stops at the target IoU, or once it needs more clicks than the best sweep so far. The result is the
    sweep with the fewest clicks, ties broken by the first-click IoU. Returns its IoUs and its index (g = 0.1 (i+1)).

    ``clean=False`` reproduces the published loop, where the zoom-in state of one sweep carries over into the
    next; ``clean=True`` starts every sweep from a fresh session. ``batched=True`` (clean only) advances all
    running sweeps together, one model call per click step, with the same result as the sequential clean loop.
    """
    protocol = Protocol(max_iou_thr, pred_thr, min_clicks, max_clicks)
    if batched:
        if not clean:
            raise ValueError("the batched oracle needs clean sweeps: the published zoom-in carry-over is sequential")
        return _oracle_batched(image, gt_mask, predictor, protocol, sample_id, callback)
    predictor.set_input_image(image)
    sweeps, min_num = [], None
    for gra in GRANULARITY_LEVELS:
        if clean:
            predictor.set_input_image(image)
        else:  # published: clicks and previous mask reset, zoom-in state kept
            predictor.prev_prediction = torch.zeros_like(predictor.original_image[:, :1])
        sweep = _Sweep(gra, Clicker(gt_mask=gt_mask), predictor, np.zeros(gt_mask.shape, dtype=bool))
        for click_indx in range(max_clicks):
            _step(sweep, image, gt_mask, protocol, sample_id, callback, click_indx,
                  predictor.get_prediction(_click(sweep), gra=gra))
            if sweep.stop_indx is not None:
                min_num = click_indx + 1 if min_num is None else min(min_num, click_indx + 1)
                break
            if min_num is not None and click_indx + 1 > min_num:
                sweep.stop_indx = click_indx
                break
        sweeps.append(sweep)
    return _select(sweeps, max_clicks)


def _click(sweep: _Sweep) -> Clicker:
    sweep.clicker.make_next_click(sweep.pred_mask)
    return sweep.clicker


def _step(sweep: _Sweep, image, gt_mask, protocol: Protocol, sample_id, callback, click_indx: int,
          probs: np.ndarray) -> None:
    sweep.pred_mask = probs > protocol.pred_thr
    sweep.ious.append(get_iou(gt_mask, sweep.pred_mask))
    if callback is not None:
        callback(image, gt_mask, probs, sample_id, click_indx, sweep.clicker.clicks_list)
    if protocol.done(sweep.ious[-1], click_indx):
        sweep.stop_indx = click_indx


def _oracle_batched(image, gt_mask, predictor: BasePredictor, protocol: Protocol, sample_id, callback
                    ) -> Tuple[np.ndarray, int]:
    sweeps = []
    for gra in GRANULARITY_LEVELS:
        session = predictor.spawn()
        session.set_input_image(image)
        sweeps.append(_Sweep(gra, Clicker(gt_mask=gt_mask), session, np.zeros(gt_mask.shape, dtype=bool)))
    min_num = None
    for click_indx in range(protocol.max_clicks):
        running = [s for s in sweeps if s.stop_indx is None]
        if not running:
            break
        requests = [s.predictor.prepare(_click(s), gra=s.gra) for s in running]
        for sweep, logits in zip(running, predictor.forward(requests)):
            _step(sweep, image, gt_mask, protocol, sample_id, callback, click_indx, sweep.predictor.finish(logits))
        reached = [s for s in running if s.stop_indx is not None]
        if reached:
            min_num = click_indx + 1 if min_num is None else min(min_num, click_indx + 1)
        for sweep in running:
            if sweep.stop_indx is None and min_num is not None and click_indx + 1 > min_num:
                sweep.stop_indx = click_indx
    return _select(sweeps, protocol.max_clicks)
