"""The NoC evaluation loop: simulated clicks until a target IoU, with a fixed signal or the oracle granularity, over
one sample (:func:`evaluate_sample`, :func:`evaluate_sample_oracle`) or a dataset (:func:`evaluate_dataset`), and
the summary of a dataset's results (:func:`summarize`, :func:`table_header`, :func:`format_row`)."""
import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Callable, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from tqdm import tqdm

from ..data.datasets import EvaluationDataset, SampleError
from ..data.sample import DSample
from ..signals import GRANULARITY_LEVELS
from .clicker import Click, Clicker
from .metrics import compute_noc_metric, get_iou, get_time_metrics, noc
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


# ------------------------------------------------------------------------------------------------ whole datasets
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Signal:
    """The control signal of an evaluation: a fixed granularity ``gra``, a fixed ``phrase``, the ``oracle``
    granularity (best of 0.1 .. 1.0 per object; ``clean``: fresh zoom-in state per granularity; ``batched``: the
    clean sweeps share one forward per click step) or none."""
    gra: Optional[float] = None
    phrase: Optional[str] = None
    oracle: bool = False
    clean: bool = False
    batched: bool = False

    def describe(self) -> str:
        """``oracle``, ``oracle-clean``, ``gra=<g>``, ``phrase=<p>`` or ``none`` (the JSON summaries' wording)."""
        if self.oracle:
            return "oracle" + ("-clean" if self.clean else "")
        if self.gra is not None:
            return f"gra={self.gra}"
        return f"phrase={self.phrase}" if self.phrase else "none"


@dataclass
class DatasetResult:
    """Per object: the IoU after each click (``all_ious``) and, for the oracle, the index of the chosen
    granularity (``gra_indices``, g = 0.1 (i + 1)); the samples that could not be read; the evaluation seconds
    summed over the samples (the same whether one process or several evaluated them)."""
    all_ious: List[np.ndarray]
    gra_indices: List[int]
    skipped: List[str]
    seconds: float


@dataclass
class SampleResult:
    """One sample of a dataset (its ``index``): per object the IoU after each click and, for the oracle, the chosen
    granularity's index; or why it was ``skipped``; the ``seconds`` its evaluation took."""
    index: int
    ious: List[np.ndarray]
    gra_indices: List[int]
    skipped: Optional[str]
    seconds: float


def merge_results(results: Iterable[SampleResult]) -> DatasetResult:
    """The dataset's result from its samples' results, in dataset order whatever order they come in."""
    ordered = sorted(results, key=lambda r: r.index)
    # arrays that crossed processes carry their own dtype instances: viewed as float32 they pickle as one run's do
    all_ious = [np.asarray(ious, dtype=np.float32).view(np.float32) for r in ordered for ious in r.ious]
    return DatasetResult(all_ious, [g for r in ordered for g in r.gra_indices],
                         [r.skipped for r in ordered if r.skipped is not None], float(sum(r.seconds for r in ordered)))


def evaluate_samples(dataset: EvaluationDataset, predictor: BasePredictor, protocol: Protocol,
                     signal: Union[Signal, Callable[[DSample], Signal]] = Signal(), indices: Sequence[int] = (),
                     name: str = "", callback: Optional[Callback] = None,
                     done: Sequence[SampleResult] = ()) -> Iterator[SampleResult]:
    """Evaluate the samples at ``indices`` one by one, yielding each result as soon as it is there. The tqdm bar
    named ``name`` counts ``done`` (results from an earlier run) as finished and shows the running NoC at
    ``protocol.max_iou_thr``. ``signal`` is one signal for all samples or a function giving each sample its own
    (e.g. its part name as phrase). A sample that cannot be read is logged and yielded as skipped."""
    kwargs = dict(max_iou_thr=protocol.max_iou_thr, pred_thr=protocol.pred_thr, min_clicks=protocol.min_clicks,
                  max_clicks=protocol.max_clicks, callback=callback)
    target = min(protocol.max_iou_thr, 1.0)
    nocs = [noc(ious, target, protocol.max_clicks) for r in done for ious in r.ious]
    skipped = sum(r.skipped is not None for r in done)
    progress = tqdm(total=len(done) + len(indices), initial=len(done), desc=name or None, unit="sample",
                    dynamic_ncols=True)
    for index in indices:
        start = time.perf_counter()
        try:
            sample = dataset.get_sample(index)
        except SampleError as error:
            logger.warning("skipped: %s", error)
            skipped += 1
            progress.update()
            yield SampleResult(index, [], [], str(error), time.perf_counter() - start)
            continue
        chosen = signal(sample) if callable(signal) else signal
        all_ious, gra_indices = [], []
        for object_id in sample.objects_ids:
            gt_mask = sample.gt_mask(object_id)
            sample_id = f"{sample.sample_id}" if len(sample.objects_ids) == 1 else f"{sample.sample_id}#{object_id}"
            if chosen.oracle:
                ious, gra_index = evaluate_sample_oracle(sample.image, gt_mask, predictor, clean=chosen.clean,
                                                         batched=chosen.batched, sample_id=sample_id, **kwargs)
                gra_indices.append(gra_index)
            else:
                _, ious, _ = evaluate_sample(sample.image, gt_mask, predictor, gra=chosen.gra, phrase=chosen.phrase,
                                             sample_id=sample_id, **kwargs)
            all_ious.append(ious)
        nocs.extend(noc(ious, target, protocol.max_clicks) for ious in all_ious)
        progress.update()
        if nocs:
            progress.set_postfix(NoC=f"{np.mean(nocs):.2f}", skipped=skipped)
        yield SampleResult(index, all_ious, gra_indices, None, time.perf_counter() - start)
    progress.close()


def evaluate_dataset(dataset: EvaluationDataset, predictor: BasePredictor, protocol: Protocol,
                     signal: Union[Signal, Callable[[DSample], Signal]] = Signal(), name: str = "",
                     indices: Optional[Sequence[int]] = None, callback: Optional[Callback] = None) -> DatasetResult:
    """Run the protocol on every object of every sample (or of the samples at ``indices``) in one go; see
    :func:`evaluate_samples`."""
    indices = range(len(dataset)) if indices is None else indices
    return merge_results(evaluate_samples(dataset, predictor, protocol, signal, indices, name, callback))


def noc_thresholds(target_iou: float) -> List[float]:
    """The IoU thresholds a results row reports: 0.80, 0.85, ... up to the target (at most 0.95)."""
    return np.arange(0.8, min(0.95, target_iou) + 0.001, 0.05).tolist()


@dataclass
class NoCSummary:
    """A dataset's NoC figures: mean clicks to each of ``thresholds`` (``noc``), objects that never reached it
    within ``max_clicks`` (``over_max``), mean IoU after the first click, seconds per click."""
    thresholds: List[float]
    noc: List[float]
    over_max: List[int]
    iou_first: float
    seconds_per_click: float
    samples: int


def summarize(result: DatasetResult, max_clicks: int, thresholds: Sequence[float]) -> NoCSummary:
    noc_list, _, over_max = compute_noc_metric(result.all_ious, thresholds, max_clicks)
    spc, _ = get_time_metrics(result.all_ious, result.seconds)
    iou_first = float(np.mean([ious[0] for ious in result.all_ious])) if result.all_ious else float("nan")
    return NoCSummary(list(thresholds), noc_list, over_max, iou_first, spc, len(result.all_ious))


def table_header(max_clicks: int, model_name: str, precision: str = "fp32") -> str:
    """The results table's title (model and precision) and column names (NoC@80/85/90, IoU@1, >=max@85/90, seconds
    per click, time)."""
    header = (f'|{"BRS Type":^13}|{"Dataset":^11}|{"NoC@80%":^9}|{"NoC@85%":^9}|{"NoC@90%":^9}|{"IoU@1":^9}|'
              f'{">=" + str(max_clicks) + "@85%":^9}|{">=" + str(max_clicks) + "@90%":^9}|{"SPC,s":^7}|{"Time":^9}|')
    lines = [f"Eval results for model: {model_name} (precision {precision})", "-" * len(header), header,
             "-" * len(header)]
    return "\n".join(lines)


def format_row(mode: str, dataset_name: str, summary: NoCSummary, elapsed: float) -> str:
    """One row of the table; ``?`` where the summary has no figure for a column (target IoU below it)."""
    def cell(values, i, fmt):
        return f"{values[i]:^9{fmt}}" if len(values) > i else f'{"?":^9}'
    noc_list, over_max = summary.noc, summary.over_max
    return (f"|{mode:^13}|{dataset_name:^11}|{cell(noc_list, 0, '.2f')}|{cell(noc_list, 1, '.2f')}|"
            f"{cell(noc_list, 2, '.2f')}|{summary.iou_first:^9.2f}|{cell(over_max, 1, '')}|{cell(over_max, 2, '')}|"
            f"{summary.seconds_per_click:^7.3f}|{str(timedelta(seconds=int(elapsed))):^9}|")
