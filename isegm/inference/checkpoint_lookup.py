"""Where a checkpoint named on the command line is: the one rule of evaluate.py and demo.py."""
from pathlib import Path
from typing import Optional, Union

PathLike = Union[str, Path]
EXTENSIONS = (".pth", ".safetensors")


def find_checkpoint(name: PathLike, models_path: PathLike) -> Optional[Path]:
    """``name`` if it is a file; else, under ``models_path`` (INTERACTIVE_MODELS_PATH of the paths file),
    ``name`` itself, ``name`` with a checkpoint extension (.pth, .safetensors), then the first file (sorted,
    .pth before .safetensors) whose name starts with ``name`` anywhere below (relative names only).
    None when nothing matches."""
    path = Path(name)
    if path.is_file():
        return path
    base = Path(models_path)
    candidates = [base / path, *(base / f"{name}{ext}" for ext in EXTENSIONS)]
    if base.is_dir() and not path.is_absolute():
        for ext in EXTENSIONS:
            candidates += sorted(base.rglob(f"{name}*{ext}"))
    return next((c for c in candidates if c.is_file()), None)
