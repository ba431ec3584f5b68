"""The data resources' stack from infra/resources.json: for `make infra` and the emulator."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

TEMPLATE = Path(__file__).resolve().parent / "resources.json"


def template_body() -> str:
    return TEMPLATE.read_text()


def create_stack(cloudformation: Any, stack_name: str) -> dict[str, str]:
    """Create (or find) the stack; return its outputs by name."""
    with contextlib.suppress(cloudformation.exceptions.AlreadyExistsException):
        cloudformation.create_stack(StackName=stack_name, TemplateBody=template_body())
    for _ in range(100):
        stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
        if stack["StackStatus"].endswith("_COMPLETE"):
            break
        time.sleep(0.1)
    return {out["OutputKey"]: out["OutputValue"] for out in stack.get("Outputs", [])}
