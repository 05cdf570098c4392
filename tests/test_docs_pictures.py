"""README's pictures, made by the quick start's trained model (not seeded weights): set ``GRACO_QUICKSTART`` to the
quick start's output folder (``outputs/quickstart`` after ``bash scripts/quickstart.sh``) and ``GRACO_UPDATE_DOCS=1``
to write them into ``docs/``. Skipped without ``GRACO_QUICKSTART``."""
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from helpers import ROOT
from web_helpers import Page, RunningApp, launch_chromium, require

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quickstart() -> Path:
    folder = os.environ.get("GRACO_QUICKSTART")
    if not folder:
        pytest.skip("GRACO_QUICKSTART is unset: run bash scripts/quickstart.sh and set it to outputs/quickstart")
    folder = Path(folder).resolve()
    if not (folder / "results.json").is_file():
        pytest.fail(f"GRACO_QUICKSTART={folder} has no quick start report (results.json)", pytrace=False)
    return folder


def quickstart_model_args(folder: Path) -> list:
    checkpoint = "checkpoints/last_checkpoint.safetensors"
    base = sorted((folder / "exps" / "base").glob(f"*_quickstart/{checkpoint}"))[-1]
    graco = sorted((folder / "exps" / "graco").glob(f"*_quickstart/{checkpoint}"))[-1]
    return ["--checkpoint", str(base), "--lora_checkpoint", str(graco), "--clip-weights",
            str(folder / "clip_text_standin.safetensors"), "--precision", "fp32"]


def held_out_scene(folder: Path):
    """(image path, (x, y) click): the held-out scene whose object has the most parts, clicked at the most interior
    pixel of that object's largest part (a click that could mean the part or the whole)."""
    from isegm.data.training import read_pascalpart_objects
    root = folder / "data" / "PascalPart"
    best = None
    for image_id in (root / "ImageSets" / "Main" / "val.txt").read_text().split():
        for obj in read_pascalpart_objects(root / "Annotations_Part" / f"{image_id}.mat"):
            key = (len(obj.parts), int(obj.mask.sum()))
            if best is None or key > best[0]:
                best = (key, image_id, obj)
    _, image_id, obj = best
    part = max((mask for _, mask in obj.parts), key=lambda m: m.sum()).astype(np.uint8)
    depth = cv2.distanceTransform(np.pad(part, 1), cv2.DIST_L2, 5)[1:-1, 1:-1]
    y, x = np.unravel_index(np.argmax(depth), depth.shape)
    return root / "JPEGImages" / f"{image_id}.jpg", (int(x), int(y))


def test_web_page_with_the_quick_start_model(quickstart, tmp_path):
    """The web app on the quick start's checkpoints: a held-out toy scene, one click, the granularity at 0.3, the
    strip of ten granularities; the masks differ between 0.3 and 1.0."""
    require(browser=True)
    from playwright.sync_api import sync_playwright
    image_path, (x, y) = held_out_scene(quickstart)
    scene = tmp_path / "toy_scene.png"
    cv2.imwrite(str(scene), cv2.imread(str(image_path)))
    app = RunningApp(quickstart_model_args(quickstart), tmp_path / "app.log")
    try:
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            try:
                page = Page(browser.new_page(viewport={"width": 1280, "height": 900}), app.url)
                page.upload(scene)
                page.wait_status("toy_scene (128 x 128) · 0 clicks")
                shown = page.canvas_src()
                page.click_image(x, y)
                page.wait_status("1 clicks")
                shown = page.wait_canvas_change(shown)
                whole = page.picture()
                page.set_slider("graco-granularity", 0.3, minimum=0.1, maximum=1.0)
                page.wait_status("granularity 0.3")
                page.wait_canvas_change(shown)
                page.wait_strip()
                assert (np.abs(page.picture().astype(int) - whole).sum(axis=2) > 60).sum() > 20, \
                    "0.3 and 1.0 give different masks"
                screenshot = page.page.screenshot(type="jpeg", quality=85)
            finally:
                browser.close()
    finally:
        app.close()
    assert screenshot[:3] == b"\xff\xd8\xff"
    if os.environ.get("GRACO_UPDATE_DOCS"):
        (ROOT / "docs" / "webapp.jpg").write_bytes(screenshot)
