"""Create the emulator's resources from infra/resources.json, the template the deploy uses."""

from __future__ import annotations

from typing import Any

from infra import resources

LOCAL_STACK = "taskstatus-local"


def create_stack(cloudformation: Any, stack_name: str = LOCAL_STACK) -> dict[str, str]:
    """Create (or find) the local stack; return its outputs by name."""
    return resources.create_stack(cloudformation, stack_name)
