"""The declared layers hold: import-linter's contracts in pyproject.toml, and what they rely on.

The contracts replace the subprocess tests that imported a few modules each and looked for
TensorFlow in ``sys.modules``: one ``lint-imports`` run covers every module at once, imports
inside functions included. Their ``ignore_imports`` allow a few lazy TensorFlow imports; these
tests check that each one really is inside a function (a module-level one would load TensorFlow
with the importing module).
"""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: import-linter brings tomli
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"


def _contracts() -> list[dict]:
    return tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]["contracts"]


def _module_path(module: str) -> Path:
    path = ROOT / Path(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def _module_level_imports(path: Path) -> set[str]:
    """Modules imported by statements at module level (not inside a function) of ``path``."""
    found = set()

    def visit(node):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue  # a lazy import: runs only when the function is called
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0:
                found.add(child.module)
            visit(child)

    visit(ast.parse(path.read_text(), filename=str(path)))
    return found


# One subprocess: import-linter's output stream does not survive pytest's capture swaps
# in-process (it wrote to a closed file after other tests had run).
LINT = ("import sys; from importlinter.cli import lint_imports; "
        "sys.exit(lint_imports(config_filename=sys.argv[1], no_cache=True, no_logo=True))")


def test_lint_imports_keeps_every_contract():
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, PYTHONPATH=path)
    done = subprocess.run([sys.executable, "-c", LINT, str(PYPROJECT)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert f"Contracts: {len(_contracts())} kept, 0 broken." in done.stdout


def test_contracts_name_the_layers_of_the_issue():
    by_id = {c["id"]: c for c in _contracts()}
    assert {"PySide6", "pyqtgraph", "viewer"} <= set(by_id["mrcnn-no-qt"]["forbidden_modules"])
    assert by_id["viewer-tf-through-workers"]["source_modules"] == ["viewer"]
    assert {"viewer.datasets", "viewer.compare_data", "viewer.error_messages"} <= \
        set(by_id["viewer-qt-free"]["source_modules"])
    assert "mrcnn.runs" in by_id["mrcnn-files-tf-free"]["source_modules"]


@pytest.mark.parametrize("edge", sorted({edge for contract in _contracts()
                                         for edge in contract.get("ignore_imports", [])}))
def test_each_allowed_tensorflow_import_is_lazy(edge):
    importer, imported = (part.strip() for part in edge.split("->"))
    path = _module_path(importer)
    assert path.is_file(), f"{edge}: no module {importer}"
    source = path.read_text()
    assert f"import {imported}" in source or f"from {imported} import" in source, \
        f"{edge}: {importer} no longer imports {imported}; drop the ignore"
    assert imported not in _module_level_imports(path), \
        f"{edge}: {importer} imports {imported} at module level; it must stay inside a function"


def test_module_level_import_finder_tells_lazy_from_eager(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("import os\nfrom json import dumps\nif True:\n    import csv\n"
                      "def f():\n    import tensorflow\nclass C:\n    def g(self):\n"
                      "        from keras import ops\n")
    assert _module_level_imports(module) == {"os", "json", "csv"}


TEST_HELPERS = {path.stem for path in ROOT.joinpath("tests").rglob("*.py")}


@pytest.mark.parametrize("script", sorted(ROOT.joinpath("bench").glob("*.py")),
                         ids=lambda path: path.name)
def test_bench_does_not_import_from_tests(script):
    tree = ast.parse(script.read_text(), filename=str(script))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & (TEST_HELPERS | {"tests"}), f"{script.name} imports test code"
    assert '"tests"' not in script.read_text(), f"{script.name} puts tests/ on sys.path"
