"""The README, run as typed: every bash block of every section a user runs.

A step that fails as typed fails this test. The blocks run in a scratch checkout (links to
this checkout's files, whose `.taskstatus/` is the stack's, as `make dev` writes it), against
local stacks on free ports:
- "Try it" and every later block that needs nothing but `make dev` run in order in one
  `bash -euo pipefail` shell, as a reader's second shell would (`$TOKEN` and `$JOB` carry on),
  against the e2e tests' stack: the first block, `make dev`, is that stack.
- A block that starts with `SETTING=... make dev` runs in a shell of its own, against a stack
  started with those settings.
One substitution, nothing else: the default ports in the text, 8000 (REST) and 5000
(emulator), become the stack's. A `curl` whose answer the README shows with a status (`# 409
{...}`, `# HTTP/1.1 204 No Content`, `... # 404`) must get that status; every other `curl`
fails on any HTTP error (`--fail-with-body`).

Not run, each for the reason in NOT_RUN: the sections that deploy to AWS or install packages
into the reader's own Python.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from local.launcher import local_stack as launch
from tests.e2e.conftest import ROOT, LocalStack

README = ROOT / "README.md"
# Kept out of the scratch checkout: its own state, and what the README's steps write.
NOT_LINKED = {
    ".taskstatus", ".git", "build", "photo.png", "upload.json", "marked.png", "stamped.png",
    "jobs.json", "key.json", "out.json",
}  # fmt: skip
# Sections whose bash blocks are not run, and why.
NOT_RUN = {
    "Deploying": "deploys to an AWS account; make deploy-rehearsal runs this path on the emulator",
    "Python client and CLI": (
        "`pip install` into the reader's own Python; tests/unit/test_client_wheel.py installs "
        "the client in a fresh venv and uses it"
    ),
}
PREAMBLE = """\
PS4='+ README: '
curl() { command curl --fail-with-body "$@"; }
curl_answers() {  # the README shows this answer's status: it must be that one
  local want=$1 out; shift
  out=$(command curl "$@" -w '\\n%{http_code}')
  printf '%s\\n' "${out%$'\\n'*}"
  if [ "${out##*$'\\n'}" != "$want" ]; then
    echo "README: expected HTTP $want, got ${out##*$'\\n'}" >&2
    return 1
  fi
}
"""
MAKE_DEV = re.compile(r"^((?:[A-Z_]+=\S+\s+)*)make dev\b")
SHOWN_STATUS = re.compile(r"^#\s*(?:HTTP/1\.[01] )?([1-5]\d\d)\b")
INLINE_STATUS = re.compile(r"\s#\s*([1-5]\d\d)\b[^'\"]*$")


@dataclass(frozen=True)
class Block:
    section: str
    text: str
    settings: dict[str, str] | None  # a stack of its own with these settings; None: the shared


def sections(readme: str) -> list[tuple[str, str]]:
    """(title, text) of each `## ` section, its `### ` subsections included, in order."""
    parts = re.split(r"^## (.+)$", readme, flags=re.MULTILINE)
    return list(zip(parts[1::2], parts[2::2], strict=True))


def bash_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL)


def runnable_blocks(readme: str) -> list[Block]:
    """Every bash block of the sections a user runs; a `make dev` line starts its stack."""
    blocks = []
    for title, text in sections(readme):
        if title in NOT_RUN:
            continue
        for block in bash_blocks(text):
            first, _, rest = block.partition("\n")
            starts = MAKE_DEV.match(first.split("#")[0].strip())
            if starts is None:
                blocks.append(Block(title, block, None))
            elif starts.group(1):
                # as the shell reads them: `TYPE_CONCURRENCY='demo/*=2'` sets demo/*=2
                settings = dict(pair.split("=", 1) for pair in shlex.split(starts.group(1)))
                blocks.append(Block(title, rest, settings))
            # a plain `make dev` is the shared stack itself
    return blocks


def command_end(lines: list[str], start: int) -> int:
    """The last line of the shell command starting at `start`: continued lines, open quotes."""
    end, quotes = start, lines[start].count("'")
    while end + 1 < len(lines) and (lines[end].endswith("\\") or quotes % 2):
        end += 1
        quotes += lines[end].count("'")
    return end


def with_status_checks(block: str) -> str:
    """Each `curl` the README shows an answer status for checks that status."""
    lines = block.split("\n")
    for start, line in enumerate(lines):
        if not line.startswith("curl "):
            continue
        end = command_end(lines, start)
        after = lines[end + 1] if end + 1 < len(lines) else ""
        shown = INLINE_STATUS.search(lines[end]) or SHOWN_STATUS.match(after)
        if shown:
            lines[start] = f"curl_answers {shown.group(1)} {line[len('curl ') :]}"
    return "\n".join(lines)


def on_ports(block: str, api: str, emulator: str) -> str:
    api_port, emulator_port = urlsplit(api).port, urlsplit(emulator).port
    block = re.sub(r"\b(localhost|127\.0\.0\.1):8000\b", rf"\g<1>:{api_port}", block)
    return re.sub(r"\b(localhost|127\.0\.0\.1):5000\b", rf"\g<1>:{emulator_port}", block)


def scratch_checkout(path: Path, state: Path) -> Path:
    path.mkdir()
    for entry in ROOT.iterdir():
        if entry.name not in NOT_LINKED:
            (path / entry.name).symlink_to(entry)
    (path / ".taskstatus").symlink_to(state)
    return path


def shell_env() -> dict[str, str]:
    """A new shell's environment: nothing of the test session's AWS, app or make settings."""
    from tests.conftest import UNIT_ENV

    return {
        name: value
        for name, value in os.environ.items()
        if name not in UNIT_ENV
        and not name.startswith(("AWS_", "TASKSTATUS_", "MAKE", "PYTEST_"))
        and name not in {"MFLAGS", "TOKEN", "JOB"}
    }


def run_as_typed(blocks: list[Block], checkout: Path, api: str, emulator: str) -> None:
    steps = [on_ports(with_status_checks(block.text), api, emulator) for block in blocks]
    result = subprocess.run(
        ["bash", "-euxo", "pipefail", "-c", PREAMBLE + "\n".join(steps)],
        cwd=checkout,
        env=shell_env(),
        capture_output=True,
        text=True,
        timeout=420,
    )
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-5000:]}"


def test_the_first_block_is_make_dev_and_try_it_has_its_steps():
    try_it = dict(sections(README.read_text()))["Try it"]
    blocks = bash_blocks(try_it)
    assert len(blocks) >= 3
    assert blocks[0].split("#")[0].strip() == "make dev"


def test_the_sections_left_out_are_named_and_still_there():
    titles = {title for title, _ in sections(README.read_text())}
    assert set(NOT_RUN) <= titles, "a section left out was renamed: update NOT_RUN"


def test_a_shown_status_is_checked_and_other_curls_fail_on_errors():
    block = "\n".join(
        [
            "curl -s -X POST x/jobs \\",
            '  -d \'{"a":',
            " 1}'",
            "# 409 {...}",
            "curl -s y  # 404",
            "curl z",
        ]
    )
    checked = with_status_checks(block).split("\n")
    assert checked[0].startswith("curl_answers 409 -s")
    assert checked[4].startswith("curl_answers 404 -s y")
    assert checked[5] == "curl z"


def test_every_section_a_user_runs_runs_as_typed(local_stack: LocalStack, tmp_path: Path):
    checkout = scratch_checkout(tmp_path / "checkout", local_stack.log.parent / ".taskstatus")
    shared = [block for block in runnable_blocks(README.read_text()) if block.settings is None]
    assert {"Try it", "History, retry and redrive", "Credentials", "Webhooks"} <= {
        block.section for block in shared
    }
    run_as_typed(shared, checkout, local_stack.api, local_stack.emulator)
    # Try it's last step downloaded the watermarked image.
    assert (checkout / "marked.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


OWN_STACK_BLOCKS = [block for block in runnable_blocks(README.read_text()) if block.settings]


@pytest.mark.own_stack
@pytest.mark.parametrize(
    "block", OWN_STACK_BLOCKS, ids=[" ".join(b.settings or {}) for b in OWN_STACK_BLOCKS]
)
def test_a_block_with_its_own_make_dev_settings_runs_as_typed(block: Block, tmp_path: Path):
    state = tmp_path / "stack" / ".taskstatus"
    state.parent.mkdir()
    with launch(state.parent / "dev.log", data_dir=state, env=block.settings) as stack:
        checkout = scratch_checkout(tmp_path / "checkout", state)
        run_as_typed([block], checkout, stack.api, stack.emulator)
