"""Annotation sessions of the backend: one :class:`~isegm.interactive.ObjectSession` per (project, task, image) in a
bounded pool, all on one shared model.

A session keeps the predictor state after every prefix of its current click sequence, so a request that repeats the
earlier clicks and adds one more costs one forward pass; a request whose clicks do not extend a known prefix starts
from a fresh state. The model (and its active LoRA branch) is shared by all sessions: forwards hold its lock.
"""
import logging
import threading
from collections import OrderedDict
from typing import Callable, Hashable

import numpy as np

from ..interactive import ObjectSession, SharedModel

logger = logging.getLogger(__name__)


class SessionPool:
    """At most ``max_sessions`` sessions, the least recently used evicted first; all share ``shared``'s model."""

    def __init__(self, shared: SharedModel, max_sessions: int = 8):
        if max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        self.shared = shared
        self.max_sessions = max_sessions
        self._sessions: "OrderedDict[Hashable, ObjectSession]" = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)

    def get(self, key: Hashable, read_image: Callable[[], np.ndarray]) -> ObjectSession:
        """The session of ``key``, made with ``read_image()`` when it is new (the image is read outside the pool's
        lock, so a slow download does not hold up other annotators)."""
        with self._lock:
            session = self._sessions.get(key)
            if session is not None:
                self._sessions.move_to_end(key)
                return session
        session = self.shared.session(read_image())
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
