"""List Python files over MAX_FILE_LINES lines and functions over MAX_FUNCTION_LINES lines.

    python tools/size_violations.py [folder ...]     (default: mrcnn viewer)

Exit status 1 when anything is listed. A function's length runs from its ``def`` (decorators
excluded) to its last line, docstring and comments included; nested functions count on their own
and inside their parent.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

MAX_FILE_LINES = 450
MAX_FUNCTION_LINES = 60


def violations(paths) -> list[str]:
    """One line per file or function over the limits, e.g. ``viewer/x.py:12 build() 75 lines``."""
    found = []
    for path in sorted(p for folder in paths for p in Path(folder).rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        lines = len(text.splitlines())
        if lines > MAX_FILE_LINES:
            found.append(f"{path}: {lines} lines (file)")
        for node in ast.walk(ast.parse(text, str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    found.append(f"{path}:{node.lineno} {node.name}() {length} lines")
    return found


def main(argv=None) -> int:
    found = violations((argv if argv is not None else sys.argv[1:]) or ["mrcnn", "viewer"])
    print("\n".join(found) or "no file or function over the limits")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
