"""Pre-annotation in the background: Label Studio's "Retrieve predictions" sends every selected task in one request
and gives up after ``ML_TIMEOUT_PREDICT`` (100 s), far less than segment everything takes for a few images on a CPU.

The backend therefore answers such a request at once: a task whose masks are ready gets them in the answer, every
other task gets none and joins a queue. One worker thread computes the queued tasks in order (their forwards give way
to any annotator's click, see :class:`~isegm.interactive.model_lock.ModelLock`) and writes each prediction to Label
Studio through its API (``POST /api/predictions``, with the token of the connection). A task already queued or
running is not queued again, so the requests Label Studio repeats (opening a task asks once more) start no new work.
Finished predictions are kept (the last ``max_kept``), so that a client without a Label Studio connection gets them
by asking again.
"""
import collections
import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable, Dict, Hashable, Optional

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchJob:
    """One task to pre-annotate: ``key`` identifies it (project, task id, image URL); ``compute()`` returns its
    prediction (a dict in Label Studio's format) and ``deliver(prediction)`` sends it to Label Studio."""
    key: Hashable
    task_id: Any
    compute: Callable[[], Dict[str, Any]]
    deliver: Callable[[Dict[str, Any]], None]


class PreAnnotationQueue:
    """The queue of tasks to pre-annotate and the one thread that works through it."""

    def __init__(self, max_kept: int = 256):
        self.max_kept = max_kept
        self._condition = threading.Condition()
        self._queue: "collections.deque[BatchJob]" = collections.deque()
        self._pending: set = set()  # keys queued or running
        self._done: "collections.OrderedDict[Hashable, Dict[str, Any]]" = collections.OrderedDict()
        self._thread: Optional[threading.Thread] = None
        self._closed = False

    def ready(self, key: Hashable) -> Optional[Dict[str, Any]]:
        """The finished prediction of ``key``, or None."""
        with self._condition:
            return self._done.get(key)

    def submit(self, job: BatchJob) -> bool:
        """Queue ``job`` unless its task is queued, running or done; True when it was queued."""
        with self._condition:
            if self._closed or job.key in self._pending or job.key in self._done:
                return False
            self._pending.add(job.key)
            self._queue.append(job)
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="graco-pre-annotation", daemon=True)
                self._thread.start()
            self._condition.notify_all()
            return True

    def __len__(self) -> int:
        """Tasks queued or running."""
        with self._condition:
            return len(self._pending)

    def wait_idle(self, timeout: Optional[float] = None) -> bool:
        """Wait until no task is queued or running; False on timeout."""
        with self._condition:
            return self._condition.wait_for(lambda: not self._pending, timeout)

    def close(self) -> None:
        """Drop the queued tasks and stop the worker after its current task."""
        with self._condition:
            self._closed = True
            for job in self._queue:
                self._pending.discard(job.key)
            self._queue.clear()
            self._condition.notify_all()

    def _work(self) -> None:
        while True:
            with self._condition:
                self._condition.wait_for(lambda: self._queue or self._closed)
                if not self._queue:
                    return
                job = self._queue.popleft()
            try:
                result = job.compute()
            except Exception as error:  # a task that cannot be pre-annotated must not stop the others
                logger.warning("task %s: no pre-annotation (%s)", job.task_id, error)
                result = None
            if result is not None:
                with self._condition:
                    self._done[job.key] = result
                    while len(self._done) > self.max_kept:
                        self._done.popitem(last=False)
                try:
                    job.deliver(result)
                except Exception as error:
                    logger.warning("task %s: the prediction was not written to Label Studio (%s); it is kept for "
                                   "the task's next request", job.task_id, error)
            with self._condition:
                self._pending.discard(job.key)
                self._condition.notify_all()
