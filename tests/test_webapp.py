"""The web app (app.py): its per-tab state without a server, then the real app on localhost driven by headless
Debian chromium (real mouse clicks on the image), two interleaved browser sessions, gradio_client, bad input and
hostile requests."""
import json
import logging
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from helpers import write_tiny_checkpoints
from web_helpers import Page, RunningApp, launch_chromium, require

pytest.importorskip("PIL")
PHOTO_CLICK = (250, 190)
OTHER_CLICK = (380, 120)
NEGATIVE_CLICK = (120, 300)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return write_tiny_checkpoints(tmp_path_factory.mktemp("web_weights"))


@pytest.fixture(scope="module")
def app_argv(checkpoints):
    base, lora = checkpoints
    return ["--checkpoint", str(base), "--lora_checkpoint", str(lora), "--precision", "fp32",
            "--limit-longest-size", "256"]


@pytest.fixture(scope="module")
def shared(app_argv):
    """The model and settings app.py builds from the same arguments, for the bare-predictor reference."""
    import app
    from isegm.cli import prepare_model
    from isegm.inference.utils import load_is_model
    from isegm.interactive import SharedModel
    args = app.parse_args(app_argv + ["--cpu"])
    device, checkpoint, lora, settings = prepare_model(args)
    return SharedModel(load_is_model(checkpoint, device, lora_checkpoint=lora), device, settings)


@pytest.fixture(scope="module")
def photo_path():
    from isegm.web.layout import example_photos
    return Path(example_photos()[0][0])


@pytest.fixture(scope="module")
def photo(photo_path):
    return cv2.cvtColor(cv2.imread(str(photo_path)), cv2.COLOR_BGR2RGB)


def reference_mask(shared, image, steps, threshold=0.5) -> np.ndarray:
    """The mask of a bare interactive session (no web app) after ``steps``: ('click', x, y, positive) or
    ('gra', value)."""
    session = shared.session(image)
    for step in steps:
        if step[0] == "click":
            session.add_click(step[1], step[2], step[3])
        else:
            session.set_granularity(step[1])
    return session.mask(threshold)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


# ----- the per-tab state, without a server ---------------------------------------------------------------------
def test_session_clicks_slider_undo_objects_and_files(shared, photo_path, photo, tmp_path):
    from isegm.interactive.export import read_coco_masks
    from isegm.web.state import InputError, WebSession
    ws = WebSession(shared, max_image_side=2048)
    with pytest.raises(InputError, match="open an image first"):
        ws.add_click(10, 10, True)
    ws.open_image(str(photo_path))
    ws.add_click(*PHOTO_CLICK, True)
    first = ws.instances()
    assert np.array_equal(first == 1, reference_mask(shared, photo, [("click", *PHOTO_CLICK, True)]))
    ws.set_granularity(0.3)
    assert (ws.instances() != first).any(), "the slider re-predicts the clicks"
    ws.add_click(*NEGATIVE_CLICK, False)
    ws.undo()
    steps = [("click", *PHOTO_CLICK, True), ("gra", 0.3)]
    assert np.array_equal(ws.instances() == 1, reference_mask(shared, photo, steps))
    ws.compute_strip()
    assert len(ws.strip_thumbnails()) == 10
    assert ws.choose_strip(4) == 0.5 and ws.granularity == 0.5
    ws.finish_object()
    assert ws.session.clicks == [] and len(ws.annotation.objects) == 1
    with pytest.raises(InputError, match="nothing to finish"):
        ws.finish_object()
    ws.add_click(*OTHER_CLICK, True)
    ws.finish_object()
    canvas = ws.canvas()
    colours = {tuple(canvas[y, x]) for x, y in (PHOTO_CLICK, OTHER_CLICK)}
    assert len(colours) == 2, "each object has its own colour"
    paths = ws.export()
    masks = read_coco_masks(paths["coco"])
    instances = cv2.imread(str(paths["instances"]), cv2.IMREAD_UNCHANGED)
    assert len(masks) == 2 and all(np.array_equal(m, instances == k) for k, m in enumerate(masks, 1))
    ws.close()
    assert not paths["coco"].exists()


def test_session_bad_input_keeps_working(shared, photo_path, tmp_path):
    from isegm.web.state import InputError, WebSession
    ws = WebSession(shared, max_image_side=300)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image at all")
    with pytest.raises(InputError, match="broken.jpg: not a readable image"):
        ws.open_image(str(broken))
    grey = tmp_path / "grey.png"
    cv2.imwrite(str(grey), np.full((200, 260), 128, np.uint8))
    ws.open_image(str(grey))
    assert ws.image.shape == (200, 260, 3) and "converted from L" in ws.notes[0]
    rgba = tmp_path / "rgba.png"
    cv2.imwrite(str(rgba), np.dstack([np.full((90, 120, 3), 200, np.uint8), np.zeros((90, 120), np.uint8)]))
    ws.open_image(str(rgba))
    assert ws.image.shape == (90, 120, 3) and np.all(ws.image == 255), "transparent pixels become white"
    ws.open_image(str(photo_path))  # 500 x 375 > 300
    assert ws.image.shape == (225, 300, 3) and "resized from 500 x 375 to 300 x 225" in ws.notes[0]
    with pytest.raises(InputError, match="outside"):
        ws.add_click(400, 10, True)
    with pytest.raises(InputError, match="part names are unavailable"):
        ws.set_phrase("head")
    with pytest.raises(InputError, match="granularity"):
        ws.set_granularity(3)
    ws.add_click(150, 110, True)
    assert ws.session.probs is not None and ws.phrase is None


@pytest.mark.slow
def test_part_names_with_clip_weights(photo_path):
    from helpers import tiny_config
    from isegm.interactive import PredictorSettings, SharedModel
    from isegm.toy.seeded import build_seeded_model
    from isegm.web.state import WebSession
    shared = SharedModel(build_seeded_model(tiny_config(), clip_text=True), "cpu", PredictorSettings(target_size=224))
    ws = WebSession(shared, max_image_side=2048)
    ws.open_image(str(photo_path))
    ws.add_click(*PHOTO_CLICK, True)
    whole = ws.session.probs
    ws.set_phrase("  head ")
    assert ws.phrase == "head" and "part 'head'" in ws.status()
    assert not np.allclose(ws.session.probs, whole), "the phrase re-predicts the clicks"
    ws.finish_object()
    assert ws.annotation.objects[0].name == "head"
    ws.set_phrase("")
    assert ws.phrase is None and "granularity 1.0" in ws.status()


def test_part_name_box_says_why_it_is_off():
    from isegm.web.layout import build_app

    def phrase_box(app):
        return next(block for block in app.blocks.values() if getattr(block, "elem_id", None) == "graco-phrase")
    off = phrase_box(build_app(lambda: None, "no CLIP weights at weights/clip/ViT-B-32.pt"))
    assert off.interactive is False and "no CLIP weights" in off.info
    assert phrase_box(build_app(lambda: None, None)).interactive is True


def test_huge_upload_is_refused_before_decoding(tmp_path):
    from PIL import Image

    from isegm.web.images import MAX_PIXELS, ImageInputError, read_upload
    side = int(MAX_PIXELS ** 0.5) + 16
    path = tmp_path / "huge.png"
    Image.new("L", (side, side)).save(path)  # small file (one colour), huge picture
    with pytest.raises(ImageInputError, match="too large"):
        read_upload(path, 2048)


# ----- the real app ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def running_app(app_argv, tmp_path_factory):
    require(browser=False)
    app = RunningApp(app_argv, tmp_path_factory.mktemp("web_app") / "app.log")
    yield app
    app.close()


@pytest.fixture(scope="module")
def browser():
    require(browser=True)
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


def downloaded_instances(page: Page, running_app) -> np.ndarray:
    """Press "prepare downloads" and read the instance PNG its link gives."""
    page.press("graco-export")
    page.wait_message("downloads ready")
    link = page.page.locator('#graco-files tr:has(td[aria-label="rgb.png"]) a').get_attribute("href")
    data = urllib.request.urlopen(urllib.parse.urljoin(running_app.url, link), timeout=30).read()
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)


def open_photo(page: Page) -> None:
    """Pick the first example photo with the mouse, as a user would."""
    page.press_text("VOC photo")
    page.wait_status("rgb (500 x 375) · 0 clicks")


@pytest.mark.slow
def test_browser_click_slider_negative_undo_finish_download(running_app, browser, shared, photo, tmp_path):
    context = browser.new_context(viewport={"width": 1400, "height": 1100}, accept_downloads=True)
    page = Page(context.new_page(), running_app.url)
    assert "disabled" in page.page.locator("#graco-phrase").inner_text(), "the part-name box says why it is off"
    assert page.page.locator("#graco-phrase textarea, #graco-phrase input").first.is_disabled()
    open_photo(page)
    shown = page.wait_canvas_change(None)
    plain = page.picture()

    page.click_image(*PHOTO_CLICK)
    page.wait_status("1 clicks")
    shown = page.wait_canvas_change(shown)
    first = page.picture()
    assert (np.abs(first.astype(int) - plain).sum(axis=2) > 60).sum() > 500, "a mask is drawn"
    page.wait_strip()

    page.set_slider("graco-granularity", 0.3, minimum=0.1, maximum=1.0)
    page.wait_status("granularity 0.3")
    shown = page.wait_canvas_change(shown)
    assert (np.abs(page.picture().astype(int) - first).sum(axis=2) > 60).sum() > 100, "the slider changes the mask"

    page.press_text("negative")
    page.click_image(*NEGATIVE_CLICK)
    page.wait_status("2 clicks")
    page.press("graco-undo")
    page.wait_status("1 clicks")
    page.press_text("positive")
    page.click_image(*NEGATIVE_CLICK, button="right")
    page.wait_status("2 clicks")
    steps = [("click", *PHOTO_CLICK, True), ("gra", 0.3), ("click", *NEGATIVE_CLICK, False)]
    assert iou(downloaded_instances(page, running_app) == 1, reference_mask(shared, photo, steps)) > 0.99, \
        "a right click is a negative click where the mouse is"
    page.press("graco-undo")
    page.wait_status("1 clicks")
    page.wait_strip()
    # README's picture is made by the quick start's model: tests/test_docs_pictures.py

    page.press("graco-finish")
    page.wait_status("1 objects finished")
    page.press("graco-export")
    page.wait_message("downloads ready")
    with page.page.expect_download() as download:
        page.page.locator('#graco-files tr:has(td[aria-label="rgb.json"]) a').click()
    target = tmp_path / "rgb.json"
    download.value.save_as(target)
    from isegm.interactive.export import read_coco_masks
    masks = read_coco_masks(target)
    expected = reference_mask(shared, photo, [("click", *PHOTO_CLICK, True), ("gra", 0.3)])
    assert len(masks) == 1 and iou(masks[0], expected) > 0.99
    assert json.loads(target.read_text())["images"][0]["file_name"] == "rgb.png"
    context.close()


@pytest.mark.slow
def test_two_browser_sessions_interleaved(running_app, browser, shared, photo):
    pages = [Page(browser.new_context(viewport={"width": 1400, "height": 1100}).new_page(), running_app.url)
             for _ in range(2)]
    for page in pages:
        open_photo(page)
        page.wait_canvas_change(None)
    a, b = pages
    a.click_image(*PHOTO_CLICK)
    b.click_image(*OTHER_CLICK)
    a.wait_status("1 clicks")
    b.wait_status("1 clicks")
    b.set_slider("graco-granularity", 0.5, minimum=0.1, maximum=1.0)
    a.press_text("negative")
    a.click_image(*NEGATIVE_CLICK)
    b.wait_status("granularity 0.5")
    a.wait_status("2 clicks")
    steps = {id(a): [("click", *PHOTO_CLICK, True), ("click", *NEGATIVE_CLICK, False)],
             id(b): [("click", *OTHER_CLICK, True), ("gra", 0.5)]}
    for page in pages:
        assert iou(downloaded_instances(page, running_app) == 1, reference_mask(shared, photo, steps[id(page)])) > 0.99
    for page in pages:
        page.page.context.close()


@pytest.mark.slow
def test_gradio_client_matches_the_bare_predictor(running_app, shared, photo, photo_path, tmp_path):
    from gradio_client import Client, handle_file
    client = Client(running_app.url, verbose=False, download_files=str(tmp_path))
    assert "open an image first" in client.predict(api_name="/undo")[2], "a request before an image asks for one"
    state = client.predict(handle_file(str(photo_path)), api_name="/open_image")
    assert "0 clicks" in state[1]
    client.predict(*PHOTO_CLICK, True, api_name="/add_click")
    client.predict(0.4, api_name="/set_granularity")
    canvas, status, message = client.predict(*NEGATIVE_CLICK, False, api_name="/add_click")
    assert "2 clicks" in status and "granularity 0.4" in status and "precision fp32" in status and not message
    *_, files = client.predict(api_name="/export")
    instances = cv2.imread(next(f for f in files if f.endswith("rgb.png")), cv2.IMREAD_UNCHANGED)
    steps = [("click", *PHOTO_CLICK, True), ("gra", 0.4), ("click", *NEGATIVE_CLICK, False)]
    assert iou(instances == 1, reference_mask(shared, photo, steps)) > 0.99

    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    _, status, message = client.predict(handle_file(str(broken)), api_name="/open_image")
    assert "broken.png: not a readable image" in message and "2 clicks" in status, "the work is kept"
    _, status, message = client.predict("head", api_name="/set_phrase")
    assert "part names are unavailable" in message and "CLIP" in message
    _, status, message = client.predict(None, 3, True, api_name="/add_click")
    assert "needs x and y" in message
    _, status, message = client.predict(*OTHER_CLICK, True, api_name="/add_click")
    assert "3 clicks" in status and not message, "the session keeps working after bad requests"


@pytest.mark.slow
def test_hostile_requests(running_app, tmp_path):
    """Files outside the app's own are not served, oversized uploads are refused, the app listens on localhost."""
    for path in ("gradio_api/file=/etc/passwd", "gradio_api/file=../../../../etc/passwd",
                 "gradio_api/file=%2e%2e/%2e%2e/%2e%2e/etc/passwd", f"gradio_api/file={Path(__file__).resolve()}",
                 "file=/etc/passwd", "../../etc/passwd"):
        try:
            with urllib.request.urlopen(running_app.url + path, timeout=30) as response:
                body = response.read()
        except urllib.error.HTTPError as error:
            assert error.code in (400, 403, 404, 405), (path, error.code)
        else:
            assert b"root:" not in body and b"def test_hostile" not in body, path
    big = b"x" * (51 * 2 ** 20)
    request = urllib.request.Request(running_app.url + "gradio_api/upload", data=b"--b\r\nContent-Disposition: "
                                     b"form-data; name=\"files\"; filename=\"a.png\"\r\n\r\n" + big + b"\r\n--b--\r\n",
                                     headers={"Content-Type": "multipart/form-data; boundary=b"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=60)
    assert refused.value.code in (400, 413)
    assert "Running on local URL:  http://127.0.0.1:" in running_app.log()


def queue_request(url: str, api_name: str, data: list) -> dict:
    """One request through Gradio's queue by its HTTP protocol (no client library): the completion message."""
    config = json.loads(urllib.request.urlopen(url + "config", timeout=30).read())
    fn_index = next(k for k, d in enumerate(config["dependencies"]) if d.get("api_name") == api_name)
    session = os.urandom(8).hex()
    body = json.dumps({"data": data, "fn_index": fn_index, "session_hash": session, "event_data": None,
                       "trigger_id": None}).encode()
    urllib.request.urlopen(urllib.request.Request(url + "gradio_api/queue/join", data=body,
                                                  headers={"Content-Type": "application/json"}), timeout=30).read()
    with urllib.request.urlopen(url + f"gradio_api/queue/data?session_hash={session}", timeout=60) as stream:
        for line in stream:
            if line.startswith(b"data:"):
                message = json.loads(line[5:])
                if message.get("msg") == "process_completed":
                    return message
    raise AssertionError("the queue never completed the request")


@pytest.mark.slow
def test_hostile_file_references(running_app, tmp_path):
    """A request naming a file on the server (absolute, with .., or a URL of a private host) is refused: only
    files uploaded to the app are opened, and the app fetches nothing from localhost."""
    import http.server
    import threading
    secret = tmp_path / "secret.jpg"
    from isegm.web.layout import example_photos
    secret.write_bytes(Path(example_photos()[0][0]).read_bytes())
    fetched = []

    class Recorder(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            fetched.append(self.path)

    files = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: Recorder(*a, directory=str(tmp_path)))
    threading.Thread(target=files.serve_forever, daemon=True).start()
    local_url = f"http://127.0.0.1:{files.server_address[1]}/secret.jpg"
    try:
        for reference in (str(secret), f"../../../../../..{secret}", local_url,
                          "http://169.254.169.254/latest/meta-data/"):
            data = {"path": reference, "url": reference if reference.startswith("http") else None,
                    "orig_name": "secret.jpg", "meta": {"_type": "gradio.FileData"}}
            message = queue_request(running_app.url, "open_image", [None, data])
            assert message["success"] is False, reference
    finally:
        files.shutdown()
    assert fetched == [], "the app fetched a URL on localhost"


@pytest.mark.slow
def test_a_slow_client_does_not_block_others(running_app):
    """A connection that sends half a request and stalls does not hold up the next visitor."""
    import socket
    with socket.create_connection(("127.0.0.1", running_app.port)) as stalled:
        stalled.sendall(b"POST /gradio_api/upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000\r\n\r\nxx")
        start = time.monotonic()
        with urllib.request.urlopen(running_app.url + "config", timeout=30) as response:
            assert response.status == 200
        assert time.monotonic() - start < 10


AUTH = ("annotator", "s3cret:pass")
AUTH_ENV = {"GRACO_BASIC_AUTH_USER": AUTH[0], "GRACO_BASIC_AUTH_PASS": AUTH[1]}


@pytest.fixture(scope="module")
def guarded_app(app_argv, tmp_path_factory):
    """app.py with basic auth from the environment (so the password is not on the command line)."""
    require(browser=False)
    app = RunningApp(app_argv, tmp_path_factory.mktemp("web_app_auth") / "app.log", extra_env=AUTH_ENV)
    yield app
    app.close()


def test_basic_auth_guards_the_api_and_files(guarded_app, photo_path):
    """Without the password nothing but the login page answers: config, API, queue, uploads and files are 401;
    gradio_client needs the right user and password; the password is not logged."""
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AuthenticationError
    url = guarded_app.url
    for path, data in (("config", None), ("gradio_api/info", None), ("gradio_api/queue/join", b"{}"),
                       ("gradio_api/upload", b"{}"), ("gradio_api/call/add_click", b'{"data": [1, 1, true]}'),
                       ("gradio_api/file=/etc/passwd", None), (f"gradio_api/file={photo_path}", None)):
        request = urllib.request.Request(url + path, data=data, headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        assert refused.value.code == 401, path
    for auth in (None, (AUTH[0], "wrong"), ("someone", AUTH[1])):
        with pytest.raises((AuthenticationError, ValueError)):
            Client(url, auth=auth, verbose=False)
    client = Client(url, auth=AUTH, verbose=False, download_files=False)
    client.predict(handle_file(photo_path), api_name="/open_image")
    picture, status, message = client.predict(*PHOTO_CLICK, True, api_name="/add_click")
    assert not message and "1 clicks" in status and picture["url"]
    assert AUTH[1] not in guarded_app.log()


def test_basic_auth_page_asks_for_the_password(guarded_app, browser):
    """The page shows Gradio's login form; after logging in the image canvas is there."""
    page = browser.new_page()
    try:
        page.goto(guarded_app.url)
        page.get_by_label("username").fill(AUTH[0])
        page.get_by_label("password").fill(AUTH[1])
        page.get_by_role("button", name="Login").click()
        page.wait_for_selector("#graco-canvas", timeout=60_000)
    finally:
        page.close()


def test_exposed_app_without_auth_is_warned_about(monkeypatch, caplog):
    import app
    from isegm.cli import warn_if_exposed
    for name in AUTH_ENV:
        monkeypatch.delenv(name, raising=False)
    args = app.parse_args(["--checkpoint", "x.pth", "--cpu", "--host", "0.0.0.0"])
    assert args.basic_auth is None
    with caplog.at_level(logging.WARNING):
        warn_if_exposed(None, None, "web app")
        warn_if_exposed("127.0.0.1", None, "web app")
        warn_if_exposed("0.0.0.0", AUTH, "web app")
        assert not caplog.records
        warn_if_exposed("0.0.0.0", None, "web app")
        warn_if_exposed(None, None, "web app", shared=True)
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        "listening on 0.0.0.0 without --basic-auth", "a public share link without --basic-auth"]
    monkeypatch.setenv("GRACO_BASIC_AUTH_USER", AUTH[0])
    monkeypatch.setenv("GRACO_BASIC_AUTH_PASS", AUTH[1])
    assert app.parse_args(["--checkpoint", "x.pth", "--cpu"]).basic_auth == AUTH
    assert app.parse_args(["--checkpoint", "x.pth", "--cpu", "--basic-auth", "a:b:c"]).basic_auth == ("a", "b:c")


def test_app_command_line_errors(tmp_path, monkeypatch, capsys):
    """One line on stderr and exit status 2: bad flags, and (run as a Space runs it) missing published weights."""
    import app
    monkeypatch.chdir(tmp_path)
    assert app.main(["--checkpoint", "x.pth", "--cpu", "--port", "70000"]) == 2
    assert "--port must be in 1..65535" in capsys.readouterr().err
    assert app.main([]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("app.py: error: sbd_vit_base: no such checkpoint") and "weights/simpleclick/" in error
    assert len(error.splitlines()) == 1


def test_clicks_per_object_are_capped(tmp_path, monkeypatch):
    """Each click keeps a full-resolution probability map for undo: an API client clicking without end must get a
    message, not grow one tab's memory without bound."""
    from PIL import Image

    from helpers import tiny_config
    from isegm.interactive import PredictorSettings, SharedModel
    from isegm.toy.seeded import build_seeded_model
    from isegm.web import state
    from isegm.web.state import InputError, WebSession

    assert 10 <= state.MAX_CLICKS <= 200
    monkeypatch.setattr(state, "MAX_CLICKS", 3)  # the same rule, three forwards instead of a hundred
    MAX_CLICKS = 3

    path = tmp_path / "small.png"
    Image.fromarray(np.full((24, 24, 3), 128, np.uint8)).save(path)
    shared = SharedModel(build_seeded_model(tiny_config(), seed=0), "cpu",
                         PredictorSettings(target_size=224, max_size=800, with_flip=False))
    ws = WebSession(shared, 64)
    ws.open_image(str(path))
    for i in range(MAX_CLICKS):
        ws.add_click(i % 24, (i // 24) % 24, True)
    with pytest.raises(InputError, match=f"at most {MAX_CLICKS} clicks"):
        ws.add_click(1, 1, True)
    assert len(ws.session.clicks) == MAX_CLICKS
    ws.undo()
    ws.add_click(1, 1, True)  # still working


def test_tabs_holding_an_image_are_capped(tmp_path):
    """Every tab (or API client) that opens an image holds it and its clicks' probabilities until its state expires
    (an hour): without a cap, a script opening tabs grows the server's memory without bound."""
    from PIL import Image

    from helpers import tiny_config
    from isegm.interactive import PredictorSettings, SharedModel
    from isegm.toy.seeded import build_seeded_model
    from isegm.web.state import InputError, SessionLimit, WebSession

    path = tmp_path / "small.png"
    Image.fromarray(np.full((24, 24, 3), 128, np.uint8)).save(path)
    shared = SharedModel(build_seeded_model(tiny_config(), seed=0), "cpu",
                         PredictorSettings(target_size=224, max_size=800, with_flip=False))
    limit = SessionLimit(2)
    tabs = [WebSession(shared, 64, limit) for _ in range(3)]
    tabs[0].open_image(str(path))
    tabs[1].open_image(str(path))
    tabs[0].add_click(5, 5, True)  # tab 0 used last: tab 1 is the least recently used
    tabs[2].open_image(str(path))
    assert len(limit) == 2 and tabs[1].image is None and tabs[0].image is not None
    with pytest.raises(InputError, match="open the image again"):
        tabs[1].add_click(5, 5, True)
    assert "open the image again" in tabs[1].status()
    tabs[1].open_image(str(path))  # and it works again, dropping tab 0's (used before tab 2's)
    tabs[1].add_click(5, 5, True)
    assert tabs[0].image is None and tabs[2].image is not None and len(limit) == 2
    tabs[2].expire()  # Gradio dropped the state: its place is free
    assert len(limit) == 1


def test_uploads_and_rendered_images_are_deleted():
    """Gradio keeps every upload and every rendered canvas (one JPEG per click) in its cache until the server stops,
    unless delete_cache is set: a long-running app (a Space) would fill its disk."""
    from isegm.web.layout import build_app
    app = build_app(lambda: None, None, strip=False, session_ttl=1800)
    assert app.delete_cache is not None
    frequency, age = app.delete_cache
    assert 0 < frequency <= 3600 and 1800 <= age <= 2 * 3600, app.delete_cache
