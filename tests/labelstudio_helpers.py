"""Shared by the Label Studio backend tests: tiny seeded checkpoints, a local image server, HTTP calls."""
import json
import threading
import urllib.error
import urllib.request
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import numpy as np
from label_studio_converter.brush import decode_rle

from isegm.utils.checkpoint import save_published_checkpoint
from isegm.utils.seeded import build_seeded_model

from conftest import tiny_config


def write_tiny_checkpoints(folder: Path) -> Tuple[Path, Path]:
    """A tiny seeded GraCo model written as a base + LoRA pair in the published layout."""
    model = build_seeded_model(tiny_config(), seed=0)
    trainable = set(model.trainable_parameters())
    state = model.state_dict()
    base_cfg = model.cfg.__class__.from_dict({**model.cfg.to_dict(), "granularity": False, "phrase": False})
    save_published_checkpoint({k: v for k, v in state.items() if k not in trainable}, base_cfg, folder / "base.pth")
    save_published_checkpoint({k: v for k, v in state.items() if k in trainable}, model.cfg, folder / "lora.pth")
    return folder / "base.pth", folder / "lora.pth"


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
        return error.code, json.loads(error.read() or b"{}"), error.reason


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
