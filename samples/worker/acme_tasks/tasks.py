"""Processors of `acme/*` types, for the worker Lambda (`PROCESSOR_MODULES=acme_tasks.tasks`) and
for a remote worker (`taskstatus worker --pool remote --processors acme_tasks.tasks`)."""

import time

from taskstatus_client.worker import PermanentError, processor


@processor("acme/shout")
def shout(task, ctx):
    text = ctx.input.get("text")
    if not isinstance(text, str):
        raise PermanentError("input.text must be a string")
    return {"shouted": text.upper()}


@processor("acme/render")
def render(task, ctx):
    """A long job: one step a second, with a progress report each (a cancel stops it there)."""
    frames = int(ctx.input.get("frames", 10))
    for frame in range(1, frames + 1):
        time.sleep(1)
        ctx.progress(frame, frames, f"frame {frame}")
    return {"frames": frames}
