"""What `make dev`'s reloader watches, and when it counts a change."""

from local.reloader import WATCHED, changes, enabled, snapshot
from tests.conftest import ROOT


def test_the_app_its_libraries_and_its_stage_config_are_watched():
    watched = snapshot()
    assert ROOT / "app.py" in watched
    assert ROOT / "chalicelib" / "processors" / "demo.py" in watched
    assert ROOT / ".chalice" / "config.json" in watched
    assert not any(path.suffix == ".pyc" for path in watched)
    assert set(WATCHED) <= {ROOT / "app.py", ROOT / "chalicelib", ROOT / ".chalice" / "config.json"}


def test_a_new_file_is_a_change(tmp_path):
    before = snapshot([tmp_path])
    (tmp_path / "resize.py").write_text("x = 1\n")
    assert changes(before, snapshot([tmp_path])) == [tmp_path / "resize.py"]


def test_an_edited_file_is_a_change(tmp_path):
    source = tmp_path / "demo.py"
    source.write_text("x = 1\n")
    before = snapshot([tmp_path])
    source.write_text("x = 22\n")
    assert changes(before, snapshot([tmp_path])) == [source]


def test_a_removed_file_is_a_change(tmp_path):
    source = tmp_path / "old.py"
    source.write_text("x = 1\n")
    before = snapshot([tmp_path])
    source.unlink()
    assert changes(before, snapshot([tmp_path])) == [source]


def test_files_that_are_not_python_sources_are_not_watched_in_a_folder(tmp_path):
    before = snapshot([tmp_path])
    (tmp_path / "notes.txt").write_text("n")
    (tmp_path / "cached.pyc").write_bytes(b"\0")
    assert changes(before, snapshot([tmp_path])) == []


def test_nothing_saved_is_no_change(tmp_path):
    (tmp_path / "demo.py").write_text("x = 1\n")
    assert changes(snapshot([tmp_path]), snapshot([tmp_path])) == []


def test_reload_is_on_unless_turned_off():
    assert enabled([], {})
    assert not enabled(["--no-reload"], {})
    assert not enabled([], {"RELOAD": "0"})
    assert enabled([], {"RELOAD": "1"})
