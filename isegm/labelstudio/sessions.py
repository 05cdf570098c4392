"""Annotation sessions of the backend: one predictor per (project, task, image), a bounded pool, one shared model.

A session keeps, as in the annotation tool, the predictor state after every click prefix, so a request that repeats
the earlier clicks and adds one more costs one forward pass; a request whose clicks do not extend a known prefix starts
from a fresh state. The model (and its active LoRA branch) is shared by all sessions: forwards hold ``model_lock``.
"""
import logging
import threading
from collections import OrderedDict
from typing import Callable, Hashable, List, Optional

import numpy as np

from ..demo.controller import ObjectSession, click_key
from ..inference.clicker import Click
from ..inference.predictors import BasePredictor

logger = logging.getLogger(__name__)


class Session(ObjectSession):
    """One annotator's image: its predictor and the states of the click prefixes of the current object."""

    def __init__(self, predictor: BasePredictor, image: np.ndarray):
        predictor.set_input_image(image)
        super().__init__(predictor)
        self.image_shape = image.shape[:2]
        self.request_lock = threading.Lock()  # one request of this session at a time

    def predict(self, clicks: List[Click], gra: Optional[float], phrase: Optional[str]) -> np.ndarray:
        """H x W probabilities for ``clicks`` (a previous click sequence plus new clicks); keeps only the states of
        prefixes of ``clicks`` (an earlier, abandoned sequence is dropped)."""
        probs = super().predict(clicks, gra, phrase)
        keep = {click_key(clicks[:n]) for n in range(len(clicks) + 1)}
        with self.lock:
            for key in [k for k in self.cache if k not in keep]:
                del self.cache[key]
        return probs


class SessionPool:
    """At most ``max_sessions`` sessions, the least recently used evicted first; all share ``base``'s model."""

    def __init__(self, base: BasePredictor, max_sessions: int = 8):
        if max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        self.base = base
        self.max_sessions = max_sessions
        self.model_lock = threading.Lock()
        self._sessions: "OrderedDict[Hashable, Session]" = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)

    def get(self, key: Hashable, read_image: Callable[[], np.ndarray]) -> Session:
        """The session of ``key``, made with ``read_image()`` when it is new (the image is read outside the pool's
        lock, so a slow download does not hold up other annotators)."""
        with self._lock:
            session = self._sessions.get(key)
            if session is not None:
                self._sessions.move_to_end(key)
                return session
        session = Session(self.base.spawn(), read_image())
        with self._lock:
            existing = self._sessions.get(key)
            if existing is not None:  # another request made it meanwhile
                self._sessions.move_to_end(key)
                return existing
            self._sessions[key] = session
            while len(self._sessions) > self.max_sessions:
                old, _ = self._sessions.popitem(last=False)
                logger.info("session %s evicted (at most %d sessions)", old, self.max_sessions)
        return session

    def predict(self, session: Session, clicks: List[Click], gra: Optional[float], phrase: Optional[str]) -> np.ndarray:
        """Run ``session.predict`` with the shared model to itself."""
        with session.request_lock, self.model_lock:
            return session.predict(clicks, gra, phrase)
