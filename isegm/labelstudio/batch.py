"""Pre-annotation in the background: Label Studio's "Retrieve predictions" sends every selected task in one request
and gives up after ``ML_TIMEOUT_PREDICT`` (100 s), far less than segment everything takes for a few images on a CPU.

The backend therefore answers such a request at once: a task whose masks are ready gets them in the answer, every
other task gets none and joins a queue. One worker thread computes the queued tasks in order (their forwards give way
to any annotator's click, see :class:`~isegm.interactive.model_lock.ModelLock`) and writes each prediction to Label
Studio through its API (``POST /api/predictions``, with the token of the connection). A task already queued or
running is not queued again, so the requests Label Studio repeats (opening a task asks once more) start no new work.
Finished predictions are kept (the last ``max_kept``), so that a client without a Label Studio connection gets them
by asking again; at most ``max_pending`` tasks wait (more are not queued until the queue shrinks). A prediction is
written only to a task that Label Studio says shows the image that was segmented: anyone who reaches the port can
name a task id.
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
    prediction (a dict in Label Studio's format) and ``deliver(prediction, claim)`` sends it to Label Studio, right
    after ``claim()`` says True (False: the prediction went out in an answer meanwhile, send nothing)."""
    key: Hashable
    task_id: Any
    compute: Callable[[], Dict[str, Any]]
    deliver: Callable[[Dict[str, Any], Callable[[], bool]], None]


class PreAnnotationQueue:
    """The queue of tasks to pre-annotate and the one thread that works through it."""

    def __init__(self, max_kept: int = 256, max_pending: int = 1000):
        self.max_kept = max_kept
        self.max_pending = max_pending
        self._condition = threading.Condition()
        self._queue: "collections.deque[BatchJob]" = collections.deque()
        self._pending: set = set()  # keys queued or running
        self._done: "collections.OrderedDict[Hashable, Dict[str, Any]]" = collections.OrderedDict()
        self._answered: set = set()  # done keys whose prediction went out in an answer
        self._delivered: set = set()  # done keys whose prediction was sent through Label Studio's API
        self._thread: Optional[threading.Thread] = None
        self._closed = False

    def ready(self, key: Hashable) -> Optional[Dict[str, Any]]:
        """The finished prediction of ``key`` for an answer (it is then not sent through the API), or None: not
        finished, or sent through the API already (Label Studio has it)."""
        with self._condition:
            if key in self._delivered or key not in self._done:
                return None
            self._answered.add(key)
            return self._done[key]

    def _claim(self, key: Hashable) -> bool:
        """True (once) when the prediction of ``key`` may go through the API: no answer carried it."""
        with self._condition:
            if key in self._answered or key not in self._done:
                return False
            self._delivered.add(key)
            return True

    def submit(self, job: BatchJob) -> bool:
        """Queue ``job`` unless its task is queued, running or done, or ``max_pending`` tasks wait already; True
        when it was queued."""
        with self._condition:
            if self._closed or job.key in self._pending or job.key in self._done:
                return False
            if len(self._pending) >= self.max_pending:
                logger.warning("task %s: not queued, %d tasks wait for pre-annotation already", job.task_id,
                               len(self._pending))
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
                        old, _ = self._done.popitem(last=False)
                        self._answered.discard(old)
                        self._delivered.discard(old)
                try:
                    job.deliver(result, lambda: self._claim(job.key))
                except Exception as error:
                    logger.warning("task %s: the prediction was not written to Label Studio (%s); it is kept for "
                                   "the task's next request", job.task_id, error)
            with self._condition:
                self._pending.discard(job.key)
                self._condition.notify_all()
