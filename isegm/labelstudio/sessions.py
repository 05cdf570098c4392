"""Annotation sessions of the backend: one :class:`~isegm.interactive.ObjectSession` per (project, task, image) in a
bounded pool, all on one shared model.

A session keeps what the next request needs, the predictor state (zoom-in crop, previous probabilities) after the
latest click sequence and after that sequence less its last click, not after every prefix: a request that repeats
the earlier clicks and adds one more costs one forward pass, the same clicks with another granularity re-predict the
last click from the state of the earlier ones (as the slider of the annotation tool does), and the memory of a
session does not grow with its clicks. A request whose clicks extend neither (a deleted keypoint, another label's
object) is predicted from a fresh state, all its clicks at once. The model (and
its active LoRA branch) is shared by all sessions: forwards hold its lock.
"""
import logging
import threading
from collections import OrderedDict
from typing import Callable, Hashable, Optional, Sequence

import numpy as np

from ..inference.clicker import Click
from ..interactive import ObjectSession, SharedModel, click_key

logger = logging.getLogger(__name__)


class CompactSession(ObjectSession):
    """An :class:`ObjectSession` that keeps the states after its latest click sequence and after that sequence less
    its last click (and the initial one), whatever the number of clicks."""

    def predict(self, clicks: Sequence[Click], gra: Optional[float] = None, phrase: Optional[str] = None
                ) -> np.ndarray:
        with self._request_lock:
            probs = super().predict(clicks, gra=gra, phrase=phrase)
            with self._state_lock:
                keep = ((), click_key(self._clicks), click_key(self._clicks[:-1]))
                self._cache = {key: entry for key, entry in self._cache.items() if key in keep}
            return probs


class SessionPool:
    """At most ``max_sessions`` sessions, and at most ``max_pixels`` image pixels in all (a session holds about
    36 MiB per megapixel; the newest session stays even alone above it), the least recently used evicted first; all
    share ``shared``'s model."""

    def __init__(self, shared: SharedModel, max_sessions: int = 8, max_pixels: Optional[int] = None):
        if max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        if max_pixels is not None and max_pixels < 1:
            raise ValueError("max_pixels must be at least 1")
        self.shared = shared
        self.max_sessions = max_sessions
        self.max_pixels = max_pixels
        self._sessions: "OrderedDict[Hashable, ObjectSession]" = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)

    @property
    def pixels(self) -> int:
        """Image pixels of the sessions kept."""
        with self._lock:
            return self._pixels()

    def _pixels(self) -> int:
        return sum(s.image_shape[0] * s.image_shape[1] for s in self._sessions.values())

    def get(self, key: Hashable, read_image: Callable[[], np.ndarray]) -> ObjectSession:
        """The session of ``key``, made with ``read_image()`` when it is new (the image is read outside the pool's
        lock, so a slow download does not hold up other annotators)."""
        with self._lock:
            session = self._sessions.get(key)
            if session is not None:
                self._sessions.move_to_end(key)
                return session
        session = CompactSession(self.shared, read_image())
        with self._lock:
            existing = self._sessions.get(key)
            if existing is not None:  # another request made it meanwhile
                self._sessions.move_to_end(key)
                return existing
            self._sessions[key] = session
            while len(self._sessions) > self.max_sessions or (
                    self.max_pixels is not None and len(self._sessions) > 1 and self._pixels() > self.max_pixels):
                old, _ = self._sessions.popitem(last=False)
                logger.info("session %s evicted (at most %d sessions, %s pixels)", old, self.max_sessions,
                            self.max_pixels or "any number of")
        return session
