"""A Python client for taskstatus.

    from taskstatus_client import TaskStatusClient

    client = TaskStatusClient("http://127.0.0.1:8000", token=TOKEN)
    job = client.submit("demo/sleep", {"seconds": 3, "steps": 3})
    job = client.wait(job.jobId, timeout=60)          # WebSocket pushes, or polling
    print(job.status, job.result)

`TaskStatusClient()` without arguments takes the URL and token from TASKSTATUS_URL,
TASKSTATUS_TOKEN (and TASKSTATUS_WS_URL), else from the running `make dev` of the
checkout it runs in (`.taskstatus/local.json`).

Retries follow seed 000's rules: 5xx, 429 and connection errors are retried with
capped exponential backoff and jitter (honouring Retry-After); other 4xx never
are. A submit always carries an Idempotency-Key, the same on every retry, so a
retried POST cannot create a second job.
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

from taskstatus_client.errors import ConnectionFailed, TaskStatusError, WaitTimeout, error_for
from taskstatus_client.local import find_local
from taskstatus_client.models import (
    TERMINAL,
    BatchResponse,
    BatchResult,
    BulkResult,
    DeliveryList,
    JobDocument,
    JobEvent,
    JobEventList,
    JobList,
    WebhookSecrets,
)

DEFAULT_URL = "http://127.0.0.1:8000"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
AUTO = "auto"

Job = JobDocument


class TaskStatusClient:
    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        ws_url: str | None = AUTO,
        timeout: float = 10,
        max_retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 20,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        local = find_local()
        url = url or os.environ.get("TASKSTATUS_URL") or (local or {}).get("api") or DEFAULT_URL
        self.url = url.rstrip("/")
        token = token or os.environ.get("TASKSTATUS_TOKEN") or (local or {}).get("token")
        if not token:
            raise ValueError(
                "no token: pass one, set TASKSTATUS_TOKEN, or run `make dev` in this checkout"
            )
        if ws_url == AUTO:
            ws_url = os.environ.get("TASKSTATUS_WS_URL") or local_ws_url(self.url, local)
        self.ws_url = ws_url
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.session = session or requests.Session()
        self.session.headers.update(
            {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        )
        self.token = token
        self._sleep = sleep
        self._etags: dict[str, tuple[str, JobDocument]] = {}

    # -- the API -------------------------------------------------------------------------

    def submit(
        self,
        type: str,
        input: dict[str, Any] | None = None,
        *,
        source: dict[str, str] | None = None,
        target: dict[str, str] | None = None,
        metadata: dict[str, Any] | None = None,
        webhook: str | None = None,
        idempotency_key: str | None = AUTO,
        run_at: datetime | str | None = None,
        delay_seconds: int | None = None,
        priority: int | None = None,
        concurrency: tuple[str, int] | None = None,
    ) -> JobDocument:
        """Submit a job; with `run_at` (an aware datetime or ISO-8601 text) or `delay_seconds`
        it is `scheduled` and starts no earlier than that time. `priority` 0 to 9 (5 if
        None) orders it among jobs waiting for a slot; `concurrency` (key, limit): at most
        `limit` of your jobs with that key run at once."""
        body: dict[str, Any] = {"type": type, "input": input or {}}
        for name, value in (("source", source), ("target", target), ("metadata", metadata)):
            if value is not None:
                body[name] = value
        if run_at is not None:
            body["runAt"] = run_at.isoformat() if isinstance(run_at, datetime) else run_at
        if delay_seconds is not None:
            body["delaySeconds"] = delay_seconds
        if priority is not None:
            body["priority"] = priority
        if concurrency is not None:
            body["concurrency"] = {"key": concurrency[0], "limit": concurrency[1]}
        if webhook is not None:
            body["webhook"] = {"url": webhook}
        headers = {"Content-Type": "application/json"}
        if idempotency_key == AUTO:
            idempotency_key = str(uuid.uuid4())
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        response = self._request("POST", "/jobs", json=body, headers=headers)
        return JobDocument.model_validate(response.json())

    def submit_batch(self, jobs: list[dict[str, Any]]) -> list[BatchResult]:
        """Submit up to 100 job requests (each may carry `idempotencyKey`, `runAt`,
        `delaySeconds`); one result per job, in order: 202 and its `job`, or its `error`.

        Items without an `idempotencyKey` get a fresh one, so that retrying the call after
        a lost answer never submits a job twice."""
        keyed = [{"idempotencyKey": str(uuid.uuid4()), **job} for job in jobs]
        response = self._request("POST", "/jobs/batch", json={"jobs": keyed})
        return BatchResponse.model_validate(response.json()).results

    def get(self, job_id: str) -> JobDocument:
        """The job; revalidated with its ETag, so an unchanged job costs a 304."""
        cached = self._etags.get(job_id)
        headers = {"If-None-Match": cached[0]} if cached else {}
        response = self._request("GET", f"/jobs/{job_id}", headers=headers)
        if response.status_code == 304 and cached:
            return cached[1]
        job = JobDocument.model_validate(response.json())
        if response.headers.get("ETag"):
            self._etags[job_id] = (response.headers["ETag"], job)
        return job

    def list(
        self, *, status: str | None = None, type: str | None = None, page_size: int = 50
    ) -> Iterator[JobDocument]:
        """Every job of the caller, newest first, following the cursor page by page."""
        params: dict[str, Any] = {"limit": page_size}
        if status:
            params["status"] = status
        if type:
            params["type"] = type
        while True:
            page = JobList.model_validate(self._request("GET", "/jobs", params=params).json())
            yield from page.jobs
            if not page.nextCursor:
                return
            params["cursor"] = page.nextCursor

    def cancel(self, job_id: str) -> JobDocument:
        return JobDocument.model_validate(self._request("DELETE", f"/jobs/{job_id}").json())

    def events(self, job_id: str, *, page_size: int = 100) -> Iterator[JobEvent]:
        """The job's history, oldest first: one entry per version, with who wrote it."""
        params: dict[str, Any] = {"limit": page_size}
        while True:
            response = self._request("GET", f"/jobs/{job_id}/events", params=params)
            page = JobEventList.model_validate(response.json())
            yield from page.events
            if not page.nextCursor:
                return
            params["cursor"] = page.nextCursor

    def retry(self, job_id: str, *, idempotency_key: str | None = AUTO) -> JobDocument:
        """Run a failed or cancelled job again under the same id (409 otherwise)."""
        if idempotency_key == AUTO:
            idempotency_key = str(uuid.uuid4())
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        response = self._request("POST", f"/jobs/{job_id}/retry", headers=headers)
        return JobDocument.model_validate(response.json())

    def redrive(
        self,
        status: str = "failed",
        *,
        type: str | None = None,
        since: str | None = None,
        until: str | None = None,
        dry_run: bool = False,
    ) -> BulkResult:
        """Retry every failed (or cancelled) job that matches, call after call (1,000 each)."""
        body = _bulk_filter(status, type, since, until, dry_run)
        return self._bulk("/jobs/redrive", body)

    def cancel_all(
        self,
        status: str | None = None,
        *,
        type: str | None = None,
        since: str | None = None,
        until: str | None = None,
        dry_run: bool = False,
    ) -> BulkResult:
        """Cancel every unfinished job that matches (all unfinished statuses by default)."""
        body = _bulk_filter(status, type, since, until, dry_run)
        return self._bulk("/jobs/cancel", body)

    def _bulk(self, path: str, body: dict[str, Any]) -> BulkResult:
        total = BulkResult(dryRun=body["dryRun"], count=0, jobIds=[], skipped=0, nextCursor=None)
        while True:
            headers = {"Content-Type": "application/json"}
            page = BulkResult.model_validate(
                self._request("POST", path, json=body, headers=headers).json()
            )
            total.count += page.count
            total.jobIds += page.jobIds
            total.skipped += page.skipped
            if not page.nextCursor:
                return total
            body = {**body, "cursor": page.nextCursor}

    # -- schedules: the documents as the API returns them (docs/schedules.md) ------------

    def create_schedule(
        self,
        type: str,
        input: dict[str, Any] | None = None,
        *,
        cron: str | None = None,
        rate: str | None = None,
        timezone: str = "UTC",
        overlap: str = "skip",
        catch_up: str = "none",
        paused: bool = False,
        idempotency_key: str | None = AUTO,
    ) -> dict[str, Any]:
        """A schedule creating a `type` job per fire of `cron` (5 fields, read in `timezone`)
        or `rate` ("5 minutes"); give one of the two. Its retries (a lost answer) send the
        same Idempotency-Key (a new one per call unless given), so they make one schedule."""
        body: dict[str, Any] = {
            "type": type,
            "input": input or {},
            "timezone": timezone,
            "overlap": overlap,
            "catchUp": catch_up,
            "paused": paused,
        }
        if cron is not None:
            body["cron"] = cron
        if rate is not None:
            body["rate"] = rate
        headers = {"Content-Type": "application/json"}
        if idempotency_key == AUTO:
            idempotency_key = str(uuid.uuid4())
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        response = self._request("POST", "/schedules", json=body, headers=headers)
        result: dict[str, Any] = response.json()
        return result

    def schedules(self) -> list[dict[str, Any]]:
        schedules: list[dict[str, Any]] = self._request("GET", "/schedules").json()["schedules"]
        return schedules

    def get_schedule(self, schedule_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", f"/schedules/{schedule_id}").json()
        return result

    def update_schedule(self, schedule_id: str, **changes: Any) -> dict[str, Any]:
        """Change fields by their API names (`paused=True`, `cron=...`, `catchUp=...`)."""
        path = f"/schedules/{schedule_id}"
        result: dict[str, Any] = self._request("PATCH", path, json=changes).json()
        return result

    def delete_schedule(self, schedule_id: str) -> None:
        self._request("DELETE", f"/schedules/{schedule_id}")

    def deliveries(self, job_id: str) -> DeliveryList:
        return DeliveryList.model_validate(
            self._request("GET", f"/jobs/{job_id}/deliveries").json()
        )

    def webhook_secrets(self) -> WebhookSecrets:
        """Your signing secret (and while rotating, the previous one): verify deliveries with it."""
        return WebhookSecrets.model_validate(self._request("GET", "/webhooks/secret").json())

    def wait(
        self,
        job_id: str,
        timeout: float | None = None,
        on_update: Callable[[dict[str, Any]], None] | None = None,
        *,
        use_websocket: bool = True,
    ) -> JobDocument:
        """Wait until the job finishes: WebSocket pushes, or polling if they are unavailable.

        `on_update` gets every state seen as a job document (a dict, `JobDocument`'s
        JSON), whichever way it arrived. A push updates the last document seen with the
        push's native change (canonical status, version, progress, times), so a document
        from a push reads as one from the API would. The final document is always read
        from the API.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        if use_websocket and self.ws_url:
            try:
                return self._wait_websocket(job_id, deadline, on_update)
            except TaskStatusError:
                raise  # the service answered (not found, timed out...): polling would too
            except Exception:
                pass
        return self._wait_polling(job_id, deadline, on_update)

    # -- waiting ---------------------------------------------------------------------------

    def _wait_websocket(
        self,
        job_id: str,
        deadline: float | None,
        on_update: Callable[[dict[str, Any]], None] | None,
    ) -> JobDocument:
        from websockets.sync.client import connect

        with connect(f"{self.ws_url}/?token={self.token}", proxy=None, open_timeout=5) as ws:
            ws.send(json.dumps({"action": "subscribe", "taskId": job_id}))
            last_version, seen = 0, self.get(job_id)
            if on_update:
                on_update(seen.model_dump(mode="json"))
            if seen.status.value in TERMINAL:
                return seen
            while True:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise WaitTimeout(f"job {job_id} did not finish in time")
                try:
                    message = json.loads(ws.recv(timeout=min(remaining or 300, 300)))
                except TimeoutError:
                    ws.send(json.dumps({"action": "ping"}))  # keep the connection alive
                    continue
                if message.get("type") == "error":
                    text = str(message.get("message"))
                    if "reconnect" in text:  # the service lost this connection: poll instead
                        raise ConnectionError(f"WebSocket: {text}")
                    raise error_for(404, {"error": text}, None)
                if message.get("type") != "task_status":
                    continue
                change = pushed_change(message)
                if change.get("jobId") != job_id or change.get("version", 0) <= last_version:
                    continue
                last_version = change["version"]
                final = change["status"] in TERMINAL
                job = self.get(job_id) if final else merge_push(seen, change)
                if job != seen and on_update:
                    on_update(job.model_dump(mode="json"))
                seen = job
                if final:
                    return job

    def _wait_polling(
        self,
        job_id: str,
        deadline: float | None,
        on_update: Callable[[dict[str, Any]], None] | None,
    ) -> JobDocument:
        delay, seen = 1.0, None
        while True:
            response = self._request("GET", f"/jobs/{job_id}")
            job = JobDocument.model_validate(response.json())
            if job != seen and on_update:
                on_update(job.model_dump(mode="json"))
            seen = job
            if job.status.value in TERMINAL:
                return job
            retry_after = _seconds(response.headers.get("Retry-After"))
            delay = min(self.max_backoff, max(retry_after or 0, delay * 1.5))
            if deadline is not None and time.monotonic() + delay > deadline:
                raise WaitTimeout(f"job {job_id} did not finish in time")
            self._sleep(delay)

    # -- transport ---------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        attempt = 0
        while True:
            try:
                response = self.session.request(
                    method, self.url + path, timeout=self.timeout, **kwargs
                )
            except requests.ConnectionError as exc:
                if attempt >= self.max_retries:
                    raise ConnectionFailed(f"cannot reach {self.url}: {exc}") from exc
                self._sleep(self._delay(attempt, None))
                attempt += 1
                continue
            if response.status_code < 400:
                return response
            if response.status_code in RETRY_STATUSES and attempt < self.max_retries:
                self._sleep(self._delay(attempt, _seconds(response.headers.get("Retry-After"))))
                attempt += 1
                continue
            raise error_for(
                response.status_code, _json(response), response.headers.get("X-Request-Id")
            )

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        exponential = min(self.max_backoff, self.backoff * 2**attempt)
        jittered = random.uniform(exponential / 2, exponential)
        return max(jittered, min(retry_after or 0, self.max_backoff * 3))


def _bulk_filter(
    status: str | None, type: str | None, since: str | None, until: str | None, dry_run: bool
) -> dict[str, Any]:
    given = {"status": status, "type": type, "since": since, "until": until}
    return {k: v for k, v in given.items() if v is not None} | {"dryRun": dry_run}


def pushed_change(message: dict[str, Any]) -> dict[str, Any]:
    """A push's native change (`job`: canonical status and version). From a server that
    sends only seed 004's payload, that payload in the job document's names: its statuses
    are 004's (`started` for submitted, `failed` for cancelled) until the final read."""
    if isinstance(message.get("job"), dict):
        return message["job"]
    payload = message.get("payload") or {}
    return {
        "jobId": payload.get("task_id"),
        "status": payload.get("status"),
        "version": payload.get("version", 0),
        "progress": payload.get("progress"),
        "updatedAt": datetime.fromtimestamp(payload.get("updated_at", 0), UTC).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        ),
    }


def merge_push(job: JobDocument, change: dict[str, Any]) -> JobDocument:
    """The job document `job` as a push's native change says it now is."""
    fields = ("status", "version", "progress", "updatedAt", "completedAt", "error")
    changes = {name: change[name] for name in fields if name in change}
    return JobDocument.model_validate(job.model_dump(mode="json") | changes)


def local_ws_url(url: str, local: dict[str, Any] | None) -> str | None:
    """The WebSocket of the `make dev` serving `url`: from its endpoints file, else the
    default ports' guess."""
    if local and str(local.get("api", "")).rstrip("/") == url and local.get("ws"):
        return str(local["ws"])
    return default_ws_url(url)


def default_ws_url(url: str) -> str | None:
    """`make dev`'s WebSocket port beside its REST port; elsewhere it must be given."""
    parts = urlsplit(url)
    if parts.hostname in {"127.0.0.1", "localhost"} and parts.port == 8000:
        return urlunsplit(("ws", f"{parts.hostname}:8001", "", "", ""))
    return None


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text
