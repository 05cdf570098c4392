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


# ----- the interactive tools: front ends -> isegm.interactive -> isegm.inference -> isegm.model ------------------------
FRONT_ENDS = ("isegm.demo", "isegm.labelstudio", "isegm.web")
DISPLAY_AND_SERVER = ("tkinter", "gradio", "http", "starlette", "uvicorn", "socketserver")
ROOT = PACKAGE.parent


def _within(name: str, packages) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def _imports_of(folder: str) -> dict:
    """Source file (relative to the repository) -> the modules it imports, for every file under isegm/<folder>."""
    return {str(path.relative_to(ROOT)): imported_modules(path) for path in sorted((PACKAGE / folder).rglob("*.py"))}


def _offenders(folder: str, forbidden) -> dict:
    found = {path: sorted(n for n in names if _within(n, forbidden)) for path, names in _imports_of(folder).items()}
    return {path: names for path, names in found.items() if names}


def test_the_checker_sees_front_end_and_core_imports():
    """The rules below could fail: the controller imports the core, the Label Studio sessions do too."""
    assert "isegm.interactive" in imported_modules(PACKAGE / "demo" / "controller.py")
    assert _within("isegm.interactive.session", ("isegm.interactive",))
    assert "isegm.interactive" in imported_modules(PACKAGE / "labelstudio" / "sessions.py")
    assert "tkinter" in imported_modules(PACKAGE / "demo" / "tk_app.py")
    assert "isegm.interactive" in imported_modules(PACKAGE / "web" / "state.py")  # the web app is on the core too


def test_no_front_end_imports_another():
    for front_end in FRONT_ENDS:
        others = [f for f in FRONT_ENDS if f != front_end]
        assert not _offenders(front_end.split(".", 1)[1], others), front_end


def test_floors_of_the_interactive_core():
    """isegm.interactive knows no front end, no display and no server; isegm.inference knows no interactive layer;
    isegm.model knows neither."""
    assert not _offenders("interactive", FRONT_ENDS + ("isegm.cli",) + DISPLAY_AND_SERVER)
    assert not _offenders("inference", FRONT_ENDS + ("isegm.interactive", "isegm.cli"))
    assert not _offenders("model", FRONT_ENDS + ("isegm.interactive", "isegm.inference", "isegm.cli"))


def test_cli_and_tk_tool_are_imported_by_top_level_scripts_only():
    """isegm.cli is for the top-level scripts; nothing in the package or among the scripts but demo.py imports the
    Tk tool; serve.py does not lean on demo.py."""
    package = {str(p.relative_to(ROOT)): imported_modules(p) for p in sorted(PACKAGE.rglob("*.py"))}
    assert not {p: n for p, n in package.items() if p != "isegm/cli.py" and _within_any(n, ("isegm.cli",))}
    assert not {p: n for p, n in package.items()
                if not p.startswith("isegm/demo/") and _within_any(n, ("isegm.demo",))}
    scripts = {p.name: imported_modules(p) for p in sorted(ROOT.glob("*.py"))}
    assert "isegm.cli" in scripts["serve.py"] and "isegm.cli" in scripts["demo.py"] and "isegm.cli" in scripts["app.py"]
    assert not {name for name, names in scripts.items() if name != "demo.py" and _within_any(names, ("isegm.demo",))}
    assert not {name for name, names in scripts.items() if name != "demo.py" and "demo" in names}


def _within_any(names, packages) -> bool:
    return any(_within(n, packages) for n in names)


def test_importing_the_interactive_core_loads_no_display_or_server():
    """The core imports (and so loads) no display toolkit, web framework or server, nor a front end."""
    code = ("import sys, isegm.interactive, isegm.interactive.export; "
            "print('\\n'.join(sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    loaded = set(result.stdout.split())
    assert "isegm.interactive.session" in loaded  # the probe sees what it imports
    served = ("tkinter", "gradio", "http.server", "socketserver", "starlette", "uvicorn")  # http.client: torch's
    assert not {m for m in loaded if _within(m, served + FRONT_ENDS + ("isegm.cli",))}


def test_generation_knows_no_front_end():
    """Segment everything and FMG/MGE sit under the front ends: no front end, display, server or isegm.cli."""
    assert "isegm.inference.predictors" in imported_modules(PACKAGE / "generation" / "everything.py")
    assert not _offenders("generation", FRONT_ENDS + ("isegm.cli",) + DISPLAY_AND_SERVER)
