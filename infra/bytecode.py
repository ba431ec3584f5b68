"""Compiled bytecode in the deployment package, so that a cold start does not compile.

Lambda unpacks the package into a read-only /var/task: Python cannot write the .pyc it
compiles there, so without bytecode in the zip every cold start compiles every module it
imports (app.py, chalicelib and the libraries), and the first request pays for it.
`make package` and `make deploy` add a .pyc beside every .py of Chalice's package.

The .pyc are hash-based with unchecked invalidation (PEP 552): the runtime never compares
them with the source (whose mtime the unpacked zip does not keep), and the package is
immutable once built, so they cannot go stale. They are compiled by the interpreter that
runs Chalice, whose version is the runtime Chalice deploys (`lambda_python_version`).
"""

from __future__ import annotations

import importlib.util
import py_compile
import sys
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

RUNTIME = f"python{sys.version_info.major}.{sys.version_info.minor}"
# PEP 552 flags of a .pyc: bit 0 hash-based, bit 1 check the source. Unchecked hash: 0b01.
UNCHECKED_HASH_FLAGS = 0b01


def pyc_name(source: str) -> str:
    """Where the runtime looks for the bytecode of a source file inside the package."""
    path = PurePosixPath(source)
    return str(path.parent / "__pycache__" / f"{path.stem}.{sys.implementation.cache_tag}.pyc")


def add_bytecode(package: Path, runtime: str = RUNTIME) -> int:
    """Add an unchecked-hash .pyc for every .py of a zip that lacks a current one; the number
    added. Chalice packages chalicelib's folder as it is, so the timestamp .pyc a test run
    wrote there come along: they are replaced."""
    if runtime != RUNTIME:
        raise SystemExit(f"a package for {runtime} needs that Python's bytecode, not {RUNTIME}")
    _drop_stale_bytecode(package)
    with tempfile.TemporaryDirectory() as scratch, zipfile.ZipFile(package) as archive:
        names = set(archive.namelist())
        sources = [n for n in sorted(names) if n.endswith(".py") and pyc_name(n) not in names]
        compiled = []
        for source in sources:
            target = Path(scratch) / pyc_name(source)
            try:
                py_compile.compile(
                    archive.extract(source, scratch),
                    cfile=str(target),
                    dfile=source,
                    doraise=True,
                    invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
                )
            except py_compile.PyCompileError:
                continue  # a file the runtime cannot import either (templates, py2 leftovers)
            compiled.append((target, pyc_name(source)))
        if not compiled:
            return 0
        with zipfile.ZipFile(package, "a", zipfile.ZIP_DEFLATED) as out:
            for path, name in compiled:
                out.write(path, name)
    return len(compiled)


def _drop_stale_bytecode(package: Path) -> None:
    """Rewrite the zip without each .pyc that is not the current unchecked-hash bytecode of
    its source (it is compiled again)."""
    with zipfile.ZipFile(package) as archive:
        names = set(archive.namelist())
        compiled = {pyc_name(n): n for n in names if n.endswith(".py") and pyc_name(n) in names}
        stale = {
            name
            for name, source in compiled.items()
            if _stale(name, archive.read(name), source, archive.read(source))
        }
        if not stale:
            return
        rewritten = package.with_suffix(".rewriting")
        with zipfile.ZipFile(rewritten, "w", zipfile.ZIP_DEFLATED) as out:
            for info in archive.infolist():
                if info.filename not in stale:
                    out.writestr(info, archive.read(info))
    rewritten.replace(package)


def _stale(name: str, pyc: bytes, source_name: str, source: bytes) -> str | None:
    """Why the .pyc `name` is not the current unchecked-hash bytecode of its source, or None."""
    if pyc[:4] != importlib.util.MAGIC_NUMBER:
        return f"{name} was compiled by another Python than {RUNTIME}"
    if int.from_bytes(pyc[4:8], "little") != UNCHECKED_HASH_FLAGS:
        return f"{name} is not unchecked-hash bytecode"
    if pyc[8:16] != importlib.util.source_hash(source):
        return f"{name} is not the bytecode of {source_name}"
    return None


def bytecode_problems(package: Path) -> list[str]:
    """Every importable .py of the package without current unchecked-hash bytecode."""
    found = []
    with zipfile.ZipFile(package) as archive:
        names = set(archive.namelist())
        for source in sorted(n for n in names if n.endswith(".py")):
            name = pyc_name(source)
            if name not in names:
                if _compiles(archive.read(source)):
                    found.append(f"{source} has no {name}")
                continue
            if problem := _stale(name, archive.read(name)[:16], source, archive.read(source)):
                found.append(problem)
    return found


def _compiles(source: bytes) -> bool:
    try:
        compile(source, "<package>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        return False
    return True
