"""The Label Studio venv built from locks/labelstudio.txt starts: ``label-studio start`` answers ``/health``. Apart from
the end-to-end and browser tests, so that a broken venv (a dependency that changed under Label Studio) is named in one
line."""
import subprocess

import pytest

from labelstudio_helpers import free_port, label_studio_command, label_studio_env, setup_label_studio, wait_for

pytestmark = pytest.mark.slow  # Label Studio's first start migrates its database (about a minute on 2 cores)


def test_label_studio_from_the_locked_venv_answers_health(tmp_path):
    python = setup_label_studio()
    venv = python.parent.parent
    port, log_path = free_port(), tmp_path / "label_studio.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            label_studio_command(python, tmp_path / "data", port, "start@example.com", "start-password", "start-token"),
            env=label_studio_env(tmp_path / "data"), stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(f"http://127.0.0.1:{port}/health", process, 300, log_path)
    except RuntimeError:
        lines = [line for line in log_path.read_text().splitlines() if line.strip()]
        pytest.fail(f"label-studio start from {venv} (scripts/setup_labelstudio.sh, locks/labelstudio.txt) did not "
                    f"answer /health: {lines[-1] if lines else 'no output'}", pytrace=False)
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
