"""Installation: every package the code imports is declared in pyproject.toml (a dependency, or the extra of the
feature that imports it), and a missing extra is named in one line."""
import ast
import os
import re
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from helpers import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SCRIPTS = ("train.py", "evaluate.py", "demo.py", "serve.py", "app.py", "segment_everything.py",
           "any_granularity_generator.py")


def normalize(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def declared_extras() -> dict:
    return {extra: {normalize(r) for r in reqs} for extra, reqs in PYPROJECT["project"]["optional-dependencies"].items()}


def imports_of(path: Path) -> dict:
    """{top-level module: the extra it is required from (None: a plain import)} of one source file."""
    found = {}
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update({alias.name.split(".")[0]: None for alias in node.names})
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found[node.module.split(".")[0]] = None
        elif (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "require_extra" and len(node.args) >= 2
              and all(isinstance(a, ast.Constant) for a in node.args[:2])):
            found[node.args[1].value.split(".")[0]] = node.args[0].value
    return found


def test_every_imported_package_is_declared():
    """``label_studio_tools`` and the like must not arrive only through another package."""
    dependencies = {normalize(r) for r in PYPROJECT["project"]["dependencies"]}
    extras = declared_extras()
    local = {p.stem for p in ROOT.glob("*.py")} | {"isegm"}
    distributions = packages_distributions()
    sources = [*sorted((ROOT / "isegm").rglob("*.py")), *(ROOT / name for name in SCRIPTS)]
    undeclared = []
    for path in sources:
        for module, extra in imports_of(path).items():
            if module in sys.stdlib_module_names or module in local:
                continue
            names = {normalize(d) for d in distributions.get(module, [module])}
            allowed = dependencies | (extras[extra] if extra else set())
            if not names & allowed:
                undeclared.append(f"{path.relative_to(ROOT)}: {module} ({extra or 'a dependency'})")
    assert not undeclared, undeclared


def test_extras_cover_the_optional_stacks():
    extras = declared_extras()
    assert {"segment-anything", "sam2"} <= extras["baselines"]
    assert {"label-studio-converter", "label-studio-tools", "uvicorn", "starlette"} <= extras["labelstudio"]
    assert "gradio" in extras["web"]
    assert {normalize(r) for r in PYPROJECT["project"]["optional-dependencies"]["all"]} == {"graco"}
    assert set(re.search(r"\[(.*)\]", PYPROJECT["project"]["optional-dependencies"]["all"][0]).group(1).split(",")) \
        == {"baselines", "labelstudio", "web"}


def test_a_missing_extra_is_one_line_naming_it():
    from isegm.utils.extras import ExtraMissing, require_extra
    with pytest.raises(ExtraMissing) as caught:
        require_extra("baselines", "segment_anything_not_installed", "--sam-type SAM")
    message = str(caught.value)
    assert "\n" not in message and message.endswith(
        "from the [baselines] extra: SAM2_BUILD_CUDA=0 pip install --no-build-isolation -e '.[baselines]'")
    assert message.startswith("--sam-type SAM needs segment_anything_not_installed")


BLOCKER = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {BLOCKED}:
            raise ModuleNotFoundError(f"No module named '{{name}}'", name=name)
sys.meta_path.insert(0, Block())
sys.argv = {ARGV}
sys.path.insert(0, {ROOT!r})
import runpy
runpy.run_path({SCRIPT!r}, run_name="__main__")
"""


def run_without(blocked, script: str, *argv: str) -> subprocess.CompletedProcess:
    """``script`` run as ``python script argv`` in a Python where the modules ``blocked`` cannot be imported (as
    after ``pip install -e .`` without the extra)."""
    code = BLOCKER.format(BLOCKED=set(blocked), ARGV=[script, *argv], ROOT=str(ROOT), SCRIPT=str(ROOT / script))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)


@pytest.mark.slow  # subprocesses
def test_serve_without_the_labelstudio_extra_says_which_extra():
    result = run_without({"label_studio_converter", "label_studio_tools", "uvicorn", "starlette"}, "serve.py",
                         "--help")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.stderr.count("\n") == 1 and "pip install -e '.[labelstudio]'" in result.stderr, result.stderr


@pytest.mark.slow  # subprocesses
def test_app_without_the_web_extra_says_which_extra():
    result = run_without({"gradio"}, "app.py", "--help")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.stderr.count("\n") == 1 and "pip install -e '.[web]'" in result.stderr, result.stderr


@pytest.mark.slow  # subprocesses
def test_segment_everything_labelstudio_without_the_extra_says_which_extra(tmp_path):
    """Checked before the long run: the image is never segmented."""
    import cv2
    import numpy as np
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((16, 16, 3), np.uint8))
    result = run_without({"label_studio_converter"}, "segment_everything.py", "--checkpoint", "missing.pth",
                         "--images", str(tmp_path / "a.png"), "--labelstudio", str(tmp_path / "t.json"),
                         "--labelstudio-image-url", "http://x/")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.stderr.count("\n") == 1 and "pip install -e '.[labelstudio]'" in result.stderr, result.stderr


@pytest.mark.slow  # subprocesses
@pytest.mark.parametrize("sam_type, sam_model, module", [("SAM", "vit_b", "segment_anything"),
                                                         ("SAM2", "hiera_t", "sam2")])
def test_evaluate_sam_type_without_the_baselines_extra_says_which_extra(tmp_path, sam_type, sam_model, module):
    (tmp_path / "config.yml").write_text(f"EXPS_PATH: {tmp_path}\n")
    result = run_without({module}, "evaluate.py", "NoBRS", "--cpu", "--checkpoint", str(tmp_path / "sam.pth"),
                         "--sam-type", sam_type, "--sam-model", sam_model, "--datasets", "GrabCut",
                         "--paths-config", str(tmp_path / "config.yml"))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.stderr.count("\n") == 1 and "pip install --no-build-isolation -e '.[baselines]'" in result.stderr, \
        result.stderr
    assert result.stderr.startswith(f"evaluate.py: error: --sam-type {sam_type} needs {module}")


PYTEST_WITHOUT = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {BLOCKED}:
            raise ModuleNotFoundError(f"No module named '{{name}}'", name=name)
sys.meta_path.insert(0, Block())
import pytest
sys.exit(pytest.main({ARGS}))
"""


def pytest_without(blocked, args, require: bool, **env) -> subprocess.CompletedProcess:
    """pytest ``args`` in a Python where the modules ``blocked`` cannot be imported, with or without
    GRACO_REQUIRE_TEST_ASSETS=1 (as .ci/run sets it)."""
    environ = {k: v for k, v in os.environ.items() if k != "GRACO_REQUIRE_TEST_ASSETS"}
    environ.update(env, OMP_NUM_THREADS="1")
    if require:
        environ["GRACO_REQUIRE_TEST_ASSETS"] = "1"
    code = PYTEST_WITHOUT.format(BLOCKED=set(blocked), ARGS=["-q", "-p", "no:cacheprovider", *args])
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env=environ)


@pytest.mark.slow  # pytest in subprocesses
@pytest.mark.parametrize("blocked, args, names", [
    ({"segment_anything"}, ["tests/test_sam_baselines.py", "-k", "point_prompts"], "segment-anything is not installed"),
    ({"sam2"}, ["tests/test_sam_baselines.py", "-k", "sam2_loop_equals"], "sam2 is not installed"),
], ids=["segment-anything", "sam2"])
def test_ci_fails_instead_of_skipping_without_a_required_package(blocked, args, names):
    """Without GRACO_REQUIRE_TEST_ASSETS the tests skip; with it (CI) the run fails and names the package."""
    skipped = pytest_without(blocked, args, require=False)
    assert skipped.returncode in (0, 5) and "skipped" in skipped.stdout, skipped.stdout[-2000:]
    failed = pytest_without(blocked, args, require=True)
    assert failed.returncode not in (0, 5), failed.stdout[-2000:]
    assert names in failed.stdout, failed.stdout[-2000:]


@pytest.mark.slow  # pytest in subprocesses
def test_ci_fails_instead_of_skipping_without_the_numpy_1_venv(tmp_path):
    args = ["tests/test_training_published.py", "-k", "numpy_1_unpickles"]
    missing = str(tmp_path / "no-venv" / "bin" / "python")
    skipped = pytest_without(set(), args, require=False, GRACO_NUMPY1_PYTHON=missing)
    assert skipped.returncode == 0 and "1 skipped" in skipped.stdout, skipped.stdout[-2000:]
    failed = pytest_without(set(), args, require=True, GRACO_NUMPY1_PYTHON=missing)
    assert failed.returncode == 1 and f"no {missing}" in failed.stdout, failed.stdout[-2000:]


@pytest.mark.slow  # pytest in a subprocess; Label Studio's setup script fails at once on a path it cannot create
def test_ci_fails_instead_of_skipping_without_label_studio(tmp_path):
    (tmp_path / "file").write_text("")
    args = ["tests/test_labelstudio_e2e.py", "-x"]
    venv = str(tmp_path / "file" / "venv")  # under a file: python3 -m venv cannot create it
    skipped = pytest_without(set(), args, require=False, GRACO_LABEL_STUDIO_VENV=venv)
    assert skipped.returncode == 0 and "skipped" in skipped.stdout, skipped.stdout[-2000:]
    failed = pytest_without(set(), args, require=True, GRACO_LABEL_STUDIO_VENV=venv)
    assert failed.returncode == 1 and "Label Studio cannot be installed" in failed.stdout, failed.stdout[-2000:]


def test_ci_run_stops_when_it_cannot_build_an_environment():
    """.ci/run fails (does not print and continue) when the Label Studio or numpy 1.x venv cannot be built, and
    checks the packages requirements.txt installs before running the tests."""
    script = (ROOT / ".ci" / "run").read_text()
    assert "will be skipped" not in script
    for package in ("segment_anything", "sam2", "label_studio_converter", "label_studio_tools"):
        assert package in script, package
