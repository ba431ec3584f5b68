"""`make mutate` refuses a guard that names no mutant: such a guard would go untested.

A guard is a mutmut name pattern for one function. When the function moves, is renamed,
gains a decorator (mutmut leaves decorated functions alone) or its file leaves pyproject's
`only_mutate`, the pattern matches nothing and the run would report a score without it.
Each test builds a small project in a temporary directory and asks tools/mutate.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tools import mutate

GUARDED = """
def owner_matches(owner, asked):
    return owner == asked and len(owner) > 0


class Lease:
    def live(self, now):
        return self.until >= now

    @property
    def ended(self):
        return self.until < 0
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text(GUARDED)
    (tmp_path / "pkg" / "checks.py").write_text(GUARDED)
    (tmp_path / "pkg" / "elsewhere.py").write_text(GUARDED)
    (tmp_path / "pyproject.toml").write_text(
        '[tool.mutmut]\nonly_mutate = ["pkg/__init__.py", "pkg/checks.py"]\n'
    )
    return tmp_path


def test_guards_naming_functions_and_methods_that_exist_match(project: Path) -> None:
    guards = [
        "pkg.checks.x_owner_matches__*",
        "pkg.checks.xǁLeaseǁlive__*",
        "pkg.xǁLeaseǁlive__*",  # a package's own module: mutmut drops `__init__`
    ]
    assert mutate.unmatched(guards, project) == []


def test_a_guard_whose_function_was_renamed_matches_nothing(project: Path) -> None:
    guards = ["pkg.checks.x_owner_matches__*", "pkg.checks.x_owner_is__*"]
    assert mutate.unmatched(guards, project) == ["pkg.checks.x_owner_is__*"]


def test_a_guard_whose_module_moved_matches_nothing(project: Path) -> None:
    assert mutate.unmatched(["pkg.check.x_owner_matches__*"], project) == [
        "pkg.check.x_owner_matches__*"
    ]


def test_a_guard_in_a_file_outside_only_mutate_matches_nothing(project: Path) -> None:
    assert mutate.unmatched(["pkg.elsewhere.x_owner_matches__*"], project) == [
        "pkg.elsewhere.x_owner_matches__*"
    ]


def test_a_guard_on_a_decorated_method_matches_nothing(project: Path) -> None:
    # mutmut does not mutate a decorated function: the property is no guard it tests
    assert mutate.unmatched(["pkg.checks.xǁLeaseǁended__*"], project) == [
        "pkg.checks.xǁLeaseǁended__*"
    ]


def test_the_run_is_refused_before_mutmut_starts_while_a_guard_matches_nothing(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(
        mutate, "GROUPS", {"leases": ["pkg.checks.xǁLeaseǁlive__*", "pkg.checks.x_gone__*"]}
    )
    monkeypatch.setattr(mutate, "MUTMUT", str(project / "no-mutmut-here"))  # running it raises

    assert mutate.main(["leases"], project) == 2
    assert "pkg.checks.x_gone__*" in capsys.readouterr().err


def test_words_choose_guards_by_group_or_by_pattern(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        mutate, "GROUPS", {"leases": ["m.x_live__*"], "owners": ["m.x_owner__*", "m.x_mine__*"]}
    )
    assert mutate.chosen(["leases"]) == ["m.x_live__*"]
    assert mutate.chosen(["mine"]) == ["m.x_mine__*"]
    assert mutate.chosen([]) == ["m.x_live__*", "m.x_owner__*", "m.x_mine__*"]
