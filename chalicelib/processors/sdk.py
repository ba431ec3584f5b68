"""The processor SDK: register a function for a task type and report from inside it.

from pydantic import BaseModel
from chalicelib.processors import processor, TransientError

class ResizeInput(BaseModel):  # or a dataclass: no pydantic on the worker's cold start
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

import importlib
import os
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, is_dataclass
from typing import TYPE_CHECKING, Any, Protocol

from chalicelib.errors import describe

if TYPE_CHECKING:
    from chalicelib.model import Task


class TransientError(Exception):
    """A failure worth retrying (throttling, a timeout, a dependency down)."""

    taskstatus_failure = "transient"


class PermanentError(Exception):
    """A failure no retry can fix (bad input, unsupported content)."""

    taskstatus_failure = "permanent"


def is_permanent(exc: BaseException) -> bool:
    """A PermanentError of this SDK or of `taskstatus_client.worker` (the user's package):
    told apart by the `taskstatus_failure` both carry, as the service never imports the client."""
    return getattr(exc, "taskstatus_failure", None) == "permanent"


def is_transient_failure(exc: BaseException) -> bool:
    return getattr(exc, "taskstatus_failure", None) == "transient"


class InvalidInput(Exception):
    """An input its processor refuses; `errors` as every 422 carries them."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(describe(errors))
        self.errors = errors


@dataclass(frozen=True)
class NoInput:
    """The input of a processor that takes none: `{}`."""

    __pydantic_config__ = {"extra": "forbid"}


class Reporter(Protocol):
    """What a context needs from the worker: guarded writes of progress and warnings."""

    def progress(self, current: int, total: int, message: str) -> None: ...

    def warn(self, message: str) -> None: ...

    def read_object(self, bucket: str, key: str) -> bytes: ...

    def write_object(self, bucket: str, key: str, data: bytes, content_type: str) -> None: ...


class Context:
    """Handed to a processor with its task; every report is a guarded write."""

    def __init__(self, task: Task, input: Any, reporter: Reporter) -> None:
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
    """A registered processor. Its input model is a pydantic model or a dataclass: both are
    validated by pydantic at submit; in the worker, a dataclass is built from the stored input
    without pydantic (no pydantic import on the worker's cold start), a pydantic model is
    validated again."""

    name: str
    func: ProcessorFunc
    input_model: type[Any] | None  # None: `ctx.input` is the stored dict as submitted
    timeout_seconds: int | None
    max_runtime_seconds: int
    needs_source: bool
    needs_target: bool

    def validate_input(self, data: dict[str, Any]) -> dict[str, Any]:
        """At submit: the input as it is stored; InvalidInput says what is wrong with it."""
        if self.input_model is None:
            return data
        from pydantic import TypeAdapter, ValidationError

        from chalicelib.validation import validation_errors

        adapter = TypeAdapter(self.input_model)
        try:
            parsed = adapter.validate_python(data)
        except ValidationError as exc:
            raise InvalidInput(validation_errors(exc, "input")) from None
        stored = adapter.dump_python(parsed, mode="json", exclude_unset=True)
        if is_dataclass(self.input_model):  # which fields were set is not tracked: the given
            stored = {name: value for name, value in stored.items() if name in data}
        return stored

    def read_input(self, data: dict[str, Any]) -> Any:
        """In the worker: the stored input as `ctx.input`; PermanentError if it no longer fits."""
        if self.input_model is None:
            return data
        if is_dataclass(self.input_model):
            try:
                return self.input_model(**data)
            except (TypeError, ValueError) as exc:
                raise PermanentError(f"input is not valid for {self.name}: {exc}") from None
        from pydantic import ValidationError

        try:
            return self.input_model.model_validate(data)
        except ValidationError as exc:
            raise PermanentError(f"input is not valid for {self.name}: {exc}") from None


_REGISTRY: dict[str, Processor] = {}
_ON_DEMAND: dict[str, str] = {}  # task type -> the module that registers it when imported


def load_on_demand(modules: dict[str, str]) -> None:
    """Register task types whose module is imported on first use: a worker imports only
    the processor it runs, and a read imports none."""
    _ON_DEMAND.update(modules)


def _load(name: str) -> None:
    module = _ON_DEMAND.get(name)
    if module is not None and name not in _REGISTRY:
        importlib.import_module(module)
    if name not in _REGISTRY:
        load_user_modules()


# The attribute `taskstatus_client.worker.processor` marks a function with (a dict of its
# options): the user's processors are found by it, so the service never imports the client.
PROCESSOR_ATTRIBUTE = "__taskstatus_processor__"
_USER_MODULES: dict[str, types.ModuleType] = {}


def user_module_names() -> tuple[str, ...]:
    """PROCESSOR_MODULES: comma-separated importable modules of the user's processors."""
    return tuple(os.environ.get("PROCESSOR_MODULES", "").replace(",", " ").split())


def load_user_modules() -> None:
    """Import the modules PROCESSOR_MODULES names (once each) and register the processors
    `taskstatus_client.worker.processor` marked in them. A module that does not import is an
    error naming it: a worker without its processor would fail every task of its type."""
    for module_name in user_module_names():
        if module_name in _USER_MODULES:
            continue
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ImportError(
                f"PROCESSOR_MODULES names {module_name!r}, which does not import: {exc}"
            ) from exc
        for value in list(vars(module).values()):
            options = getattr(value, PROCESSOR_ATTRIBUTE, None)
            if callable(value) and isinstance(options, dict):
                _register_marked(value, options)
        _USER_MODULES[module_name] = module


def _register_marked(func: ProcessorFunc, options: dict[str, Any]) -> None:
    name = options["name"]
    if _REGISTRY.get(name) is not None and _REGISTRY[name].func is func:
        return
    processor(
        name,
        input=options.get("input"),  # type: ignore[arg-type]
        timeout_seconds=options.get("timeout_seconds"),
        max_runtime_seconds=options.get("max_runtime_seconds", 60),
        needs_source=options.get("needs_source", False),
        needs_target=options.get("needs_target", False),
    )(func)


def processor(
    name: str,
    *,
    input: type[Any] | None = NoInput,
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
        if is_dataclass(input):
            _check_json_fields(input)
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


_JSON_TYPES = (str, int, float, bool, type(None), dict, list, Any)


def _check_json_fields(model: type[Any]) -> None:
    """A dataclass input is built in the worker from the stored JSON as it is, so its fields
    hold JSON values only; dates, enums or nested models need a pydantic model."""
    for field_name, hint in typing.get_type_hints(model).items():
        if field_name.startswith("__"):
            continue
        union = typing.get_origin(hint) in (typing.Union, types.UnionType)
        kinds = typing.get_args(hint) if union else (hint,)
        for kind in kinds:
            if (typing.get_origin(kind) or kind) not in _JSON_TYPES:
                raise TypeError(
                    f"{model.__name__}.{field_name} is {kind!r}: a dataclass input holds JSON "
                    "values (str, int, float, bool, None, list, dict); use a pydantic model"
                )


def get_processor(name: str) -> Processor | None:
    _load(name)
    return _REGISTRY.get(name)


def registered(name: str) -> bool:
    """Whether task type `name` has a processor now (nothing is imported to find out): a
    test module that registers its own processors does it once, whatever imported it first."""
    return name in _REGISTRY


def unregister(name: str) -> None:
    """Forget the processor of task type `name`: a test that registered one takes it back."""
    _REGISTRY.pop(name, None)


def registered_types() -> list[str]:
    for name in list(_ON_DEMAND):
        _load(name)
    load_user_modules()
    return sorted(_REGISTRY)
