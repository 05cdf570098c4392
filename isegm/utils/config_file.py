"""Reading YAML configuration files: one reader for every entry point, with one-line errors that name the file.

A malformed file is reported with the file and the line of the error; a value of the wrong type with the file,
the key, the expected type and the value found (e.g. ``TRAIN.epochs: expected an integer, got 'ten'``).
"""
import collections.abc
import re
import typing
from pathlib import Path
from typing import Any, Mapping, Union

import yaml
from easydict import EasyDict

PathLike = Union[str, Path]
SEQUENCES = (tuple, list, collections.abc.Sequence)


class ConfigError(ValueError):
    """A configuration file cannot be used; the message is one line naming the file."""


def read_yaml(path: PathLike) -> EasyDict:
    """The top-level mapping of a YAML file (an empty file reads as ``{}``)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        where = f"{path}, line {mark.line + 1}" if mark is not None else str(path)
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"{where}: not valid YAML ({problem})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping (key: value lines) at the top level, got {_describe(data)}")
    return EasyDict(data)


def read_paths_config(path: PathLike, required: bool = True) -> EasyDict:
    """The paths file (``config.yml``): every ``*_PATH`` entry and ``CLIP_WEIGHTS`` must be a path (a string).
    With ``required=False`` a missing file reads as ``{}``."""
    if not required and not Path(path).is_file():
        return EasyDict()
    paths = read_yaml(path)
    for key, value in paths.items():
        if (key.endswith("_PATH") or key == "CLIP_WEIGHTS") and not isinstance(value, str):
            raise ConfigError(f"{path}: {key}: expected a path (a string), got {_describe(value)}")
    return paths


def check_types(section: Mapping[str, Any], types: Mapping[str, Any], where: str, source: PathLike) -> dict:
    """Check the values of ``section`` whose keys are in ``types`` (type hints: int, float, bool, str,
    ``Tuple[int, ...]``, ``Sequence[Tuple[int, int]]``, ...) and return a copy. ``where`` names the section
    (``TRAIN``). A number written ``5e-4`` (which YAML 1.1 reads as a string) is accepted where a float is
    expected and returned as a float."""
    if not isinstance(section, Mapping):
        raise ConfigError(f"{source}: {where}: expected a mapping, got {_describe(section)}")
    checked = dict(section)
    for key, value in section.items():
        if key not in types:
            continue
        if types[key] is float and isinstance(value, str) and _is_number(value):
            checked[key] = value = float(value)
        if not _matches(value, types[key]):
            raise ConfigError(f"{source}: {where}.{key}: expected {_type_name(types[key])}, got {_describe(value)}")
    return checked


def _is_number(text: str) -> bool:
    return re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", text.strip()) is not None


def dataclass_types(cls: type) -> dict:
    """The field types of a dataclass, for :func:`check_types`."""
    return typing.get_type_hints(cls)


def _matches(value: Any, expected: Any) -> bool:
    origin, args = typing.get_origin(expected), typing.get_args(expected)
    if expected is Any:
        return True
    if origin is Union:
        return any(_matches(value, option) for option in args)
    if expected is type(None):
        return value is None
    if expected is bool:
        return isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is str:
        return isinstance(value, str)
    if origin in SEQUENCES:
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(_matches(v, a) for v, a in zip(value, args))
        return all(_matches(v, args[0]) for v in value) if args else True
    return isinstance(value, expected) if isinstance(expected, type) else True


def _type_name(expected: Any) -> str:
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    if expected in names:
        return names[expected]
    origin, args = typing.get_origin(expected), typing.get_args(expected)
    if origin is Union:
        return " or ".join(_type_name(a) for a in args if a is not type(None))
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(set(args)) == 1:
            return f"a list of {len(args)} {_plural(args[0])}"
        return f"a list of {len(args)} ({', '.join(_type_name(a) for a in args)})"
    if origin in SEQUENCES:
        return f"a list of {_plural(args[0])}" if args else "a list"
    return getattr(expected, "__name__", str(expected))


def _plural(expected: Any) -> str:
    names = {int: "integers", float: "numbers", bool: "booleans", str: "strings"}
    return names.get(expected, f"({_type_name(expected)})")


def _describe(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return f"{type(value).__name__} {value!r}"[:80]
    return repr(value)[:80]
