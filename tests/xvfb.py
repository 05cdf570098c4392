"""A virtual X display (Xvfb) and xdotool input for tests that drive a real Tk window."""
import importlib.util
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Optional

import pytest

REQUIRED_TOOLS = ("Xvfb", "xdotool")


def require_tools() -> None:
    """Skip when Xvfb or xdotool is missing; fail instead under GRACO_REQUIRE_TEST_ASSETS (CI)."""
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    if importlib.util.find_spec("tkinter") is None:
        missing.append("tkinter (python3-tk)")
    if missing:
        reason = f"{', '.join(missing)} not installed (apt-get install xvfb xdotool python3-tk)"
        if os.environ.get("GRACO_REQUIRE_TEST_ASSETS"):
            pytest.fail(reason)
        pytest.skip(reason)


class VirtualDisplay:
    """``Xvfb :N`` on a free display number; ``env`` has DISPLAY set for child processes."""

    def __init__(self, width: int = 1600, height: int = 1000):
        self.process: Optional[subprocess.Popen] = None
        for number in range(90 + os.getpid() % 50, 200):
            if Path(f"/tmp/.X{number}-lock").exists() or Path(f"/tmp/.X11-unix/X{number}").exists():
                continue
            process = subprocess.Popen(["Xvfb", f":{number}", "-screen", "0", f"{width}x{height}x24", "-nolisten",
                                        "tcp"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and process.poll() is None:
                if Path(f"/tmp/.X11-unix/X{number}").exists():
                    self.process, self.display = process, f":{number}"
                    break
                time.sleep(0.05)
            if self.process is not None:
                break
            if process.poll() is None:
                process.terminate()
                process.wait()
        if self.process is None:
            raise RuntimeError("could not start Xvfb")
        self.env = {**os.environ, "DISPLAY": self.display}

    def xdotool(self, *args: str) -> str:
        result = subprocess.run(["xdotool", *args], env=self.env, capture_output=True, text=True, timeout=20)
        if result.returncode != 0:
            raise RuntimeError(f"xdotool {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout.strip()

    def click(self, x: int, y: int, button: int = 1) -> None:
        self.xdotool("mousemove", "--sync", str(int(x)), str(int(y)))
        time.sleep(0.1)
        self.xdotool("click", str(button))

    def key(self, *keys: str) -> None:
        self.xdotool("key", *keys)

    def screenshot(self, path: Path, box=None) -> Path:
        """Save the screen (or the ``[x, y, width, height]`` box of a window) as a PNG."""
        from PIL import ImageGrab
        path.parent.mkdir(parents=True, exist_ok=True)
        picture = ImageGrab.grab(xdisplay=self.display)
        if box is not None:
            x, y, width, height = box
            picture = picture.crop((x, y, x + width, y + height))
        picture.save(path)
        return path

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
