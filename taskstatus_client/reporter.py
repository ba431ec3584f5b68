"""The producer SDK: code that runs a task anywhere reports it to taskstatus.

    from taskstatus_client import Reporter

    reporter = Reporter()                       # TASKSTATUS_URL, TASKSTATUS_API_KEY, or make dev
    with reporter.track("daily_sales", input={"day": "2030-01-01"}) as task:
        for i, store in enumerate(stores):
            task.progress(i, len(stores), f"store {store}")
            ...
        task.complete(result={"stores": len(stores)})

    @reporter.tracked("daily_sales")           # a function, or a Lambda handler
    def handler(event, context): ...

`track` creates an external job (`"runner": "external"`), reports `started`, heartbeats in
the background, and ends the job when the block ends: `completed` if nothing ended it, or
`failed` with the message of an exception, which is re-raised. A cancelled job raises
`Cancelled` at the next report (the background heartbeat learns of it first).

Transient failures (connection errors, 5xx, 429) are retried with capped exponential backoff
and full jitter, honouring Retry-After. A retried report can never double a transition: the
service answers a repeat of the current state with a 200 that writes nothing, and a retry
that finds the job already where it was sent counts as done. No boto3 is needed.
"""

from __future__ import annotations

import contextvars
import functools
import json
import logging
import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import requests
from requests.adapters import BaseAdapter

from taskstatus_client.errors import (
    Conflict,
    ConnectionFailed,
    TaskStatusError,
    error_for,
)
from taskstatus_client.local import find_local

log = logging.getLogger("taskstatus_client.reporter")

DEFAULT_URL = "http://127.0.0.1:8000"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
TERMINAL = frozenset({"completed", "completed_with_errors", "failed", "cancelled"})
HEARTBEATS_PER_WINDOW = 3  # a lost heartbeat or two never lets the window lapse
F = TypeVar("F", bound=Callable[..., Any])
_UNSET: Any = object()
_current: contextvars.ContextVar[TrackedTask | None] = contextvars.ContextVar(
    "taskstatus_tracked_task", default=None
)


class Cancelled(Exception):
    """The job was cancelled (DELETE /jobs/{jobId}): stop working on it."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id} was cancelled")
        self.job_id = job_id


def current_task() -> TrackedTask | None:
    """The job the running `track` block or `tracked` function reports on, if any."""
    return _current.get()


class Reporter:
    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 10,
        max_retries: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 20,
        sleep: Callable[[float], None] = time.sleep,
        transport: BaseAdapter | None = None,
    ) -> None:
        """`transport`: a requests adapter mounted for the service's URL (tests, proxies)."""
        local = find_local()
        url = url or os.environ.get("TASKSTATUS_URL") or (local or {}).get("api") or DEFAULT_URL
        self.url = url.rstrip("/")
        api_key = api_key or (None if token else os.environ.get("TASKSTATUS_API_KEY"))
        token = token or os.environ.get("TASKSTATUS_TOKEN") or (local or {}).get("token")
        if api_key:
            self.headers = {"X-API-Key": api_key}
        elif token:
            self.headers = {"Authorization": f"Bearer {token}"}
        else:
            raise ValueError(
                "no credentials: pass api_key or token, set TASKSTATUS_API_KEY, "
                "or run `make dev` in this checkout"
            )
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._sleep = sleep
        self.transport = transport
        self._local = threading.local()  # one session per thread: heartbeats run beside reports

    # -- the routes ---------------------------------------------------------------------------

    def create(
        self,
        type: str,
        *,
        owner: str | None = None,
        job_id: str | None = None,
        input: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        heartbeat_seconds: int | None = None,
        source: dict[str, str] | None = None,
        target: dict[str, str] | None = None,
        webhook: str | None = None,
    ) -> dict[str, Any]:
        """Create an external job; the job document. One Idempotency-Key for every retry, so
        a retry after a lost answer returns the same job (a jobId in use is a Conflict)."""
        body: dict[str, Any] = {"type": type, "runner": "external", "input": input or {}}
        optional = {
            "owner": owner,
            "jobId": job_id,
            "metadata": metadata,
            "heartbeatSeconds": heartbeat_seconds,
            "source": source,
            "target": target,
            "webhook": {"url": webhook} if webhook else None,
        }
        body.update({name: value for name, value in optional.items() if value is not None})
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        return self._request("POST", "/jobs", body, headers).json()

    def report(
        self,
        job_id: str,
        status: str,
        *,
        progress: dict[str, Any] | None = None,
        result: Any = _UNSET,
        error: str | None = None,
        output: dict[str, Any] | None = None,
        if_match: str | None = None,
    ) -> dict[str, Any]:
        """Move the job to `status`; the job document. Raises Cancelled if it was cancelled."""
        body: dict[str, Any] = {"status": status}
        if progress is not None:
            body["progress"] = progress
        if result is not _UNSET:
            body["result"] = result
        if error is not None:
            body["error"] = error
        if output is not None:
            body["output"] = output
        headers = {"If-Match": if_match} if if_match else {}
        try:
            return self._request("POST", f"/jobs/{job_id}/report", body, headers).json()
        except Conflict as exc:
            if _error_code(exc) == "cancelled":
                raise Cancelled(job_id) from None
            if getattr(exc, "retried", False):
                state = self.heartbeat(job_id)
                if state["status"] == status:
                    return state  # an earlier attempt was written, its answer lost: not doubled
            raise

    def read(self, path: str) -> Any:
        """A GET of any route, its JSON (retried like the rest)."""
        return self._request("GET", path, None, {}).json()

    def heartbeat(self, job_id: str) -> dict[str, Any]:
        """`{jobId, status, cancelRequested, version, heartbeatSeconds}`; moves the deadline."""
        return self._request("POST", f"/jobs/{job_id}/heartbeat", None, {}).json()

    # -- tracking -------------------------------------------------------------------------------

    @contextmanager
    def track(
        self,
        type: str,
        *,
        owner: str | None = None,
        job_id: str | None = None,
        input: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        heartbeat_seconds: int | None = None,
        webhook: str | None = None,
    ) -> Iterator[TrackedTask]:
        """A job for the block: created and `started` on entry, heartbeated in the background,
        ended on exit (`completed`, or `failed` with an exception's message, re-raised)."""
        job = self.create(
            type,
            owner=owner,
            job_id=job_id,
            input=input,
            metadata=metadata,
            heartbeat_seconds=heartbeat_seconds,
            webhook=webhook,
        )
        task = TrackedTask(self, job["jobId"], heartbeat_seconds)
        task.start()
        token = _current.set(task)
        try:
            yield task
        except Cancelled:
            raise
        except BaseException as exc:
            task.fail_quietly(str(exc) or type_name(exc))
            raise
        else:
            if not task.ended:
                task.complete()
        finally:
            _current.reset(token)
            task.stop()

    def tracked(self, type: str, **options: Any) -> Callable[[F], F]:
        """A decorator: each call of the function runs in `track(type, **options)`; what it
        returns is the job's result (when it is JSON). On a Lambda handler, the job's id is
        the invocation's request id unless `job_id` is given."""

        def decorate(func: F) -> F:
            @functools.wraps(func)
            def run(*args: Any, **kwargs: Any) -> Any:
                chosen = dict(options)
                if "job_id" not in chosen and len(args) >= 2:
                    request_id = getattr(args[1], "aws_request_id", None)
                    if isinstance(request_id, str) and request_id:
                        chosen["job_id"] = request_id
                with self.track(type, **chosen) as task:
                    value = func(*args, **kwargs)
                    if not task.ended:
                        task.complete(result=value if _is_json(value) else None)
                    return value

            return run  # type: ignore[return-value]

        return decorate

    # -- transport ----------------------------------------------------------------------------

    @property
    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.headers.update({**self.headers, "Accept": "application/json"})
            if self.transport is not None:
                session.mount(self.url, self.transport)
        return session

    def _request(
        self,
        method: str,
        path: str,
        body: Any,
        headers: dict[str, str],
        timeout: float | None = None,
    ) -> requests.Response:
        """One call, retried on connection errors, 5xx and 429 with backoff and jitter.
        `timeout`: this call's own (a long-polled claim waits longer than a report)."""
        attempt = 0
        while True:
            try:
                response = self._session.request(
                    method,
                    self.url + path,
                    json=body,
                    headers={"Content-Type": "application/json", **headers},
                    timeout=timeout or self.timeout,
                )
            except requests.RequestException as exc:
                if attempt >= self.max_retries:
                    raise ConnectionFailed(f"{method} {path}: {exc}") from None
                self._sleep(self._delay(attempt, None))
                attempt += 1
                continue
            if response.status_code in RETRY_STATUSES and attempt < self.max_retries:
                self._sleep(self._delay(attempt, response.headers.get("Retry-After")))
                attempt += 1
                continue
            if response.status_code >= 400:
                error = _error(response)
                error.retried = attempt > 0  # type: ignore[attr-defined]
                raise error
            return response

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        """Full jitter over a capped exponential, never below what Retry-After asks."""
        cap = min(self.max_backoff, self.backoff * 2**attempt)
        delay = random.uniform(0, cap)
        if retry_after and retry_after.isdigit():
            delay = max(delay, min(float(retry_after), self.max_backoff))
        return delay


class TrackedTask:
    """The handle of a tracked job: report on it, and it heartbeats meanwhile."""

    def __init__(self, reporter: Reporter, job_id: str, heartbeat_seconds: int | None) -> None:
        self.reporter = reporter
        self.job_id = job_id
        self.heartbeat_seconds = heartbeat_seconds  # None: the stage's default, learnt at once
        self.status = "submitted"
        self.ended = False
        self.cancel_requested = False
        self._warned = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one report at a time: the order is the job's order

    def start(self) -> None:
        self._send("started")
        self._thread = threading.Thread(
            target=self._beat, name=f"taskstatus-heartbeat-{self.job_id}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.reporter.timeout)

    def progress(self, current: int, total: int, message: str | None = None) -> None:
        progress: dict[str, Any] = {"current": current, "total": total}
        if message is not None:
            progress["message"] = message
        self._send("processing", progress=progress)

    def warn(self, message: str) -> None:
        """A non-fatal error: the job goes on, and ends `completed_with_errors`."""
        self._warned = True
        self._send("error", error=message)

    def complete(self, result: Any = None, output: dict[str, Any] | None = None) -> None:
        status = "completed_with_errors" if self._warned else "completed"
        self._send(status, result=result, output=output)

    def fail(self, error: str) -> None:
        self._send("failed", error=error or "failed")

    def fail_quietly(self, error: str) -> None:
        """Fail the job on the way out of a block that raised: the block's own exception is
        what the caller sees, not one from reporting it."""
        if self.ended:
            return
        try:
            self.fail(error[:4096])
        except (Cancelled, TaskStatusError) as exc:
            log.warning("could not fail job %s: %s", self.job_id, exc)

    def _send(self, status: str, **fields: Any) -> None:
        if self.cancel_requested:
            raise Cancelled(self.job_id)
        with self._lock:
            if self.ended:
                raise TaskStatusError(f"job {self.job_id} has ended as {self.status}")
            try:
                job = self.reporter.report(self.job_id, status, **fields)
            except Cancelled:
                self.cancel_requested = True
                self.ended = True
                self.status = "cancelled"
                raise
            self.status = job.get("status", status)
            self.ended = self.status in TERMINAL

    def _beat(self) -> None:
        # Without a window of its own, the first heartbeat goes at once and brings the stage's.
        window = self.heartbeat_seconds
        interval = 0.0 if window is None else max(1.0, window / HEARTBEATS_PER_WINDOW)
        while not self._stop.wait(interval):
            try:
                answer = self.reporter.heartbeat(self.job_id)
            except TaskStatusError as exc:
                log.warning("heartbeat of job %s failed: %s", self.job_id, exc)
                interval = max(interval, 1.0)
                continue
            if answer.get("cancelRequested"):
                self.cancel_requested = True
            if answer.get("status") in TERMINAL:
                return
            interval = max(1.0, answer.get("heartbeatSeconds", 0) / HEARTBEATS_PER_WINDOW)


def type_name(exc: BaseException) -> str:
    return type(exc).__name__


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _error(response: requests.Response) -> TaskStatusError:
    try:
        body = response.json()
    except ValueError:
        body = response.text
    return error_for(response.status_code, body, response.headers.get("X-Request-Id"))


def _error_code(error: TaskStatusError) -> str | None:
    body = error.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return body["error"].get("code")
    return None
