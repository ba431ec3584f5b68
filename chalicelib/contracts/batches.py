"""`POST /jobs/batch`: up to MAX_BATCH_JOBS job requests, each validated, stored and queued
on its own, so that a bad item never blocks the others.

Writes: a new task must be a conditional put (never over an existing id), and an
idempotency key a conditional put tied to its task, so BatchWriteItem (which takes no
conditions) cannot be used honestly. The items are written with TransactWriteItems
instead, packed up to MAX_ACTIONS_PER_TRANSACTION actions (one per task, two with an
idempotency key): 100 plain jobs are one call, 100 with keys two. An item whose condition
fails (its key was used before: a replay or a conflict; or the same key twice in one
batch) is taken out and the rest written again; then each such item goes through the
single-job path, which answers its replay, 409 or 422 exactly as `POST /jobs` would.
An item refused by its own task (the transaction was applied, its answer lost, and botocore
sent it again: the refused Put returns the task it found) is written, not refused.
The table's stream queues each stored task, as for `POST /jobs`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError
from chalice.app import Request, Response

from chalicelib import aws
from chalicelib.contracts.jobs import (
    IDEMPOTENCY_KEY_PATTERN,
    give_back_allowance,
    job_document,
    job_owner,
    parse_job_request,
    submit_allowance,
)
from chalicelib.edge import http
from chalicelib.edge.http_errors import (
    ApiError,
    BadRequest,
    Conflict,
    Unprocessable,
    native_answer,
    native_errors,
)
from chalicelib.edge.overload import RETRY_AFTER_SECONDS
from chalicelib.errors import (
    IdempotencyConflict,
    IdempotencyKeyInUse,
    IdempotentJobGone,
    JobIdTaken,
)
from chalicelib.model import Task
from chalicelib.observability import emit_metric
from chalicelib.service import SubmitJob, TaskService
from chalicelib.store import KeyRecord, TaskStore
from chalicelib.store.keys import key_expires_at
from chalicelib.webhooks.ssrf import LookupBudget, LookupTimeSpent

if TYPE_CHECKING:
    from chalicelib.bootstrap import Container

MAX_BATCH_JOBS = 100
# The webhook lookups of one batch, all together: the rest of API Gateway's 29 s is the
# writes'. Items past it answer 503 and are not stored; sent again, they are looked up.
BATCH_LOOKUP_SECONDS = 10.0
MAX_ACTIONS_PER_TRANSACTION = 100  # DynamoDB's limit


@dataclass
class Entry:
    """A valid item, ready to store."""

    index: int
    task: Task
    job: SubmitJob
    key: str | None

    def actions(self, store: TaskStore, key_expires_at: int, now: datetime) -> list[dict[str, Any]]:
        record = None
        if self.key is not None:
            record = KeyRecord(self.task.id, self.job.fingerprint(), key_expires_at)
        return store.put_actions(self.task, self.key, record, now)


def _error(index: int, exc: ApiError) -> dict[str, Any]:
    error: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if exc.details.get("errors"):
        error["errors"] = exc.details["errors"]
    return {"index": index, "status": exc.status_code, "error": error}


def _accepted(index: int, task: Task, key: str | None, created: bool) -> dict[str, Any]:
    result: dict[str, Any] = {"index": index, "status": 202, "job": job_document(task)}
    if key is not None:
        result["replayed"] = not created
    return result


def _jobs(body: Any) -> list[Any]:
    if not isinstance(body, dict) or set(body) != {"jobs"}:
        raise Unprocessable('the body must be a JSON object {"jobs": [<job request>, ...]}')
    jobs = body["jobs"]
    if not isinstance(jobs, list) or not jobs:
        raise Unprocessable('"jobs" must be a non-empty array of job requests')
    if len(jobs) > MAX_BATCH_JOBS:
        raise Unprocessable(
            f"a batch holds at most {MAX_BATCH_JOBS} jobs; got {len(jobs)}: split it"
        )
    return jobs


def _item_key(item: dict[str, Any]) -> str | None:
    key = item.pop("idempotencyKey", None)
    if key is not None and (not isinstance(key, str) or not IDEMPOTENCY_KEY_PATTERN.match(key)):
        raise Unprocessable(
            "idempotencyKey must be 1 to 255 printable ASCII characters without spaces",
            errors=[{"field": "idempotencyKey", "message": "not a valid idempotency key"}],
        )
    return key


def _prepare(
    service: TaskService,
    request: Request,
    index: int,
    item: Any,
    now: datetime,
    lookups: LookupBudget,
) -> Entry | dict[str, Any]:
    """The item as an Entry, or its error result."""
    try:
        if not isinstance(item, dict):
            raise Unprocessable(
                f"jobs[{index}] must be a JSON object (a job request with at least a `type`)"
            )
        item = dict(item)
        key = _item_key(item)
        job = parse_job_request(item)
        owner = job_owner(request, job)
        try:
            with native_errors():
                task = service.new_task(owner, job, now, lookups)
        except LookupTimeSpent as exc:
            raise _Unavailable(str(exc)) from None
    except ApiError as exc:
        return _error(index, exc)
    return Entry(index=index, task=task, job=job, key=key)


def _chunks(entries: list[Entry]) -> list[list[Entry]]:
    chunks: list[list[Entry]] = [[]]
    used = 0
    for entry in entries:
        size = 2 if entry.key is not None else 1
        if used + size > MAX_ACTIONS_PER_TRANSACTION:
            chunks.append([])
            used = 0
        chunks[-1].append(entry)
        used += size
    return [chunk for chunk in chunks if chunk]


class BatchWriter:
    def __init__(self, service: TaskService, now: datetime) -> None:
        self.service = service
        self.now = now
        self.expires = key_expires_at(now, service.settings)
        self.calls = 0
        # The key a refused entry's condition found (the transaction returns it).
        self.earlier: dict[int, KeyRecord] = {}
        # Entries with the id of an earlier entry of the batch (a producer's jobId twice):
        # the task under their id, made at the same time, may be the same and is not theirs.
        self.repeats: set[int] = set()

    def write(self, entries: list[Entry]) -> dict[int, dict[str, Any]]:
        """Store every entry; the result of each by index."""
        results: dict[int, dict[str, Any]] = {}
        contested: list[Entry] = []
        first: list[Entry] = []
        keys: set[str] = set()
        ids: set[str] = set()
        for entry in entries:
            # The same key (or a producer's jobId) twice in one transaction is refused as a
            # whole: a repeat waits.
            if (entry.key is not None and entry.key in keys) or entry.task.id in ids:
                if entry.task.id in ids:
                    self.repeats.add(id(entry))
                contested.append(entry)
                continue
            if entry.key is not None:
                keys.add(entry.key)
            ids.add(entry.task.id)
            first.append(entry)
        for chunk in _chunks(first):
            written, refused, unavailable = self._transact(chunk)
            for entry in written:
                results[entry.index] = _accepted(entry.index, entry.task, entry.key, True)
            contested += refused
            for entry in unavailable:
                results[entry.index] = _error(entry.index, _UNAVAILABLE)
        replays = [e for e in contested if id(e) in self.earlier]
        try:
            results.update(self._replays(replays))
        except Exception as exc:
            if not aws.is_transient(exc):
                raise  # a throttled read leaves each replay to the single-job path below
        for entry in sorted(contested, key=lambda e: e.index):
            if entry.index not in results:
                results[entry.index] = self._one(entry)
        return results

    def _replays(self, entries: list[Entry]) -> dict[int, dict[str, Any]]:
        """Items whose key was used before, answered from the keys the transactions
        returned and the store's batched read of their jobs (not one call each)."""
        results: dict[int, dict[str, Any]] = {}
        found = self.service.store.get_many(
            {self.earlier[id(e)].task_id for e in entries}, self.now
        )
        for entry in entries:
            try:
                task_id = self.earlier[id(entry)].replay_or_conflict(entry.job.fingerprint())
            except IdempotencyConflict as exc:
                results[entry.index] = _error(entry.index, native_answer(exc))
                continue
            task = found.get(task_id)
            if task is not None:
                results[entry.index] = _accepted(entry.index, task, entry.key, False)
            # else: gone or not read: the single-job path answers it
        return results

    def _transact(self, chunk: list[Entry]) -> tuple[list[Entry], list[Entry], list[Entry]]:
        """(written, refused by a condition, not written for a transient failure)."""
        remaining, refused, written = list(chunk), [], []
        while remaining:
            actions: list[dict[str, Any]] = []
            owners: list[Entry] = []
            for entry in remaining:
                for action in entry.actions(self.service.store, self.expires, self.now):
                    actions.append(action)
                    owners.append(entry)
            try:
                self.calls += 1
                refusals = self.service.store.write_many(actions)
            except ClientError as exc:
                if aws.is_transient(exc):  # throttled transactions included: none written
                    return written, refused, remaining
                raise
            if refusals is None:
                return written + remaining, refused, []
            failed = {id(owners[i]) for i, refusal in enumerate(refusals) if refusal.refused}
            own = set()
            for i, refusal in enumerate(refusals):
                if refusal.condition_failed and refusal.key is not None:
                    self.earlier[id(owners[i])] = refusal.key
                if refusal.condition_failed and self.service.store.is_own_write(
                    refusal.task, owners[i].task
                ):
                    own.add(id(owners[i]))  # its task is in: an earlier try was applied
            if not failed:  # no reason given: let the single-job path sort each out
                return written, refused + remaining, []
            written += [e for e in remaining if id(e) in own]
            refused += [e for e in remaining if id(e) in failed - own]
            remaining = [e for e in remaining if id(e) not in failed]
        return written, refused, []

    def _one(self, entry: Entry) -> dict[str, Any]:
        """An item the transaction could not take, through `POST /jobs`'s own path."""
        own_retry = id(entry) not in self.repeats
        try:
            if entry.key is None:
                self.service.store.create(entry.task, own_retry=own_retry)
                return _accepted(entry.index, entry.task, None, True)
            task, created = self.service.store.create_idempotent(
                entry.task,
                entry.key,
                entry.job.fingerprint(),
                self.expires,
                self.now,
                own_retry=own_retry,
            )
        except (IdempotencyConflict, JobIdTaken) as exc:  # as `POST /jobs` answers them
            return _error(entry.index, native_answer(exc))
        except IdempotencyKeyInUse:
            return _error(
                entry.index,
                Conflict("another request with this idempotencyKey is being processed; retry"),
            )
        except IdempotentJobGone as exc:
            return _error(
                entry.index,
                Conflict(f"the job this idempotencyKey created ({exc}) has expired; use a new key"),
            )
        except Exception as exc:
            if not aws.is_transient(exc):
                raise
            return _error(entry.index, _UNAVAILABLE)
        return _accepted(entry.index, task, entry.key, created)


class _Unavailable(ApiError):
    status_code = 503
    code = "unavailable"


# An item AWS throttled or could not take: not stored, and the same item sent again may pass.
_UNAVAILABLE = _Unavailable("the store is unavailable; retry this job (with its key)")


def _take_allowances(container: Container, jobs_by_owner: Counter[str]) -> None:
    """SUBMIT_RATE: a token per job, from each owner's bucket, all or none. A batch needs
    all its tokens now: short of them, a 429 with the wait for the whole batch, and none of
    it is stored (a batch larger than the bucket can never pass: a 422 says to split it).
    An owner short of tokens gives the others back what they took."""
    taken: list[tuple[str, int]] = []
    try:
        for owner, count in sorted(jobs_by_owner.items()):
            submit_allowance(container, owner, count)
            taken.append((owner, count))
    except ApiError:
        for owner, count in taken:
            give_back_allowance(container, owner, count)
        raise


def submit_batch(container: Container, request: Request) -> Response:
    service = container.service
    if request.headers.get("idempotency-key") is not None:
        raise BadRequest(
            "POST /jobs/batch takes an idempotencyKey per job, not an Idempotency-Key header"
        )
    jobs = _jobs(http.json_body(request))
    now = service.clock()
    lookups = LookupBudget(BATCH_LOOKUP_SECONDS)
    prepared = [_prepare(service, request, i, item, now, lookups) for i, item in enumerate(jobs)]
    entries = [p for p in prepared if isinstance(p, Entry)]
    results = {p["index"]: p for p in prepared if isinstance(p, dict)}
    _take_allowances(container, Counter(e.task.owner for e in entries))
    results.update(BatchWriter(service, now).write(entries))
    created = Counter(
        r["job"]["type"] for r in results.values() if r["status"] == 202 and not r.get("replayed")
    )
    for task_type, count in created.items():
        emit_metric("TasksSubmitted", count, type=task_type)
    body = {"results": [results[i] for i in range(len(jobs))]}
    unavailable = any(r["status"] == 503 for r in body["results"])
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if unavailable else None
    return http.json_response(body, 207, headers)
