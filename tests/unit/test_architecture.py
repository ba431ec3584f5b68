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


def test_chalice_package_s_policy_analyzer_reads_app_py():
    """`chalice package` analyses app.py to write the IAM policy and stops on what it cannot
    read (an annotated local such as `x: list[str] = []`): found here in a second, not minutes
    into the package build."""
    from chalice.analyzer import get_client_calls_for_app

    from tests.conftest import ROOT

    get_client_calls_for_app((ROOT / "app.py").read_text())
