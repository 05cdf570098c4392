"""The identity of the code that computes results: the package version, the PyTorch version and a SHA-256 of the
``isegm`` sources in use. A content hash, not a git commit: it is the same for an installed copy and a checkout
with local edits, and it changes only when code changes (a README-only commit keeps results resumable)."""
import hashlib
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Dict

import torch

PACKAGE_DIR = Path(__file__).resolve().parents[1]
DISTRIBUTION = "graco"


def source_digest(package_dir: Path = PACKAGE_DIR) -> str:
    """SHA-256 (hex) of every ``*.py`` file under ``package_dir``: their relative paths and their contents."""
    digest = hashlib.sha256()
    for path in sorted(package_dir.rglob("*.py")):
        digest.update(path.relative_to(package_dir).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def package_version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "not installed"


@lru_cache(maxsize=1)
def code_identity() -> Dict[str, str]:
    """{"graco": version, "torch": version, "isegm_sources": "sha256:<first 16 hex digits>"} of this process."""
    return {"graco": package_version(), "torch": torch.__version__,
            "isegm_sources": f"sha256:{source_digest()[:16]}"}


def describe(identity: Dict[str, str]) -> str:
    """One line: ``graco 0.1.0, torch 2.14.1, isegm sources sha256:...``."""
    return (f"graco {identity.get('graco')}, torch {identity.get('torch')}, isegm sources "
            f"{identity.get('isegm_sources')}")
