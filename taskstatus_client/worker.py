"""The processor SDK for processors in your own package: the same code runs on the worker
Lambda (named in `PROCESSOR_MODULES`) and on a remote worker (`taskstatus worker`).

    from dataclasses import dataclass
    from taskstatus_client.worker import PermanentError, TransientError, processor

    @dataclass
    class ResizeInput:
        width: int

    @processor("image/resize", input=ResizeInput, timeout_seconds=300)
    def resize(task, ctx):
        ctx.progress(1, 2, "decoded")
        if ctx.input.width > 10000:
            raise PermanentError("too wide")
        return {"width": ctx.input.width}

Without `input=`, `ctx.input` is the stored input dict as submitted. The return value is the
task's result; `ctx.warn(message)` ends it `completed_with_errors`; a PermanentError fails it
at once, any other exception (a TransientError says so explicitly) is retried up to
MAX_ATTEMPTS.

This module imports nothing of the server (no chalicelib, no boto3): the decorator only marks
the function (`PROCESSOR_ATTRIBUTE`), and whoever loads the module (the service's worker, or a
remote worker) finds the marked functions in it. The exceptions carry `taskstatus_failure`,
which is how the service tells them apart without importing this package.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, TypeVar

# The attribute the decorator sets on a processor function: a dict of its options. The
# service's loader (chalicelib/processors/sdk.py) reads the same name.
PROCESSOR_ATTRIBUTE = "__taskstatus_processor__"
F = TypeVar("F", bound=Callable[..., Any])


class TransientError(Exception):
    """A failure worth retrying (throttling, a timeout, a dependency down)."""

    taskstatus_failure = "transient"


class PermanentError(Exception):
    """A failure no retry can fix (bad input, unsupported content): the task fails at once."""

    taskstatus_failure = "permanent"


@dataclass(frozen=True)
class ProcessorSpec:
    """A marked processor as a loader sees it."""

    name: str
    func: Callable[..., Any]
    input: type[Any] | None
    timeout_seconds: int | None
    max_runtime_seconds: int
    needs_source: bool
    needs_target: bool


def processor(
    name: str,
    *,
    input: type[Any] | None = None,
    timeout_seconds: int | None = None,
    max_runtime_seconds: int = 60,
    needs_source: bool = False,
    needs_target: bool = False,
) -> Callable[[F], F]:
    """Mark `func(task, ctx) -> result` as the processor of task type `name`.

    `input` is a dataclass or a pydantic model the stored input is built into (`ctx.input`);
    without it `ctx.input` is the input dict as submitted. The function is returned unchanged,
    so it can be called directly in the package's own tests.
    """
    if not isinstance(name, str) or "/" not in name:
        raise ValueError(f"a processor's task type looks like 'group/name', not {name!r}")

    def mark(func: F) -> F:
        setattr(
            func,
            PROCESSOR_ATTRIBUTE,
            {
                "name": name,
                "input": input,
                "timeout_seconds": timeout_seconds,
                "max_runtime_seconds": max_runtime_seconds,
                "needs_source": needs_source,
                "needs_target": needs_target,
            },
        )
        return func

    return mark


def processors_in(module: ModuleType) -> list[ProcessorSpec]:
    """The processors a module defines (marked functions), in the order of its names."""
    found = []
    for value in vars(module).values():
        options = getattr(value, PROCESSOR_ATTRIBUTE, None)
        if callable(value) and isinstance(options, dict):
            found.append(ProcessorSpec(func=value, **options))
    return found


def load_processors(module_names: Iterable[str]) -> dict[str, ProcessorSpec]:
    """Import the named modules and collect their processors by task type.

    A module that does not import, or two processors for one type, is an error that names
    the module: a worker that would silently lack a processor fails every task of its type.
    """
    by_type: dict[str, ProcessorSpec] = {}
    for module_name in module_names:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ImportError(f"processor module {module_name!r} does not import: {exc}") from exc
        for spec in processors_in(module):
            other = by_type.get(spec.name)
            if other is not None and other.func is not spec.func:
                raise ValueError(f"two processors for {spec.name!r} (in {module_name!r})")
            by_type[spec.name] = spec
    return by_type
