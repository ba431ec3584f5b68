"""Processors of `acme/*` types, for the worker Lambda (`PROCESSOR_MODULES=acme_tasks.tasks`) and
for a remote worker (`taskstatus worker --pool remote --processors acme_tasks.tasks`)."""

import time
from dataclasses import dataclass

from taskstatus_client.worker import PermanentError, processor


@processor("acme/shout")
def shout(task, ctx):
    """No input model: `ctx.input` is the input dict as submitted."""
    text = ctx.input.get("text")
    if not isinstance(text, str):
        raise PermanentError("input.text must be a string")
    return {"shouted": text.upper()}


@dataclass
class RenderInput:
    frames: int


def draw(frame: int) -> None:
    time.sleep(1)  # a second of work per frame


@processor("acme/render", input=RenderInput, timeout_seconds=600)
def render(task, ctx):
    """A long job: a progress report per frame (a cancel stops it at the next one)."""
    if ctx.input.frames < 1:
        raise PermanentError("frames must be at least 1")
    for frame in range(1, ctx.input.frames + 1):
        draw(frame)
        ctx.progress(frame, ctx.input.frames, f"frame {frame}")
    return {"frames": ctx.input.frames}
