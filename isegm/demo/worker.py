"""A single background thread for model work, with latest-request-wins slots.

The UI thread submits jobs; a job waiting in a slot is replaced by a newer one in the same slot (its callback is never
called). The ``main`` slot (clicks) is served first, then ``background`` (the strip), then ``everything`` ("Segment
all", which no other job replaces). Results come back through :meth:`Worker.poll`,
which the UI thread calls (Tk ``after``), so callbacks always run on the UI thread.
"""
import logging
import queue
import threading
import time
from typing import Any, Callable, Dict, Optional, Tuple

logger = logging.getLogger(__name__)

SLOTS = ("main", "background", "everything")
Callback = Callable[[Any, Optional[BaseException], float], None]


class Worker:
    """Run ``fn()`` jobs one at a time off the UI thread; ``callback(result, error, seconds)`` runs in :meth:`poll`."""

    def __init__(self, name: str = "graco-demo-worker"):
        self._lock = threading.Condition()
        self._pending: Dict[str, Optional[Tuple[Callable[[], Any], Callback]]] = {slot: None for slot in SLOTS}
        self._done: "queue.Queue[Tuple[Callback, Any, Optional[BaseException], float]]" = queue.Queue()
        self._busy = False
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[[], Any], callback: Callback, slot: str = "main") -> None:
        """Queue ``fn`` in ``slot``, replacing a job that waits there."""
        if slot not in SLOTS:
            raise ValueError(f"slot must be one of {SLOTS}, got {slot!r}")
        with self._lock:
            if self._pending[slot] is not None:
                logger.debug("a newer %s request replaces a pending one", slot)
            self._pending[slot] = (fn, callback)
            self._lock.notify()

    def cancel(self, slot: str) -> None:
        """Drop the job waiting in ``slot`` (a running job finishes)."""
        with self._lock:
            self._pending[slot] = None

    @property
    def idle(self) -> bool:
        """True when nothing runs, waits, or waits to be delivered by :meth:`poll`."""
        with self._lock:
            return not self._busy and all(job is None for job in self._pending.values()) and self._done.empty()

    def poll(self) -> int:
        """Run the callbacks of finished jobs (call from the UI thread); returns how many ran."""
        count = 0
        while True:
            try:
                callback, result, error, seconds = self._done.get_nowait()
            except queue.Empty:
                return count
            count += 1
            callback(result, error, seconds)

    def wait(self, timeout: float = 60.0) -> None:
        """Block until idle, running callbacks (for scripts and tests without an event loop)."""
        deadline = time.monotonic() + timeout
        while True:
            self.poll()
            if self.idle:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the model worker is still busy after {timeout:.0f} s")
            time.sleep(0.01)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify()

    def _next(self) -> Optional[Tuple[Callable[[], Any], Callback]]:
        with self._lock:
            while not self._closed:
                for slot in SLOTS:
                    job = self._pending[slot]
                    if job is not None:
                        self._pending[slot] = None
                        self._busy = True
                        return job
                self._lock.wait()
            return None

    def _run(self) -> None:
        while True:
            job = self._next()
            if job is None:
                return
            fn, callback = job
            start = time.perf_counter()
            result, error = None, None
            try:
                result = fn()
            except Exception as exc:  # reported to the UI, the worker keeps running
                logger.debug("job failed", exc_info=True)
                error = exc
            self._done.put((callback, result, error, time.perf_counter() - start))
            with self._lock:
                self._busy = False

