"""Create the emulator's resources from infra/resources.json, the template the deploy uses."""

from __future__ import annotations

from typing import Any

from infra import resources
from infra.moto_cloudformation import patch_cloudformation

LOCAL_STACK = "taskstatus-local"


def create_stack(cloudformation: Any, stack_name: str = LOCAL_STACK) -> dict[str, str]:
    """Create (or find) the local stack; return its outputs by name.

    An in-process moto (the tests', the bench's) reads the template in this process, so it
    takes what moto's CloudFormation lacks here (infra/moto_cloudformation.py); the emulator
    applies it at its start (local/emulator.py).
    """
    patch_cloudformation()
    return resources.create_stack(cloudformation, stack_name)
