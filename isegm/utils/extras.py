"""Optional stacks (pyproject.toml extras): a missing one is named in one line with the command that installs it."""
import importlib
from types import ModuleType

INSTALL_NOTES = {
    "baselines": " (sam2 builds from source: SAM2_BUILD_CUDA=0 pip install --no-build-isolation -e '.[baselines]')",
}


class ExtraMissing(ImportError):
    """A module of an optional extra is not installed; the message is one line naming the extra."""


def require_extra(extra: str, module: str, feature: str = "") -> ModuleType:
    """Import ``module`` of the optional ``extra``, or raise :class:`ExtraMissing`: ``<feature> needs <module>, from
    the [<extra>] extra: pip install -e '.[<extra>]'``."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        missing = getattr(error, "name", None) or module
        what = f"{feature} needs" if feature else "needs"
        raise ExtraMissing(f"{what} {missing}, from the [{extra}] extra: pip install -e '.[{extra}]'"
                           f"{INSTALL_NOTES.get(extra, '')}") from None
