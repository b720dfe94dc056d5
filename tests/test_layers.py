"""Lower layers never import the supervisor: each package is a room you can enter without it."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "fer_stream"
#: The supervisor and the command-line entry point are the top; everything else sits below them.
TOP = {PACKAGE / "supervisor", PACKAGE / "cli.py"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_no_module_below_the_supervisor_imports_it() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if any(path == top or top in path.parents for top in TOP):
            continue
        bad = sorted(m for m in imported_modules(path) if m == "fer_stream.supervisor" or m.startswith("fer_stream.supervisor."))
        if bad:
            offenders.append(f"{path.relative_to(PACKAGE.parent)} imports {', '.join(bad)}")
    assert not offenders, offenders
