"""The package's floors: lower layers never import higher ones."""
import ast
import subprocess
import sys
from pathlib import Path

import isegm

PACKAGE = Path(isegm.__file__).resolve().parent


def imported_modules(path: Path) -> set:
    """Absolute names of the modules a source file imports (relative imports resolved), at any depth."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    package = parts[:-1]  # a module's package; an __init__ is its package
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                prefix = ".".join(base + ((node.module,) if node.module else ()))
            else:
                prefix = node.module
            names.add(prefix)
            names.update(f"{prefix}.{alias.name}" for alias in node.names)
    return names


def test_imported_modules_resolves_relative_imports():
    """The checker itself sees relative imports under their absolute names."""
    names = imported_modules(PACKAGE / "model" / "checkpoint.py")
    assert "isegm.utils.files" in names and "isegm.model.config" in names


def test_utils_does_not_import_model():
    offenders = {str(path.relative_to(PACKAGE.parent)): sorted(n for n in imported_modules(path)
                                                                if n == "isegm.model" or n.startswith("isegm.model."))
                 for path in sorted((PACKAGE / "utils").rglob("*.py"))}
    assert not {path: names for path, names in offenders.items() if names}


def fresh_import(module: str) -> set:
    """The isegm modules loaded by importing ``module`` in a fresh interpreter."""
    code = f"import sys, {module}; print('\\n'.join(m for m in sys.modules if m.startswith('isegm')))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            cwd=PACKAGE.parent)
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


def test_training_data_does_not_import_the_predictor_stack():
    loaded = fresh_import("isegm.data.training")
    assert "isegm.data.training.pascalpart" in loaded  # the probe sees what it imports
    assert not {m for m in loaded if m == "isegm.inference" or m.startswith("isegm.inference.")}
    assert not {m for m in loaded if m.startswith("isegm.generation")}
    assert not {m for m in loaded if m == "isegm.model" or m.startswith("isegm.model.")}  # data and model are apart
