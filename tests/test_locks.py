"""Every environment the project builds installs from a lock in ``locks/`` (exact versions, hashes). Each lock agrees
with its source: every package that requirements.txt, pyproject.toml or a ``locks/*.in`` names is in the lock at a
version within its range, and the Space's lock has the main lock's versions. ``bash scripts/update_locks.sh``
re-resolves them all."""
import os
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Dict, List, NamedTuple

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from helpers import ROOT

LOCKS = ROOT / "locks"


class Pin(NamedTuple):
    requirement: Requirement  # name==version, with the lock's marker
    hashes: List[str]

    @property
    def version(self) -> str:
        return next(iter(self.requirement.specifier)).version


def read_lock(path: Path) -> Dict[str, List[Pin]]:
    """{canonical name: [Pin]} of a ``uv pip compile --generate-hashes`` file (one name may have one pin per marker)."""
    pins: Dict[str, List[Pin]] = {}
    for line in path.read_text().splitlines():
        if line.startswith("    --hash="):
            pin.hashes.append(line.split("=", 1)[1].rstrip(" \\"))
        elif line and not line[0].isspace() and not line.startswith("#"):
            pin = Pin(Requirement(line.rstrip(" \\")), [])
            assert str(pin.requirement.specifier).startswith("=="), f"{path.name}: {line} is not an exact pin"
            pins.setdefault(canonicalize_name(pin.requirement.name), []).append(pin)
    return pins


def read_requirements(path: Path) -> List[Requirement]:
    lines = (re.sub(r"\s+#.*", "", line).strip() for line in path.read_text().splitlines())
    return [Requirement(line) for line in lines if line and not line.startswith("#")]


def pyproject_requirements(*extras: str) -> List[Requirement]:
    """The package's dependencies and those of ``extras`` (all extras when none is named), self-references left out."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    chosen = extras or tuple(project["optional-dependencies"])
    named = project["dependencies"] + [d for extra in chosen for d in project["optional-dependencies"][extra]]
    return [r for r in map(Requirement, named) if canonicalize_name(r.name) != canonicalize_name(project["name"])]


SOURCES = {
    "main.txt": lambda: read_requirements(ROOT / "requirements.txt") + pyproject_requirements(),
    "space.txt": lambda: pyproject_requirements("web"),
    "labelstudio.txt": lambda: read_requirements(LOCKS / "labelstudio.in"),
    "numpy1.txt": lambda: read_requirements(LOCKS / "numpy1.in"),
}


def disagreements(lock: Dict[str, List[Pin]], requirements: List[Requirement]) -> List[str]:
    """One line per source requirement the lock lacks or pins outside its range."""
    problems = []
    for requirement in requirements:
        pins = lock.get(canonicalize_name(requirement.name))
        if not pins:
            problems.append(f"{requirement} is not in the lock")
        for pin in pins or ():
            if not requirement.specifier.contains(pin.version, prereleases=True):
                problems.append(f"{requirement}: the lock has {pin.requirement}")
    return problems


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_each_lock_holds_its_sources_packages_within_their_ranges(name):
    problems = disagreements(read_lock(LOCKS / name), SOURCES[name]())
    assert not problems, f"locks/{name} disagrees with its source (run bash scripts/update_locks.sh): {problems}"


def test_the_rule_catches_a_package_added_to_requirements_without_the_lock(tmp_path):
    """requirements.txt gaining a package, or narrowing a range, while the lock stays as it is."""
    lock = read_lock(LOCKS / "main.txt")
    edited = tmp_path / "requirements.txt"
    edited.write_text((ROOT / "requirements.txt").read_text() + "rich-argparse>=1.5\ntimm>=99\n")
    assert disagreements(lock, read_requirements(edited)) == [
        "rich-argparse>=1.5 is not in the lock", f"timm>=99: the lock has {lock['timm'][0].requirement}"]


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_every_pin_has_hashes_and_the_lock_names_its_command(name):
    path = LOCKS / name
    assert "bash scripts/update_locks.sh" in path.read_text().splitlines()[1]
    lock = read_lock(path)
    assert lock and all(pin.hashes and all(h.startswith("sha256:") for h in pin.hashes)
                        for pins in lock.values() for pin in pins)


def test_the_space_lock_has_the_main_locks_versions():
    main, space = read_lock(LOCKS / "main.txt"), read_lock(LOCKS / "space.txt")
    assert set(space) <= set(main), set(space) - set(main)
    for name, pins in space.items():
        assert {str(p.requirement) for p in pins} <= {str(p.requirement) for p in main[name]}, name
    assert {"torch", "torchvision", "gradio"} <= set(space)
    not_needed = {"sam2", "segment-anything", "label-studio-converter", "pytest"}
    assert not not_needed & set(space), "the Space needs only the web app"
    gradio, = space["gradio"]
    assert f"sdk_version: {gradio.version}\n" in (ROOT / "README.md").read_text(), "README's Space front matter"


def test_label_studio_lock_keeps_sentry_sdk_below_3():
    """sentry-sdk 3.0 removed ``send_default_pii``, which label-studio 1.23.2 passes at start."""
    sentry, = read_lock(LOCKS / "labelstudio.txt")["sentry-sdk"]
    assert int(sentry.version.split(".")[0]) == 2


INSTALLERS = [ROOT / ".ci" / "run", *sorted((ROOT / "scripts").glob("*.sh"))]


@pytest.mark.parametrize("script", INSTALLERS, ids=lambda p: p.name)
def test_scripts_install_only_from_locks(script):
    """Every ``pip install`` of a script checks hashes (so it reads a lock); the exceptions are the project itself
    (editable, no dependencies) and the pinned resolver that writes the locks."""
    for line in script.read_text().replace("\\\n", " ").splitlines():
        if "pip install" in line and not line.lstrip().startswith(("#", "echo ")):
            resolver = script.name == "update_locks.sh" and '"uv==$UV_VERSION"' in line
            assert "--require-hashes" in line or "--no-deps -e" in line or resolver, f"{script.name}: {line.strip()}"


@pytest.mark.slow  # installs numpy 1.x into a fresh venv (about 10 s)
def test_a_venv_is_rebuilt_when_its_lock_changes(tmp_path):
    venv = tmp_path / "numpy1"

    def setup():
        done = subprocess.run(["bash", str(ROOT / "scripts" / "setup_numpy1.sh")], capture_output=True, text=True,
                              timeout=600, env={**os.environ, "GRACO_NUMPY1_VENV": str(venv)})
        assert done.returncode == 0, done.stderr[-2000:]
        return done

    assert "[setup] creating" in setup().stderr
    assert "[setup]" not in setup().stderr, "an up-to-date venv is kept"
    (venv / ".lock.sha256").write_text("the hash of an older lock\n")
    assert "[setup] creating" in setup().stderr
    version = subprocess.run([str(venv / "bin" / "python"), "-c", "import numpy; print(numpy.__version__)"],
                             capture_output=True, text=True).stdout.strip()
    numpy_pin, = read_lock(LOCKS / "numpy1.txt")["numpy"]
    assert version == numpy_pin.version
