"""Label Studio from the venv built from locks/labelstudio.txt: ``label-studio start`` answers ``/health`` (apart from
the end-to-end and browser tests, so that a broken venv, a dependency that changed under Label Studio, is named in
one line), and it imports the tasks that ``segment_everything.py --labelstudio`` writes, predictions included."""
import json
import subprocess
import urllib.request

import cv2
import numpy as np
import pytest

from everything_helpers import known_scene
from helpers import write_tiny_checkpoints
from isegm.labelstudio.labeling_config import EXAMPLE_CONFIG, LabelingConfig
from labelstudio_helpers import (decode_brush, free_port, get, label_studio_command, label_studio_env, post,
                                 setup_label_studio, stop, wait_for)

pytestmark = pytest.mark.slow  # Label Studio's first start migrates its database (about a minute on 2 cores)
TOKEN = "graco-start-token"
HEADERS = {"Authorization": f"Token {TOKEN}"}


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory):
    """The URL of a Label Studio started for real on localhost from the locked venv."""
    python = setup_label_studio()
    folder = tmp_path_factory.mktemp("label_studio_start")
    port, log_path = free_port(), folder / "label_studio.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            label_studio_command(python, folder / "data", port, "start@example.com", "start-password", TOKEN),
            env=label_studio_env(folder / "data"), stdout=log, stderr=subprocess.STDOUT)
    try:
        try:
            wait_for(f"http://127.0.0.1:{port}/health", process, 300, log_path)
        except RuntimeError:
            lines = [line for line in log_path.read_text().splitlines() if line.strip()]
            pytest.fail(f"label-studio start from {python.parent.parent} (scripts/setup_labelstudio.sh, "
                        f"locks/labelstudio.txt) did not answer /health: {lines[-1] if lines else 'no output'}",
                        pytrace=False)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)


def test_label_studio_from_the_locked_venv_answers_health(label_studio):
    with urllib.request.urlopen(label_studio + "/health", timeout=30) as response:
        assert json.loads(response.read())["status"] == "UP"


def test_label_studio_imports_segment_everythings_tasks_with_their_predictions(label_studio, tmp_path):
    from segment_everything import main
    base, lora = write_tiny_checkpoints(tmp_path)
    image = known_scene(64)[0]
    cv2.imwrite(str(tmp_path / "scene.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    tasks_path = tmp_path / "tasks.json"
    assert main(["--checkpoint", str(base), "--lora_checkpoint", str(lora), "--cpu", "--precision", "fp32",
                 "--images", str(tmp_path / "scene.png"), "--output", str(tmp_path / "out"), "--points-per-side",
                 "2", "--target-size", "64", "--min-area", "0", "--gra", "0.3,1.0", "--labelstudio", str(tasks_path),
                 "--labelstudio-image-url", "http://files.example/photos/"]) == 0
    written = json.loads(tasks_path.read_text())
    config = LabelingConfig.parse(EXAMPLE_CONFIG)
    status, project, _ = post(label_studio + "/api/projects", {"title": "everything", "label_config": EXAMPLE_CONFIG},
                              HEADERS)
    assert status == 201, project
    status, answer, _ = post(f"{label_studio}/api/projects/{project['id']}/import", written, HEADERS)
    assert status == 201 and answer["task_count"] == 1 and answer["prediction_count"] == 2, answer
    task, = get(f"{label_studio}/api/tasks?project={project['id']}", HEADERS)["tasks"]
    assert task["data"]["image"] == "http://files.example/photos/scene.png"
    stored = get(f"{label_studio}/api/predictions?task={task['id']}", HEADERS)
    assert sorted(p["model_version"] for p in stored) == sorted(p["model_version"] for p in written[0]["predictions"])
    for ours in written[0]["predictions"]:
        theirs = next(p for p in stored if p["model_version"] == ours["model_version"])
        assert len(theirs["result"]) == len(ours["result"]) > 0
        for a, b in zip(theirs["result"], ours["result"]):
            assert np.array_equal(decode_brush(a), decode_brush(b)) and a["meta"] == b["meta"]
            # the project's own controls, so that Label Studio draws the regions on its image
            assert (a["from_name"], a["to_name"]) == (config.brush_name, config.image_name)
