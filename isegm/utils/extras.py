"""Optional stacks (pyproject.toml extras): a missing one is named in one line with the command that installs it."""
import importlib
from types import ModuleType

# sam2 ships as source only: build it against the installed torch, without its CUDA extension
BUILD_PREFIX = {"baselines": "SAM2_BUILD_CUDA=0 ", "all": "SAM2_BUILD_CUDA=0 "}
BUILD_OPTIONS = {"baselines": "--no-build-isolation ", "all": "--no-build-isolation "}


class ExtraMissing(ImportError):
    """A module of an optional extra is not installed; the message is one line naming the extra."""


def require_extra(extra: str, module: str, feature: str = "") -> ModuleType:
    """Import ``module`` of the optional ``extra``, or raise :class:`ExtraMissing`: ``<feature> needs <module>, from
    the [<extra>] extra: pip install -e '.[<extra>]'`` (see :func:`install_command`)."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        missing = getattr(error, "name", None) or module
        what = f"{feature} needs" if feature else "needs"
        raise ExtraMissing(f"{what} {missing}, from the [{extra}] extra: {install_command(extra)}") from None


def install_command(extra: str) -> str:
    """``pip install -e '.[extra]'``, with what sam2's source build needs for the extras that hold it."""
    return f"{BUILD_PREFIX.get(extra, '')}pip install {BUILD_OPTIONS.get(extra, '')}-e '.[{extra}]'"
