"""The web app for tests: app.py started for real on a free localhost port, headless Debian chromium driven by
playwright (real mouse input on the image), and gradio_client."""
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Optional

import cv2
import numpy as np

from helpers import ROOT, skip_unless_required

CHROMIUM = os.environ.get("GRACO_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
APP_ENV = {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "GRADIO_TEMP_DIR": ""}


def require(*, browser: bool) -> None:
    """Skip when gradio (and, for ``browser``, playwright and chromium) is missing; fail instead under
    GRACO_REQUIRE_TEST_ASSETS (CI installs them)."""
    missing = [name for name in ("gradio", "gradio_client") + (("playwright",) if browser else ())
               if importlib.util.find_spec(name) is None]
    if browser and not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        missing.append(f"chromium ({CHROMIUM}; apt-get install chromium)")
    if missing:
        skip_unless_required(f"{', '.join(missing)} not installed (pip install -r requirements.txt; "
                             "apt-get install chromium)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RunningApp:
    """``python app.py ARGS --cpu --port N`` in a subprocess (in the log's folder, without CLIP weights, with
    ``extra_env`` added to the environment); ``url`` once it serves, the log in ``log_path``."""

    def __init__(self, args: List[str], log_path: Path, timeout: float = 180.0, extra_env: Optional[dict] = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path = log_path
        env = {key: value for key, value in os.environ.items() if key != "GRACO_CLIP_WEIGHTS"}
        env = {**env, **APP_ENV, "GRADIO_TEMP_DIR": str(log_path.parent / "gradio_tmp"),
               "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"), **(extra_env or {})}
        self._log = open(log_path, "w")
        self.process = subprocess.Popen([sys.executable, str(ROOT / "app.py"), *args, "--cpu", "--port",
                                         str(self.port)], cwd=log_path.parent, env=env, stdout=self._log,
                                        stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.close()
                raise AssertionError(f"app.py exited with {self.process.returncode}:\n{self.log()}")
            if f"Running on local URL:  {self.url}".rstrip("/") in self.log() and self._answers():
                return
            time.sleep(0.3)
        self.close()
        raise AssertionError(f"app.py did not serve {self.url} within {timeout:.0f} s:\n{self.log()}")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def launch_chromium(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


class Page:
    """One browser tab on the app, with the page's controls as methods (real mouse clicks on the image)."""

    def __init__(self, page, url: str, timeout_ms: float = 60_000):
        self.page = page
        self.timeout_ms = timeout_ms
        page.set_default_timeout(timeout_ms)
        page.goto(url)
        page.wait_for_selector("#graco-canvas")

    def status(self) -> str:
        return self.page.locator("#graco-status textarea").input_value()

    def message(self) -> str:
        return self.page.locator("#graco-message").inner_text()

    def wait_status(self, text: str) -> str:
        """Wait until the status line contains ``text``; return it."""
        deadline = time.monotonic() + self.timeout_ms / 1000
        while time.monotonic() < deadline:
            status = self.status()
            if text in status:
                return status
            time.sleep(0.05)
        raise AssertionError(f"status never showed {text!r}; it reads {self.status()!r}, message "
                             f"{self.message()!r}")

    def wait_message(self, text: str) -> str:
        deadline = time.monotonic() + self.timeout_ms / 1000
        while time.monotonic() < deadline:
            message = self.message()
            if text in message:
                return message
            time.sleep(0.05)
        raise AssertionError(f"message never showed {text!r}; it reads {self.message()!r}")

    def upload(self, path: Path) -> None:
        self.page.locator("#graco-upload input[type=file]").set_input_files(str(path))

    def canvas_image(self):
        return self.page.locator("#graco-canvas img")

    def canvas_src(self) -> Optional[str]:
        image = self.canvas_image()
        return image.get_attribute("src") if image.count() else None

    def wait_canvas_change(self, previous: Optional[str]) -> str:
        """Wait until the picture shown differs from ``previous`` (its URL) and has loaded; return its URL."""
        deadline = time.monotonic() + self.timeout_ms / 1000
        while time.monotonic() < deadline:
            src = self.canvas_src()
            if src and src != previous and self.canvas_image().evaluate("img => img.complete && img.naturalWidth > 0"):
                return src
            time.sleep(0.05)
        raise AssertionError("the picture did not change")

    def click_image(self, x: float, y: float, button: str = "left") -> None:
        """A real mouse click at image pixel (x, y) of the picture shown."""
        box = self.canvas_image().bounding_box()
        natural = self.canvas_image().evaluate("img => [img.naturalWidth, img.naturalHeight]")
        scale = min(box["width"] / natural[0], box["height"] / natural[1])
        left = box["x"] + (box["width"] - natural[0] * scale) / 2
        top = box["y"] + (box["height"] - natural[1] * scale) / 2
        self.page.mouse.click(left + (x + 0.5) * scale, top + (y + 0.5) * scale, button=button)

    def press(self, elem_id: str) -> None:
        box = self.page.locator(f"#{elem_id}").bounding_box()
        self.page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)

    def press_text(self, text: str) -> None:
        """A real mouse click on the visible control labelled ``text``."""
        target = self.page.get_by_text(text, exact=True).first
        target.scroll_into_view_if_needed()
        box = target.bounding_box()
        self.page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)

    def picture(self) -> np.ndarray:
        """The picture shown on the canvas, decoded (H x W x 3 RGB)."""
        data = self.page.request.get(self.canvas_src()).body()
        return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)

    def wait_strip(self, count: int = 10, settle_s: float = 1.0) -> None:
        """Wait until the strip shows ``count`` thumbnails and has not been computing for ``settle_s`` (a strip
        request queued after the last click may start a moment later)."""
        self.page.locator("#graco-strip img").nth(count - 1).wait_for()
        idle = ("() => !document.querySelector('#graco-strip [data-testid=status-tracker]:not(.hide)') && "
                "getComputedStyle(document.querySelector('#graco-strip')).opacity === '1'")
        deadline = time.monotonic() + self.timeout_ms / 1000
        since = None
        while time.monotonic() < deadline:
            if self.page.evaluate(idle):
                since = since or time.monotonic()
                if time.monotonic() - since >= settle_s:
                    return
            else:
                since = None
            time.sleep(0.05)
        raise AssertionError("the strip kept computing")

    def set_slider(self, elem_id: str, value: float, minimum: float, maximum: float) -> None:
        """A real mouse click on the slider's track where ``value`` lies."""
        track = self.page.locator(f"#{elem_id} input[type=range]")
        track.scroll_into_view_if_needed()
        box = track.bounding_box()
        thumb = 16.0
        fraction = (value - minimum) / (maximum - minimum)
        self.page.mouse.click(box["x"] + thumb / 2 + fraction * (box["width"] - thumb), box["y"] + box["height"] / 2)
