"""Experiment folders: numbering, lookup, logging and the record of a run; data paths from the paths config."""
import json
import logging
import re
import sys
from pathlib import Path
from typing import Any, Mapping, Optional

import yaml
from easydict import EasyDict

logger = logging.getLogger(__name__)


class ExperimentError(ValueError):
    """A training configuration or experiment folder problem, reported in one line."""


def resolve_data_path(value: str, paths: Mapping[str, str], what: str) -> Path:
    """``value`` is a key of the paths config (``PASCALPART_PATH``) or a folder/file."""
    if re.fullmatch(r"[A-Za-z0-9_]+_PATH", str(value)):
        if value not in paths:
            raise ExperimentError(f"{what}: the paths config has no {value}")
        value = paths[value]
    return Path(value)


def new_experiment_dir(exps_root: Path, config_name: str, exp_name: str) -> Path:
    """``<exps_root>/<config_name>/<NNN>[_<exp_name>]`` with the next free number."""
    parent = exps_root / config_name
    parent.mkdir(parents=True, exist_ok=True)
    numbers = [int(m.group(1)) for p in parent.iterdir() if (m := re.match(r"(\d{3})", p.name))]
    name = f"{max(numbers, default=-1) + 1:03d}" + (f"_{exp_name}" if exp_name else "")
    path = parent / name
    path.mkdir()
    return path


def find_experiment_dir(exps_root: Path, config_name: str, prefix: str) -> Path:
    """The one experiment folder under ``<exps_root>/<config_name>`` whose name starts with ``prefix``."""
    parent = exps_root / config_name
    matches = sorted(p for p in parent.glob(f"{prefix}*") if p.is_dir()) if parent.is_dir() else []
    if len(matches) != 1:
        found = ", ".join(p.name for p in matches) or "none"
        raise ExperimentError(f"--resume-exp {prefix}: expected one experiment in {parent} starting with it, "
                              f"found {found}")
    return matches[0]


def setup_logging(exp_dir: Optional[Path], is_main: bool) -> None:
    """INFO to the console and ``<exp_dir>/train.log`` on rank 0; warnings only on the other ranks."""
    root = logging.getLogger()
    root.setLevel(logging.INFO if is_main else logging.WARNING)
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    handlers = [logging.StreamHandler(sys.stderr)]
    if exp_dir is not None and is_main:
        handlers.append(logging.FileHandler(exp_dir / "train.log"))
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)


def record_run(exp_dir: Path, config: EasyDict, options: Mapping[str, Any]) -> None:
    """Keep the configuration and the run's command-line options with the experiment."""
    (exp_dir / "config.yaml").write_text(yaml.safe_dump(json.loads(json.dumps(config)), sort_keys=False))
    (exp_dir / "args.json").write_text(json.dumps(dict(options), indent=2, default=str))
