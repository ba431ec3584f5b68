"""Install a requirements file into the venv, saying what it does all the way through.

`make dev` and `make test` run it with the machine's Python (`python3 -m tools.install .venv
requirements-local.txt`), creating the venv first if there is none. pip is
quiet for long stretches: resolving, and above all "Installing collected packages", where it
unpacks (and would byte-compile) every package without a word for a minute or more. So this prints
what pip starts (each package collected, each download with its size, the install) and,
whenever pip has said nothing for a while, a line with the time so far and what it is doing.

`--no-compile`: pip would byte-compile every module of every package (botocore and moto are
tens of MB of source) before `make dev` can start; Python compiles what is imported, once, on
first use, and that is a fraction of it.

Everything goes to stderr: `TOKEN=$(make -s token)` on a fresh clone installs first, and its
output must still be the token alone.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
import venv as venv_module
from dataclasses import dataclass, field
from pathlib import Path

# chalice 1.34 requires pip<26.3 (its packager runs the venv's pip).
PIP = "pip>=23,<26.3"
COLLECTING = re.compile(r"^Collecting (\S+)")
DOWNLOADING = re.compile(r"^\s*Downloading (\S+) \(([^)]+)\)")
INSTALLING = re.compile(r"^Installing collected packages: (.*)")
INSTALLED = re.compile(r"^Successfully installed (.*)")
PROBLEM = re.compile(r"^(ERROR|WARNING): (.*)")
# A machine's pip configuration may name local indexes that lack a package: not news.
IGNORED_INDEX = re.compile(r"Location '.*' is ignored: it is neither a file nor a directory")
QUIET_SECONDS = 10.0


@dataclass
class Progress:
    """What pip is doing, as far as its output tells, and when it last said anything."""

    started: float = field(default_factory=time.monotonic)
    last_output: float = field(default_factory=time.monotonic)
    phase: str = "resolving"
    collected: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def say(self, line: str) -> None:
        with self.lock:
            self.last_output = time.monotonic()
            print(line, file=sys.stderr, flush=True)

    def elapsed(self) -> int:
        return int(time.monotonic() - self.started)


def translate(line: str, progress: Progress) -> str | None:
    """pip's line as we show it (and what it tells of pip's phase), or None to leave it out."""
    if match := COLLECTING.match(line):
        progress.collected += 1
        progress.phase = f"resolving ({progress.collected} packages collected)"
        return f"  collecting {match.group(1)}"
    if match := DOWNLOADING.match(line):
        progress.phase = "downloading"
        return f"  downloading {match.group(1)} ({match.group(2)})"
    if match := INSTALLING.match(line):
        count = len(match.group(1).split(", "))
        progress.phase = f"unpacking {count} packages"
        return f"  installing {count} packages..."
    if match := INSTALLED.match(line):
        return f"  installed {len(match.group(1).split())} packages"
    if (match := PROBLEM.match(line)) and not IGNORED_INDEX.search(line):
        return f"  {match.group(1)}: {match.group(2)}"
    return None


def heartbeat(progress: Progress, done: threading.Event) -> None:
    """A line whenever pip has been silent for QUIET_SECONDS, until it ends."""
    while not done.wait(1.0):
        if time.monotonic() - progress.last_output >= QUIET_SECONDS:
            progress.say(f"  ... {progress.phase}, {progress.elapsed()} s so far")


def create_venv(venv: Path, progress: Progress) -> None:
    """A venv with a pip that chalice accepts, without `ensurepip`'s byte-compiling of pip.

    `python -m venv` runs ensurepip, which installs and compiles all of pip: about 8 s of CPU,
    half a minute on a busy machine. This pip (the running Python's) installs a pip into the
    new venv instead, uncompiled; ensurepip is the fallback where this Python has no pip.
    """
    progress.say(f"creating {venv}/")
    venv_module.create(venv, with_pip=False)
    python = str(venv / "bin" / "python")
    ours = [sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-compile"]
    bootstrap = subprocess.run([*ours, PIP], capture_output=True, text=True)
    if bootstrap.returncode != 0:
        progress.say(f"  ({bootstrap.stderr.strip()[-300:]}: ensurepip instead)")
        quiet = {"check": True, "stdout": subprocess.DEVNULL}
        subprocess.run([python, "-m", "ensurepip", "--upgrade"], **quiet)
        subprocess.run([python, "-m", "pip", "install", "--quiet", PIP], **quiet)


def install(venv: Path, requirements: str, extra: list[str]) -> int:
    progress = Progress()
    if not (venv / "bin" / "python").exists():
        create_venv(venv, progress)
    progress.say(f"installing {requirements} into {venv}/ (the first time: a minute or two)")
    command = [
        str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check",
        "--progress-bar", "off", "--no-compile", "-r", requirements, *extra,
    ]  # fmt: skip
    pip = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    done = threading.Event()
    beat = threading.Thread(target=heartbeat, args=(progress, done), daemon=True)
    beat.start()
    assert pip.stdout is not None
    tail: list[str] = []
    for line in pip.stdout:
        tail = [*tail[-30:], line.rstrip()]
        shown = translate(line.rstrip(), progress)
        if shown is not None:
            progress.say(shown)
    status = pip.wait()
    done.set()
    if status != 0:
        progress.say("pip failed; its last lines:\n" + "\n".join(tail))
    else:
        progress.say(f"done in {progress.elapsed()} s")
    return status


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: python3 -m tools.install VENV REQUIREMENTS_FILE [pip install options...]")
    sys.exit(install(Path(sys.argv[1]), sys.argv[2], sys.argv[3:]))
