"""One object's clicks on one image -> probabilities, over a model shared by any number of sessions.

Usage::

    shared = SharedModel(model, "cpu", PredictorSettings())
    session = shared.session(rgb_uint8)              # H x W x 3
    probs = session.add_click(x=250, y=190)          # H x W float32 in [0, 1]
    probs = session.set_granularity(0.3)             # the same clicks, re-predicted
    maps = session.strip()                           # ten granularities, one batched forward
    mask = session.mask(0.5)                         # H x W bool
    session.undo()

The session keeps the predictor state (zoom-in crop, previous mask) after every prefix of the current click sequence,
so adding a click or changing the granularity costs one forward pass and undo costs none. The model, and with it its
active LoRA branch (slider or phrase), is shared: every forward holds :attr:`SharedModel.lock`, so sessions on other
threads never see each other's branch; a background job (segment everything) takes it with ``lock.background()``,
after every waiting session (:class:`~.model_lock.ModelLock`). All methods are thread-safe.
"""
import threading
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..inference.clicker import Click, Clicker
from ..inference.predictors import BasePredictor
from ..model.phrase_encoder import PhraseEncoderUnavailable
from ..signals import GRANULARITY_LEVELS, check_granularity
from .model_lock import ModelLock
from .settings import PredictorSettings

ClickKey = Tuple[Tuple[bool, float, float], ...]


def click_key(clicks: Sequence[Click]) -> ClickKey:
    """A hashable key of a click sequence: (positive, y, x) per click."""
    return tuple((bool(c.is_positive), float(c.coords[0]), float(c.coords[1])) for c in clicks)


class SharedModel:
    """A loaded model, its device and prediction options, shared by sessions; every forward holds :attr:`lock`.

    Args:
        model: the interactive model (e.g. from :func:`isegm.inference.utils.load_is_model`).
        device: where it runs.
        settings: the default prediction options of new sessions.
    """

    def __init__(self, model: torch.nn.Module, device, settings: PredictorSettings = PredictorSettings()):
        self.model = model
        self.device = torch.device(device)
        self.settings = settings
        self.lock = ModelLock()

    def make_predictor(self, settings: Optional[PredictorSettings] = None,
                       with_flip: Optional[bool] = None) -> BasePredictor:
        """A new predictor on the shared model (``settings`` default: :attr:`settings`)."""
        return (settings or self.settings).make_predictor(self.model, self.device, with_flip=with_flip)

    def session(self, image: np.ndarray, **kwargs) -> "ObjectSession":
        """A new :class:`ObjectSession` on ``image`` (H x W x 3 uint8 RGB); ``kwargs`` as for the session."""
        return ObjectSession(self, image, **kwargs)

    @property
    def phrase_unavailable_reason(self) -> Optional[str]:
        """Why the phrase signal cannot be used, or None when it can (the CLIP weights load on the first phrase)."""
        encoder = getattr(self.model, "phrase_encoder", None)
        if encoder is None:
            return "this model has no phrase input"
        if encoder.text is None and encoder.clip_source is None:
            try:
                encoder.ensure_loaded()
            except PhraseEncoderUnavailable as error:
                return str(error)
        return None


Signal = Tuple[Optional[float], Optional[str]]  # (granularity, None) or (None, phrase)


class _Entry:
    """The state after one click prefix: the zoom-in states, the probabilities (the next previous mask, kept once)
    and the signal they were predicted with."""
    __slots__ = ("transform_states", "probs", "signal")

    def __init__(self, transform_states: list, probs: Optional[np.ndarray], signal: Optional[Signal]):
        self.transform_states = transform_states
        self.probs = probs
        self.signal = signal


class ObjectSession:
    """One object on one image: its clicks, its signal (granularity or phrase) and the probabilities they give.

    Args:
        shared: the model.
        image: H x W x 3 uint8 RGB.
        init_mask: H x W float probabilities (or a 0/1 mask) to start from, as the model's previous mask; the clicks
            are then numbered from 2, as after a first click.
        granularity: the initial slider value in [0.1, 1.0].
        phrase: a part name to use instead of the granularity.
        settings: prediction options (default: the shared model's).
    """

    def __init__(self, shared: SharedModel, image: np.ndarray, init_mask: Optional[np.ndarray] = None,
                 granularity: float = 1.0, phrase: Optional[str] = None,
                 settings: Optional[PredictorSettings] = None):
        self.shared = shared
        self.settings = settings or shared.settings
        self.predictor = shared.make_predictor(self.settings)
        self.predictor.set_input_image(image)
        self.image = image
        self.image_shape: Tuple[int, int] = tuple(image.shape[:2])
        self.click_offset = 0
        if init_mask is not None:
            if tuple(init_mask.shape[:2]) != self.image_shape:
                raise ValueError(f"the initial mask is {init_mask.shape[1]} x {init_mask.shape[0]}, the image "
                                 f"{self.image_shape[1]} x {self.image_shape[0]}")
            self.predictor.prev_prediction = torch.from_numpy(init_mask.astype(np.float32))[None, None].to(
                self.predictor.device)
            self.click_offset = 1
        self._initial_prev = self.predictor.prev_prediction
        self._strip_predictor: Optional[BasePredictor] = None
        self._state_lock = threading.Lock()  # held briefly: the cache and the current state
        self._request_lock = threading.RLock()  # one prediction of this session at a time
        self._cache: Dict[ClickKey, _Entry] = {(): _Entry(self.predictor.get_states()["transform_states"], None, None)}
        self._clicks: List[Click] = []
        self._probs: Optional[np.ndarray] = None
        self._granularity = check_granularity(float(granularity))
        self._phrase = self._check_phrase(phrase)

    # ----- state -----------------------------------------------------------------------------------------------
    @property
    def clicks(self) -> List[Click]:
        """The clicks of the current probabilities (``coords`` is (y, x))."""
        with self._state_lock:
            return list(self._clicks)

    @property
    def probs(self) -> Optional[np.ndarray]:
        """H x W float32 probabilities of the current clicks, or None before the first click."""
        with self._state_lock:
            return self._probs

    @property
    def granularity(self) -> Optional[float]:
        """The slider value in use, or None while a phrase is in use."""
        return None if self._phrase else self._granularity

    @property
    def phrase(self) -> Optional[str]:
        """The part name in use, or None while the granularity is in use."""
        return self._phrase

    def mask(self, threshold: float = 0.5) -> Optional[np.ndarray]:
        """H x W bool: the probabilities above ``threshold``; None before the first click."""
        probs = self.probs
        return None if probs is None else probs > threshold

    def cached(self, clicks: Sequence[Click]) -> Optional[np.ndarray]:
        """The probabilities last predicted for exactly ``clicks`` (whatever the signal then), or None."""
        with self._state_lock:
            entry = self._cache.get(click_key(clicks))
        return None if entry is None else entry.probs

    # ----- predictions -----------------------------------------------------------------------------------------
    def add_click(self, x: float, y: float, positive: bool = True) -> np.ndarray:
        """Add a click at image pixel (x, y) and return the H x W probabilities."""
        return self.predict(self.clicks + [Click(bool(positive), (float(y), float(x)))])

    def undo(self) -> Optional[np.ndarray]:
        """Take back the last click; the probabilities of the remaining clicks (None when none remain).

        Without a forward pass when the remaining clicks were last predicted with the current signal."""
        with self._request_lock:
            clicks = self.clicks[:-1]
            if not clicks:
                with self._state_lock:
                    self._clicks, self._probs = [], None
                return None
            with self._state_lock:
                entry = self._cache.get(click_key(clicks))
                if entry is not None and entry.signal == self._signal():
                    self._clicks, self._probs = clicks, entry.probs
                    return entry.probs
            return self.predict(clicks)

    def set_granularity(self, granularity: float) -> Optional[np.ndarray]:
        """Use the slider at ``granularity`` (0.1 part ... 1.0 whole) and re-predict the clicks (None without)."""
        granularity = check_granularity(float(granularity))
        with self._request_lock:
            return self.predict(self.clicks, gra=granularity) if self._clicks else self._set_signal(granularity, None)

    def set_phrase(self, phrase: Optional[str]) -> Optional[np.ndarray]:
        """Use the part name ``phrase`` (None or empty: back to the granularity) and re-predict the clicks."""
        phrase = self._check_phrase(phrase)
        with self._request_lock:
            if phrase is None:
                return self.set_granularity(self._granularity)
            return self.predict(self.clicks, phrase=phrase) if self._clicks else self._set_signal(None, phrase)

    def predict(self, clicks: Sequence[Click], gra: Optional[float] = None, phrase: Optional[str] = None
                ) -> np.ndarray:
        """Make ``clicks`` the session's clicks (and ``gra`` or ``phrase``, when given, its signal) and return their
        H x W probabilities.

        The prediction starts from the state after the longest proper prefix of ``clicks`` predicted before, so a
        front end may send the whole sequence every time (Label Studio) or be ahead of its predictions (a UI thread).
        Only the states of the prefixes of ``clicks`` are kept. On an error nothing changes."""
        if gra is not None and phrase is not None:
            raise ValueError("give a granularity or a phrase, not both")
        clicks = [Click(bool(c.is_positive), (float(c.coords[0]), float(c.coords[1]))) for c in clicks]
        if not clicks:
            raise ValueError("predict needs at least one click")
        with self._request_lock:
            phrase = self._check_phrase(phrase)
            if phrase is not None:
                signal = (None, phrase)
            elif gra is not None:
                signal = (check_granularity(float(gra)), None)
            else:
                signal = self._signal()
            start = self._start_state(clicks)
            with self.shared.lock:
                self.predictor.set_states(start)
                probs = self.predictor.get_prediction(self._clicker(clicks), gra=signal[0], phrase=signal[1])
                states = self.predictor.get_states()["transform_states"]
            entry = _Entry(states, probs, signal)
            keep = {click_key(clicks[:n]) for n in range(len(clicks))}
            with self._state_lock:
                self._cache = {k: v for k, v in self._cache.items() if k in keep}
                self._cache[click_key(clicks)] = entry
                self._clicks, self._probs = clicks, probs
                self._set_signal(*signal)
            return probs

    def strip(self, clicks: Optional[Sequence[Click]] = None,
              granularities: Sequence[float] = GRANULARITY_LEVELS) -> List[np.ndarray]:
        """H x W probability maps of ``clicks`` (default: the session's) at each of ``granularities``, from one
        batched forward without the flip, starting from the same state as the prediction of ``clicks``."""
        clicks = self.clicks if clicks is None else list(clicks)
        if not clicks:
            raise ValueError("the strip needs at least one click")
        with self._request_lock:
            if self._strip_predictor is None:
                self._strip_predictor = self.shared.make_predictor(self.settings, with_flip=False)
                self._strip_predictor.set_input_image(self.image)
            start = self._start_state(clicks)
            with self.shared.lock:
                self._strip_predictor.set_states(start)
                return self._strip_predictor.predict_granularities(self._clicker(clicks), granularities)

    # ----- helpers ---------------------------------------------------------------------------------------------
    def _signal(self) -> Signal:
        return (None, self._phrase) if self._phrase else (self._granularity, None)

    def _set_signal(self, gra: Optional[float], phrase: Optional[str]) -> None:
        if gra is not None:
            self._granularity = gra
        self._phrase = phrase

    @staticmethod
    def _check_phrase(phrase: Optional[str]) -> Optional[str]:
        if phrase is None:
            return None
        if not isinstance(phrase, str):
            raise ValueError(f"a phrase must be text, got {type(phrase).__name__}")
        return phrase.strip() or None

    def _start_state(self, clicks: Sequence[Click]) -> dict:
        """The predictor state after the longest predicted proper prefix of ``clicks``."""
        with self._state_lock:
            for length in range(len(clicks) - 1, -1, -1):
                entry = self._cache.get(click_key(clicks[:length]))
                if entry is not None:
                    break
            else:
                raise RuntimeError("the object session lost its initial state")
        prev = self._initial_prev if entry.probs is None else torch.from_numpy(entry.probs)[None, None].to(
            self.predictor.device)
        return {"transform_states": entry.transform_states, "prev_prediction": prev}

    def _clicker(self, clicks: Sequence[Click]) -> Clicker:
        clicker = Clicker(click_indx_offset=self.click_offset)
        for click in clicks:
            clicker.add_click(Click(click.is_positive, click.coords))
        return clicker
