"""The deployment package ships compiled bytecode, so Lambda's cold start does not compile.

`make package`'s own step builds the real package here (Chalice downloads Lambda's wheels:
about 10 s); the checker is proven on small zips.
"""

from __future__ import annotations

import importlib.util
import py_compile
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from infra import package as make_package
from infra.bytecode import add_bytecode, bytecode_problems, pyc_name

pytestmark = pytest.mark.slow  # builds the deployment package (`make unit-fast` leaves it out)

MODULES = ["app.py", "chalicelib/edge/auth.py", "pydantic/main.py", "jwt/api_jws.py"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("package") / "package"
    make_package.main("prod", str(out))
    return out / "deployment.zip"


@pytest.mark.parametrize("module", MODULES)
def test_make_package_ships_unchecked_hash_bytecode_of_each_module(built, module):
    with zipfile.ZipFile(built) as archive:
        header = archive.read(pyc_name(module))[:16]
        source = archive.read(module)
    assert header[:4] == importlib.util.MAGIC_NUMBER
    assert int.from_bytes(header[4:8], "little") == 0b01  # hash-based, never checked
    assert header[8:16] == importlib.util.source_hash(source)


def test_every_module_of_the_package_has_its_bytecode(built):
    assert bytecode_problems(built) == []


def test_the_unpacked_package_runs_from_its_bytecode_in_a_read_only_folder(built, tmp_path):
    code = tmp_path / "task"
    with zipfile.ZipFile(built) as archive:
        archive.extractall(code)
    # Unchecked bytecode is used as it is: a source edited after packaging is never compiled.
    (code / "chalicelib" / "records.py").write_text("raise SystemExit('compiled from source')\n")
    subprocess.run(["chmod", "-R", "a-w", str(code)], check=True)
    try:
        result = subprocess.run(
            [sys.executable, "-c", "import chalicelib.records, pydantic; print('ok')"],
            cwd=code,
            env={"PYTHONPATH": str(code), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
        )
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(code)], check=True)
    assert (result.returncode, result.stdout.strip()) == (0, "ok"), result.stderr


def _zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def test_add_bytecode_compiles_every_module_of_a_zip(tmp_path):
    package = _zip(tmp_path / "p.zip", {"app.py": b"x = 1\n", "lib/mod.py": b"y = 2\n"})
    assert add_bytecode(package) == 2
    assert bytecode_problems(package) == []


def test_a_module_without_bytecode_is_reported(tmp_path):
    package = _zip(tmp_path / "p.zip", {"app.py": b"x = 1\n"})
    assert bytecode_problems(package) == [f"app.py has no {pyc_name('app.py')}"]


def test_timestamp_bytecode_is_reported(tmp_path):
    (tmp_path / "app.py").write_text("x = 1\n")
    py_compile.compile(str(tmp_path / "app.py"), cfile=str(tmp_path / "app.pyc"))
    package = _zip(
        tmp_path / "p.zip",
        {"app.py": b"x = 1\n", pyc_name("app.py"): (tmp_path / "app.pyc").read_bytes()},
    )
    assert bytecode_problems(package) == [f"{pyc_name('app.py')} is not unchecked-hash bytecode"]


def test_bytecode_of_another_source_is_reported(tmp_path):
    package = _zip(tmp_path / "p.zip", {"app.py": b"x = 1\n"})
    add_bytecode(package)
    with zipfile.ZipFile(package) as archive:
        pyc = archive.read(pyc_name("app.py"))
    stale = _zip(tmp_path / "s.zip", {"app.py": b"x = 2\n", pyc_name("app.py"): pyc})
    assert bytecode_problems(stale) == [f"{pyc_name('app.py')} is not the bytecode of app.py"]


def test_bytecode_for_another_runtime_is_refused(tmp_path):
    package = _zip(tmp_path / "p.zip", {"app.py": b"x = 1\n"})
    with pytest.raises(SystemExit, match=r"python3\.12"):
        add_bytecode(package, "python3.12")


def test_timestamp_bytecode_a_test_run_left_in_the_tree_is_replaced(tmp_path):
    # Chalice packages chalicelib's folder as it is, __pycache__ included.
    (tmp_path / "mod.py").write_text("x = 1\n")
    py_compile.compile(str(tmp_path / "mod.py"), cfile=str(tmp_path / "mod.pyc"))
    package = _zip(
        tmp_path / "p.zip",
        {
            "chalicelib/mod.py": b"x = 1\n",
            pyc_name("chalicelib/mod.py"): (tmp_path / "mod.pyc").read_bytes(),
            "app.py": b"y = 2\n",
        },
    )
    assert add_bytecode(package) == 2
    assert bytecode_problems(package) == []
    with zipfile.ZipFile(package) as archive:
        assert archive.namelist().count(pyc_name("chalicelib/mod.py")) == 1


def test_bytecode_of_an_older_source_is_replaced(tmp_path):
    package = _zip(tmp_path / "p.zip", {"app.py": b"x = 1\n"})
    add_bytecode(package)
    with zipfile.ZipFile(package) as archive:
        pyc = archive.read(pyc_name("app.py"))
    edited = _zip(tmp_path / "e.zip", {"app.py": b"x = 2\n", pyc_name("app.py"): pyc})
    assert add_bytecode(edited) == 1
    assert bytecode_problems(edited) == []
