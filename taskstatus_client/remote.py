"""A remote worker: claims a pool's jobs over HTTPS and runs them with your processors.

    taskstatus worker --pool remote --processors mypkg.tasks --concurrency 4

Needs `TASKSTATUS_URL` and, in `TASKSTATUS_API_KEY`, a service key issued with the pool
(`make service-key NAME=<n> OWNERS=... POOLS=remote`); no AWS credentials. Each of
`concurrency` threads claims a job (`POST /pools/{pool}/claim`, long-polled), runs its
processor and reports under the job's lease; a heartbeat thread per job keeps the lease
(a job of any length lives while it heartbeats) and learns of a cancel, which stops the
processor at its next `ctx.progress`/`ctx.warn`. A lost lease (409) stops it too: another
worker holds the job now and this one's reports could only be refused.

On SIGTERM (`stop()`), the worker claims nothing more, lets running jobs finish within
`grace_seconds`, then hands back the rest at once (`POST /jobs/{id}/release`) so they are
claimed again in seconds rather than after their lease.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import is_dataclass
from typing import Any, TextIO

from taskstatus_client.errors import Conflict, TaskStatusError
from taskstatus_client.reporter import Reporter, _error_code
from taskstatus_client.worker import ProcessorSpec

log = logging.getLogger("taskstatus_client.remote")

STATUS_EVERY_SECONDS = 10.0  # a `running` line per job this often (its progress and elapsed)
HEARTBEATS_PER_LEASE = 3  # a lost heartbeat or two never lets the lease lapse
PROGRESS_MIN_INTERVAL_SECONDS = 1.0
CLAIM_TIMEOUT_MARGIN_SECONDS = 10.0


class Stopped(Exception):
    """Raised inside a processor at a report: its job was cancelled or its lease lost."""


class LeasedJob:
    """One claimed job: its lease, its reports, and the reason it must stop (if any)."""

    def __init__(self, reporter: Reporter, claim: dict[str, Any]) -> None:
        self.reporter = reporter
        self.job: dict[str, Any] = claim["job"]
        self.id: str = self.job["jobId"]
        self.type: str = self.job["type"]
        self.token: str = claim["leaseToken"]
        self.lease_seconds: int = claim["leaseSeconds"]
        self.attempt: int = claim.get("attempt", 1)
        self.started = time.monotonic()
        self.stop_reason: str | None = None
        self.finished = threading.Event()
        self.progress_text = ""
        self.outcome = "stopped"  # the status its last report set: completed, failed, ...

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.reporter._request(
            "POST", f"/jobs/{self.id}/{path}", {**body, "leaseToken": self.token}, {}
        )
        return response.json() if response.content else {}

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def line(self, word: str, detail: str = "") -> str:
        """The worker's line about this job: `<word> <type> <id> [detail] <elapsed> s`."""
        return " ".join(filter(None, (word, self.type, self.id, detail, f"{self.elapsed:.1f} s")))

    def report(self, status: str, **fields: Any) -> None:
        if self.stop_reason is not None:
            raise Stopped(self.stop_reason)
        try:
            self.post("report", {"status": status, **fields})
        except Conflict as exc:
            self.stop_reason = "cancelled" if _error_code(exc) == "cancelled" else str(exc)
            raise Stopped(self.stop_reason) from None
        self.outcome = status

    def heartbeat(self) -> None:
        try:
            answer = self.post("heartbeat", {})
        except Conflict as exc:
            self.stop_reason = f"lease lost: {exc}"
            return
        if answer.get("cancelRequested"):
            self.stop_reason = "cancelled"

    def release(self) -> None:
        try:
            self.post("release", {})
        except TaskStatusError as exc:
            log.info("release of %s refused: %s", self.id, exc)


class RemoteContext:
    """A processor's `ctx` on a remote worker: `input`, `progress`, `warn`, like the Lambda's."""

    def __init__(
        self, leased: LeasedJob, input: Any, say: Callable[[str], None] = lambda line: None
    ) -> None:
        self._leased = leased
        self._say = say
        self.task = leased.job
        self.input = input
        self.warnings: list[str] = []
        self._last_progress = 0.0

    def progress(self, current: int, total: int, message: str = "") -> None:
        if self._leased.stop_reason is not None:
            raise Stopped(self._leased.stop_reason)
        self._leased.progress_text = f"{current}/{total} {message}".strip()
        now = time.monotonic()
        if now - self._last_progress < PROGRESS_MIN_INTERVAL_SECONDS:
            return
        self._last_progress = now
        progress = {"current": current, "total": max(total, current), "message": message}
        self._leased.report("processing", progress=progress)
        self._say(self._leased.line("progress", self._leased.progress_text))

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        self._leased.report("error", error=message)


def build_input(spec: ProcessorSpec, data: dict[str, Any]) -> Any:
    if spec.input is None:
        return data
    if is_dataclass(spec.input):
        return spec.input(**data)
    return spec.input.model_validate(data)  # a pydantic model


class RemoteWorker:
    def __init__(
        self,
        reporter: Reporter,
        pool: str,
        processors: dict[str, ProcessorSpec],
        *,
        concurrency: int = 4,
        grace_seconds: float = 30,
        claim_wait: float = 20,
        out: TextIO | None = None,
        status_every: float = STATUS_EVERY_SECONDS,
    ) -> None:
        self.reporter = reporter
        self.pool = pool
        self.processors = processors
        self.concurrency = concurrency
        self.grace_seconds = grace_seconds
        self.claim_wait = claim_wait
        self.out = out
        self.status_every = status_every
        self.stopping = threading.Event()
        self.running: dict[str, LeasedJob] = {}
        self._lock = threading.Lock()
        self._out_lock = threading.Lock()
        self.completed = 0

    # -- the loop --------------------------------------------------------------------------

    def run(self, until: Callable[[], bool] | None = None) -> None:
        """Work until stop() (or `until()` is true), then wind down within the grace."""
        threads = [
            threading.Thread(target=self._work, name=f"worker-{i}", daemon=True)
            for i in range(self.concurrency)
        ]
        for thread in threads:
            thread.start()
        next_status = time.monotonic() + self.status_every
        while not self.stopping.is_set():
            if until is not None and until():
                self.stop()
                break
            self.stopping.wait(0.2)
            if self.status_every > 0 and time.monotonic() >= next_status:
                self._say_running()
                next_status = time.monotonic() + self.status_every
        self._wind_down(threads)

    def _say_running(self) -> None:
        """A live line per running job (type, id, progress, elapsed): what a job that reports
        no progress is doing is seen too, not only when it ends."""
        with self._lock:
            running = list(self.running.values())
        for leased in running:
            self._say(leased.line("running", leased.progress_text or "-"))

    def stop(self) -> None:
        """Claim nothing more (SIGTERM); run() lets running jobs finish within the grace."""
        self.stopping.set()

    def _wind_down(self, threads: list[threading.Thread]) -> None:
        ends = time.monotonic() + self.grace_seconds
        for thread in threads:
            thread.join(max(0.0, ends - time.monotonic()))
        with self._lock:
            left = list(self.running.values())
        for leased in left:
            leased.stop_reason = "the worker stopped"
            leased.release()
            self._say(f"released {leased.type} {leased.id} (the worker stopped)")
        # Claims still long-polling are waited out, so a job one takes is handed straight
        # back: a claim abandoned in the service would hold its job for nobody for a lease,
        # and burn one of its attempts.
        claims_end = time.monotonic() + self.claim_wait + CLAIM_TIMEOUT_MARGIN_SECONDS
        for thread in threads:
            thread.join(max(0.0, claims_end - time.monotonic()))

    def _work(self) -> None:
        key: str | None = None  # a claim that failed is sent again under its own key
        while not self.stopping.is_set():
            key = key or f"claim-{uuid.uuid4().hex}"
            try:
                claim = self._claim(key)
            except TaskStatusError as exc:
                # The service may have taken a job for this claim without being heard (a
                # 503 or a lost answer after the reporter's retries): the same key gets it
                # back, where a new one would leave it leased to nobody until its lease ends.
                log.warning("claim failed: %s", exc)
                self.stopping.wait(1.0)
                continue
            key = None
            if claim is None:
                continue
            leased = LeasedJob(self.reporter, claim)
            if self.stopping.is_set():  # claimed while stopping: hand it straight back
                leased.release()
                self._say(f"released {leased.type} {leased.id} (claimed while stopping)")
                return
            self._run(leased)

    def _claim(self, key: str) -> dict[str, Any] | None:
        path = f"/pools/{self.pool}/claim?waitSeconds={self.claim_wait:g}"
        # The read waits out the long poll: a claim given up on early would leave the server
        # taking a job for nobody (it comes back only when that lease ends).
        timeout = self.claim_wait + CLAIM_TIMEOUT_MARGIN_SECONDS
        # One key per claim, the same on each retry of it: a retry after a lost answer gets
        # the job the first attempt took rather than a second one.
        headers = {"Idempotency-Key": key}
        response = self.reporter._request("POST", path, {}, headers, timeout=timeout)
        return response.json() if response.status_code == 200 else None

    # -- one job ----------------------------------------------------------------------------

    def _run(self, leased: LeasedJob) -> None:
        self._say(f"claimed {leased.type} {leased.id} (attempt {leased.attempt})")
        with self._lock:
            self.running[leased.id] = leased
        beats = threading.Thread(target=self._heartbeat, args=(leased,), daemon=True)
        beats.start()
        try:
            self._execute(leased)
        finally:
            leased.finished.set()
            with self._lock:
                self.running.pop(leased.id, None)
            self._say(leased.line("done", leased.outcome))

    def _execute(self, leased: LeasedJob) -> None:
        spec = self.processors.get(leased.type)
        try:
            if spec is None:
                leased.report("failed", error=f"no processor for {leased.type!r} on this worker")
                return
            try:
                ctx = RemoteContext(
                    leased, build_input(spec, leased.job.get("input") or {}), self._say
                )
            except (TypeError, ValueError) as exc:
                leased.report("failed", error=f"input is not valid for {leased.type}: {exc}")
                return
            try:
                result = spec.func(leased.job, ctx)
            except Stopped:
                raise
            except Exception as exc:
                permanent = getattr(exc, "taskstatus_failure", None) == "permanent"
                status = "failed" if permanent else "retrying"
                leased.report(status, error=(str(exc) or type(exc).__name__)[:2000])
                return
            status = "completed_with_errors" if ctx.warnings else "completed"
            leased.report(status, result=result)
            with self._lock:
                self.completed += 1
        except Stopped as exc:
            leased.outcome = f"stopped ({exc})"

    def _heartbeat(self, leased: LeasedJob) -> None:
        interval = max(0.2, leased.lease_seconds / HEARTBEATS_PER_LEASE)
        while not leased.finished.wait(interval):
            if leased.stop_reason is not None:
                return
            try:
                leased.heartbeat()
            except TaskStatusError as exc:
                log.warning("heartbeat of %s failed: %s", leased.id, exc)

    def _say(self, line: str) -> None:
        """One whole line, written at once: print() writes the text and its newline in two
        calls, so the threads' lines could run together ("done A 0.4 sdone B ...") and a
        reader of the log miss one."""
        if self.out is not None:
            with self._out_lock:
                self.out.write(line + "\n")
                self.out.flush()
