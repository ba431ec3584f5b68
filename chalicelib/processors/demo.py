"""`demo/sleep`: sleeps in steps and reports progress; fails on request."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from pydantic import ConfigDict, Field

from chalicelib.model import Schema
from chalicelib.processors.sdk import Context, PermanentError, processor

if TYPE_CHECKING:
    from chalicelib.model import Task


class SleepInput(Schema):
    model_config = ConfigDict(extra="forbid")

    seconds: float = Field(default=1, ge=0, le=100, description="total time to sleep")
    steps: int = Field(default=1, ge=1, le=1000, description="progress reports, one per step")
    fail_at: int | None = Field(default=None, ge=1, description="fail permanently at this step")


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
