"""What import-linter cannot see: which module reads the settings, which wraps the handlers."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _calls(path: Path, name: str) -> list[int]:
    tree = ast.parse(path.read_text())
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", getattr(node.func, "attr", None)) == name
    ]


def test_only_the_composition_root_reads_the_settings():
    callers = {
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "chalicelib").rglob("*.py"))
        if _calls(path, "get_settings")
    }
    assert callers == {"chalicelib/bootstrap.py"}


def test_every_handler_that_is_not_a_rest_route_is_wrapped_by_invocation():
    tree = ast.parse((ROOT / "app.py").read_text())
    unwrapped = [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and any(
            # REST routes and the REST middleware run inside the edge, not `invocation`.
            isinstance(d, ast.Call) and getattr(d.func, "attr", "") not in ("route", "middleware")
            for d in node.decorator_list
        )
        and not any(getattr(d, "id", None) == "invocation" for d in node.decorator_list)
    ]
    assert unwrapped == []
