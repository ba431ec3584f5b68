"""The README's "Try it", run as typed: a step that fails as typed fails this test.

Its bash blocks run in order, in one `bash -euo pipefail` shell, in a scratch checkout (links
to this checkout's files, whose `.taskstatus/` is the test stack's, as `make dev` writes it),
against the e2e tests' local stack on free ports. One substitution, nothing else: the default
ports in the text, 8000 (REST) and 5000 (emulator), become the stack's. The first block,
`make dev`, is that stack. `curl` runs with `--fail-with-body`, so a step answered with an
HTTP error fails too.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

from tests.e2e.conftest import ROOT, LocalStack

README = ROOT / "README.md"
# Kept out of the scratch checkout: its own state, and what the README's steps write.
NOT_LINKED = {".taskstatus", ".git", "build", "photo.png", "upload.json", "marked.png"}
PREAMBLE = """\
PS4='+ README: '
curl() { command curl --fail-with-body "$@"; }
"""


def try_it_blocks(readme: str) -> list[str]:
    section = readme.split("\n## Try it\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL)


def on_ports(block: str, stack: LocalStack) -> str:
    api, emulator = urlsplit(stack.api).port, urlsplit(stack.emulator).port
    block = re.sub(r"\b(localhost|127\.0\.0\.1):8000\b", rf"\g<1>:{api}", block)
    return re.sub(r"\b(localhost|127\.0\.0\.1):5000\b", rf"\g<1>:{emulator}", block)


def scratch_checkout(path: Path, stack: LocalStack) -> Path:
    path.mkdir()
    for entry in ROOT.iterdir():
        if entry.name not in NOT_LINKED:
            (path / entry.name).symlink_to(entry)
    (path / ".taskstatus").symlink_to(stack.log.parent / ".taskstatus")
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


def test_the_readme_blocks_are_found_and_the_first_is_make_dev():
    blocks = try_it_blocks(README.read_text())
    assert len(blocks) >= 3
    assert blocks[0].split("#")[0].strip() == "make dev"


def test_the_try_it_section_runs_as_typed(local_stack, tmp_path):
    checkout = scratch_checkout(tmp_path / "checkout", local_stack)
    steps = [on_ports(block, local_stack) for block in try_it_blocks(README.read_text())[1:]]
    result = subprocess.run(
        ["bash", "-euxo", "pipefail", "-c", PREAMBLE + "\n".join(steps)],
        cwd=checkout,
        env=shell_env(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-4000:]}"
    # The last step downloaded the watermarked image.
    assert (checkout / "marked.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
