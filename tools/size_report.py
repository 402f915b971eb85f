"""List the Python files over a line limit and the functions over a length limit.

    python tools/size_report.py [PATH ...] [--max-file-lines 450] [--max-function-lines 60]

Defaults to ``mrcnn`` and ``viewer``. A function's length runs from its ``def`` (decorators
excluded) to its last line, nested functions included; a class is not a function, its methods
are. Exit code 1 when anything is over, so CI can use it.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path


def python_files(paths) -> list[Path]:
    """The .py files under ``paths`` (files or folders), sorted."""
    found = []
    for path in map(Path, paths):
        found += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return found


def long_functions(path: Path, limit: int) -> list[tuple[str, int, int]]:
    """(qualified name, first line, length) of the functions in ``path`` longer than ``limit``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = prefix + child.name
                length = child.end_lineno - child.lineno + 1
                if length > limit:
                    found.append((name, child.lineno, length))
                visit(child, name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")
            else:
                visit(child, prefix)

    visit(tree, "")
    return found


def report(paths, max_file_lines: int, max_function_lines: int) -> list[str]:
    """One line per file or function over its limit."""
    lines = []
    for path in python_files(paths):
        count = len(path.read_text().splitlines())
        if count > max_file_lines:
            lines.append(f"{path}: {count} lines (limit {max_file_lines})")
        for name, first, length in long_functions(path, max_function_lines):
            lines.append(f"{path}:{first}: {name} is {length} lines (limit {max_function_lines})")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", default=["mrcnn", "viewer"])
    parser.add_argument("--max-file-lines", type=int, default=450)
    parser.add_argument("--max-function-lines", type=int, default=60)
    args = parser.parse_args(argv)
    lines = report(args.paths, args.max_file_lines, args.max_function_lines)
    print("\n".join(lines) if lines else "nothing over the limits")
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main())
