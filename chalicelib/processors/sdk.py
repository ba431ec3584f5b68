"""The processor SDK: register a function for a task type and report from inside it.

from pydantic import BaseModel
from chalicelib.processors import processor, TransientError

class ResizeInput(BaseModel):
    width: int

@processor("image/resize", input=ResizeInput, timeout_seconds=300, needs_source=True)
def resize(task, ctx):
    data = ctx.read_source()
    ctx.progress(1, 2, "decoded")
    ...
    ctx.write_target(png_bytes, "image/png")
    return {"width": ctx.input.width}
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ConfigDict

from chalicelib.model import Schema

if TYPE_CHECKING:
    from chalicelib.model import Task


class TransientError(Exception):
    """A failure worth retrying (throttling, a timeout, a dependency down)."""


class PermanentError(Exception):
    """A failure no retry can fix (bad input, unsupported content)."""


class NoInput(Schema):
    model_config = ConfigDict(extra="forbid")


class Reporter(Protocol):
    """What a context needs from the worker: guarded writes of progress and warnings."""

    def progress(self, current: int, total: int, message: str) -> None: ...

    def warn(self, message: str) -> None: ...

    def read_object(self, bucket: str, key: str) -> bytes: ...

    def write_object(self, bucket: str, key: str, data: bytes, content_type: str) -> None: ...


class Context:
    """Handed to a processor with its task; every report is a guarded write."""

    def __init__(self, task: Task, input: BaseModel, reporter: Reporter) -> None:
        self.task = task
        self.input = input
        self._reporter = reporter
        self.warnings: list[str] = []
        self.output: dict[str, Any] = {}

    def progress(self, current: int, total: int, message: str = "") -> None:
        self._reporter.progress(current, total, message)

    def warn(self, message: str) -> None:
        """Record a non-fatal error: the task shows `error` and ends completed_with_errors."""
        self.warnings.append(message)
        self._reporter.warn(message)

    def read_source(self) -> bytes:
        if self.task.source is None:
            raise PermanentError("this task has no source object")
        return self._reporter.read_object(self.task.source.bucket, self.task.source.key)

    def write_target(self, data: bytes, content_type: str = "application/octet-stream") -> None:
        if self.task.target is None:
            raise PermanentError("this task has no target object")
        target = self.task.target
        self._reporter.write_object(target.bucket, target.key, data, content_type)
        self.output = {"s3Uri": f"s3://{target.bucket}/{target.key}", "size": len(data)}


ProcessorFunc = Callable[["Task", Context], Any]


@dataclass(frozen=True)
class Processor:
    name: str
    func: ProcessorFunc
    input_model: type[BaseModel]
    timeout_seconds: int | None
    max_runtime_seconds: int
    needs_source: bool
    needs_target: bool


_REGISTRY: dict[str, Processor] = {}


def processor(
    name: str,
    *,
    input: type[BaseModel] = NoInput,
    timeout_seconds: int | None = None,
    max_runtime_seconds: int = 60,
    needs_source: bool = False,
    needs_target: bool = False,
) -> Callable[[ProcessorFunc], ProcessorFunc]:
    """Register `func(task, ctx) -> result` as the processor of task type `name`.

    `max_runtime_seconds` is the longest one run may take with any input the input
    model accepts; a test holds it (times the worker's batch size) within the worker
    function's timeout, so accepted work always fits the deployed limits.
    """

    def register(func: ProcessorFunc) -> ProcessorFunc:
        if name in _REGISTRY:
            raise ValueError(f"processor {name!r} is already registered")
        _REGISTRY[name] = Processor(
            name=name,
            func=func,
            input_model=input,
            timeout_seconds=timeout_seconds,
            max_runtime_seconds=max_runtime_seconds,
            needs_source=needs_source,
            needs_target=needs_target,
        )
        return func

    return register


def get_processor(name: str) -> Processor | None:
    return _REGISTRY.get(name)


def registered_types() -> list[str]:
    return sorted(_REGISTRY)
