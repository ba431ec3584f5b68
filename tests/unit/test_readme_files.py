"""The files the README's commands send (`curl -d @file`) are in the repository."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Written by an earlier step of the README itself, not shipped.
WRITTEN_BY_THE_README = {"photo.png", "upload.json", "jobs.json", "key.json", "-"}


def sent_files() -> set[str]:
    readme = (ROOT / "README.md").read_text()
    named = re.findall(r"(?:-d|--data(?:-binary)?|--upload-file)\s+@(\S+)", readme)
    return set(named) - WRITTEN_BY_THE_README


def test_every_file_the_readme_sends_is_in_the_repository():
    assert sent_files(), "the README sends no file: this test no longer finds them"
    missing = sorted(name for name in sent_files() if not (ROOT / name).is_file())
    assert missing == []


def test_the_002_sample_spec_is_a_job_spec_with_a_timeline():
    spec = json.loads((ROOT / "samples/production/00_api_demo_video.spec.json").read_text())
    assert {"jobInfo", "assets", "timeline", "output"} <= set(spec) and spec["timeline"]
