"""Structured JSON logs and CloudWatch metrics in Embedded Metric Format.

Every log line is one JSON object carrying the request id and the task id of
what is being handled (seeds 000 and 003 ask to log the task id with every
error). Metrics are EMF lines on stdout: CloudWatch extracts them from the logs,
so recording one costs no API call. Hand-written on purpose: Powertools'
Logger and Metrics cost about 115 ms of imports at every cold start.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
task_id_var: ContextVar[str | None] = ContextVar("task_id", default=None)

log = logging.getLogger("taskstatus_svc.batches")

_RESERVED = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    converter = time.gmtime

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": f"{self.formatTime(record, '%Y-%m-%dT%H:%M:%S')}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": request_id_var.get(),
            "task_id": task_id_var.get(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _RESERVED})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stdout is when a line is logged (tests and tools swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout
        super().emit(record)


def configure_logging() -> None:
    logger = logging.getLogger("taskstatus_svc")
    if any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        return
    handler = StdoutHandler()
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.setLevel(os.environ.get("LOG_LEVEL", "INFO"))
    logger.propagate = False


H = TypeVar("H", bound=Callable[..., Any])


def invocation(handler: H) -> H:
    """Wraps every handler that is not a REST route: JSON logs, each line with the request id.

    The id is the Lambda request id, from the `context` argument (the Status Lambda) or
    the event's own context (Chalice's event handlers).
    """

    @functools.wraps(handler)
    def wrapper(event: Any, *args: Any) -> Any:
        configure_logging()
        context = args[0] if args else getattr(event, "context", None)
        token = request_id_var.set(getattr(context, "aws_request_id", None))
        try:
            return handler(event, *args)
        finally:
            request_id_var.reset(token)

    return wrapper  # type: ignore[return-value]


def sqs_partial(
    records: Iterable[dict[str, Any]], handle_one: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """SQS's partial batch response (ReportBatchItemFailures), written once for every queue.

    Each message is handled on its own: one whose `handle_one` returns False or raises is
    reported by its id and handed over again by SQS (a raise is logged here); the others are
    deleted. One failure never sends the whole batch back. Powertools'
    `process_partial_response` without its import (cold start).
    """
    failures = []
    for record in records:
        try:
            done = handle_one(record)
        except Exception:
            log.exception("unexpected failure on message %s", record.get("messageId"))
            done = False
        if not done:
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}


@contextmanager
def task_context(task_id: str | None) -> Iterator[None]:
    token = task_id_var.set(task_id)
    try:
        yield
    finally:
        task_id_var.reset(token)


_metrics_stream: Any = None


def set_metrics_stream(stream: Any) -> None:
    """Send EMF records elsewhere than stdout (benchmarks silence them)."""
    global _metrics_stream
    _metrics_stream = stream


def emit_metric(name: str, value: float, unit: str = "Count", **dimensions: str) -> None:
    """Write one EMF record; CloudWatch turns it into a metric."""
    namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "taskstatus")
    record: dict[str, Any] = {
        "_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": namespace,
                    "Dimensions": [sorted(dimensions)],
                    "Metrics": [{"Name": name, "Unit": unit}],
                }
            ],
        },
        name: value,
        **dimensions,
    }
    if request_id_var.get():
        record["request_id"] = request_id_var.get()
    if task_id_var.get():
        record["task_id"] = task_id_var.get()
    (_metrics_stream or sys.stdout).write(json.dumps(record) + "\n")
