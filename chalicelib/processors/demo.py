"""`demo/sleep`: sleeps in steps and reports progress; fails on request."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chalicelib.errors import FieldError
from chalicelib.processors.sdk import Context, PermanentError, processor

if TYPE_CHECKING:
    from chalicelib.model import Task


@dataclass(frozen=True)
class SleepInput:
    """A dataclass, not a pydantic model: the worker builds it without importing pydantic."""

    __pydantic_config__ = {"extra": "forbid"}

    seconds: float = 1  # total time to sleep, 0 to 100
    steps: int = 1  # progress reports, one per step, 1 to 1000
    fail_at: int | None = None  # fail permanently at this step (1 or more)

    def __post_init__(self) -> None:
        if not 0 <= self.seconds <= 100:
            raise FieldError("seconds", "must be between 0 and 100")
        if not 1 <= self.steps <= 1000:
            raise FieldError("steps", "must be between 1 and 1000")
        if self.fail_at is not None and self.fail_at < 1:
            raise FieldError("fail_at", "must be 1 or more")


@processor("demo/sleep", input=SleepInput, max_runtime_seconds=105)
def sleep(task: Task, ctx: Context) -> dict[str, Any]:
    params: SleepInput = ctx.input  # type: ignore[assignment]
    pause = params.seconds / params.steps
    for step in range(1, params.steps + 1):
        if pause:
            time.sleep(pause)
        if params.fail_at == step:
            raise PermanentError(f"demo/sleep failed at step {step} as requested")
        ctx.progress(step, params.steps, f"step {step} of {params.steps}")
    return {"slept": params.seconds, "steps": params.steps}
