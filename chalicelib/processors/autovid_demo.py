"""`demo/auto-vid`: a stand-in for an auto-vid renderer, so `make dev` runs seed 002's job specs.

It checks the spec's shape, reports one progress step per timeline event and
renders nothing. The local stage points `AUTOVID_TASK_TYPE` at it; a real
deployment registers its own processor for `video/auto-vid` (see the README).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import ConfigDict, Field

from chalicelib.processors.sdk import Context, processor
from chalicelib.validation import Schema

if TYPE_CHECKING:
    from chalicelib.model import Task


class AutoVidOutput(Schema):
    model_config = ConfigDict(extra="allow")

    filename: str = Field(min_length=1, max_length=255)


class AutoVidSpec(Schema):
    """The parts of an auto-vid job spec this stand-in reads; the rest is kept as given."""

    model_config = ConfigDict(extra="allow")

    assets: dict[str, Any]
    # auto-vid's `timeline: List[TimelineEvent]` may be empty: its "Background Music Only"
    # example sends `"timeline": []`.
    timeline: list[dict[str, Any]] = Field(max_length=1000)
    output: AutoVidOutput


@processor("demo/auto-vid", input=AutoVidSpec)
def render(task: Task, ctx: Context) -> dict[str, Any]:
    spec: AutoVidSpec = ctx.input  # type: ignore[assignment]
    total = len(spec.timeline)
    for step, event in enumerate(spec.timeline, start=1):
        ctx.progress(step, total, f"timeline event {step} of {total} ({event.get('type', '?')})")
    return {"events": total, "filename": spec.output.filename}
