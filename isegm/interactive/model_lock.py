"""The lock around a shared model's forwards, with interactive work first: a click waits for the forward that runs,
never for the forwards a background job (segment everything for Label Studio's "Retrieve predictions") has left."""
import contextlib
import threading
from typing import Iterator


class ModelLock:
    """A non-reentrant lock with two kinds of holders.

    ``with lock:`` (interactive) takes the lock as soon as it is free. ``with lock.background():`` takes it only
    when it is free and no interactive holder is waiting, so a long background job gives way between its forwards.
    """

    def __init__(self):
        self._condition = threading.Condition()
        self._held = False
        self._waiting = 0  # interactive holders waiting

    def acquire(self) -> None:
        with self._condition:
            self._waiting += 1
            try:
                self._condition.wait_for(lambda: not self._held)
            finally:
                self._waiting -= 1
            self._held = True

    def release(self) -> None:
        with self._condition:
            if not self._held:
                raise RuntimeError("release of an unheld ModelLock")
            self._held = False
            self._condition.notify_all()

    def __enter__(self) -> "ModelLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    @contextlib.contextmanager
    def background(self) -> Iterator[None]:
        """Hold the lock for one background forward, after every interactive holder that is waiting."""
        with self._condition:
            self._condition.wait_for(lambda: not self._held and self._waiting == 0)
            self._held = True
        try:
            yield
        finally:
            self.release()

    def locked(self) -> bool:
        with self._condition:
            return self._held
