"""Shared by the Label Studio backend tests: tiny seeded checkpoints, a local image server, HTTP calls."""
import json
import threading
import urllib.error
import urllib.request
from functools import partial
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
from label_studio_converter.brush import decode_rle



class StaticFiles:
    """Serve ``folder`` over http on localhost (a real image host for the backend to read from)."""

    def __init__(self, folder: Path):
        handler = partial(_QuietFiles, directory=str(folder))
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, name: str) -> str:
        return f"http://{self.host}/{name}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


class RecordingHost:
    """A real HTTP host on localhost that answers the routes it is given and records every request (path and
    Authorization header): Label Studio, an image host or an attacker in the security tests."""

    def __init__(self):
        host = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                host.requests.append({"path": self.path, "authorization": self.headers.get("Authorization")})
                status, body, location = host.routes.get(self.path.split("?")[0], (404, b"not found", None))
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET

            def log_message(self, *args) -> None:
                pass

        self.requests: List[Dict[str, Any]] = []
        self.routes: Dict[str, Tuple[int, bytes, Optional[str]]] = {}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.origin = f"http://{self.host}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def route(self, path: str, status: int, body: bytes = b"", location: Optional[str] = None) -> None:
        self.routes[path] = (status, body, location)

    def url(self, name: str) -> str:
        return f"{self.origin}/{name}"

    def tokens(self) -> List[Optional[str]]:
        """The Authorization header of each request so far."""
        return [request["authorization"] for request in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def post(url: str, body: Any, headers: Optional[Dict[str, str]] = None, raw: Optional[bytes] = None,
         timeout: float = 120) -> Tuple[int, Dict[str, Any], str]:
    """(status, JSON answer, reason phrase) of a POST."""
    data = raw if raw is not None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read()), response.reason
    except urllib.error.HTTPError as error:
        body = error.read()
        try:
            answer = json.loads(body or b"{}")
        except ValueError:  # uvicorn's own 503 is plain text
            answer = {"error": body.decode(errors="replace")}
        return error.code, answer, error.reason


def decode_brush(result: Dict[str, Any]) -> np.ndarray:
    """The H x W boolean mask of a ``brushlabels`` result (Label Studio RLE of RGBA)."""
    height, width = result["original_height"], result["original_width"]
    flat = decode_rle(result["value"]["rle"])
    return flat.reshape(height, width, 4)[..., 3] > 127


def keypoint(x: float, y: float, label: str = "Positive", **extra) -> Dict[str, Any]:
    """A keypoint context result at (x %, y %)."""
    return {"type": "keypointlabels", "from_name": "click", "to_name": "image",
            "value": {"x": x, "y": y, "width": 0.5, "keypointlabels": [label]}, **extra}


def granularity(value: Any) -> Dict[str, Any]:
    return {"type": "number", "from_name": "granularity", "to_name": "image", "value": {"number": value}}


def free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, process, seconds: float, log: Path, headers: Optional[Dict[str, str]] = None) -> None:
    """Poll ``url`` until it answers 200; fail with the log's tail when ``process`` exits or time runs out."""
    import time
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise RuntimeError(f"{url} did not answer within {seconds:.0f} s:\n{log.read_text()[-3000:]}")


def stop(*processes) -> None:
    """Terminate the started servers, killing any that has not exited 30 s later."""
    import subprocess
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


def label_studio_env(data_dir: Path) -> Dict[str, str]:
    """Environment for a local, offline Label Studio that may call a backend on localhost."""
    import os
    return {**os.environ, "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir), "SSRF_PROTECTION_ENABLED": "false",
            "ML_BLOCK_LOCAL_IP": "false", "LATEST_VERSION_CHECK": "false", "COLLECT_ANALYTICS": "false"}


def setup_label_studio() -> Path:
    """The python of the venv that scripts/setup_labelstudio.sh makes from locks/labelstudio.txt (.ci/run runs it
    first; here it is a no-op then); skips, or fails under GRACO_REQUIRE_TEST_ASSETS, when it cannot be built."""
    import subprocess
    from helpers import ROOT, skip_unless_required
    try:
        done = subprocess.run(["bash", str(ROOT / "scripts" / "setup_labelstudio.sh")], capture_output=True,
                              text=True, timeout=900)
    except subprocess.TimeoutExpired:
        skip_unless_required("Label Studio cannot be installed: scripts/setup_labelstudio.sh ran over 15 minutes")
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        skip_unless_required(f"Label Studio cannot be installed (scripts/setup_labelstudio.sh failed: {reason})")
    return Path(done.stdout.strip().splitlines()[-1])


def label_studio_command(python: Path, data_dir: Path, port: int, user: str, password: str, token: str):
    """``label-studio start`` with a user and a legacy API token made by its own command line."""
    return [str(python.parent / "label-studio"), "start", "--data-dir", str(data_dir), "--username", user,
            "--password", password, "--user-token", token, "--enable-legacy-api-token", "--no-browser",
            "--internal-host", "127.0.0.1", "-p", str(port)]


def upload_image(label_studio: str, project: int, path: Path, headers: Dict[str, str]) -> None:
    """Import one image file into a project (multipart upload, as the web page does)."""
    import uuid
    boundary = uuid.uuid4().hex
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
            f"Content-Type: image/jpeg\r\n\r\n").encode() + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(f"{label_studio}/api/projects/{project}/import", data=body, method="POST",
                                     headers={**headers, "Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status == 201, response.read()


def get(url: str, headers: Dict[str, str]) -> Any:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60) as response:
        return json.loads(response.read())
