"""Claims: remote workers take a pool's tasks under a lease (`POST /pools/{pool}/claim`).

A claim long-polls the pool's queue (at most 20 s: inside API Gateway's 29 s) and takes the
task a message names with one conditional write on the version it read: the task becomes
`started` with a new `leaseToken`, `attempts` one more, `lease_until` now + the lease. The
message is not deleted: it stays invisible for the lease, so a worker that dies lets it
reappear and the next claim takes the task over as a new attempt (the old token is fenced
out: every report and heartbeat must carry the current token on a live lease, else 409).
A lease heartbeat moves `lease_until` and the message's visibility together; a release
makes the task `retrying` and its message visible at once; an ending deletes the message.
A task whose lease ran out `MAX_ATTEMPTS` times is failed on the next claim, never stranded.

A claim may carry an `Idempotency-Key` (the client sends one per claim, the same on each of
its retries): a claim retried after its answer was lost (a read timeout while the request
waited for a container, a dropped connection, API Gateway's 504) answers with the task the
first attempt took, as SQS's ReceiveRequestAttemptId does, instead of taking a second task
and leaving the first held for nobody until its lease runs out (one attempt burnt, one
lease of delay). The take and the key are one transaction, so two attempts of one claim,
even at once, take one task between them. Records table layout (chalicelib/store/keys.py):
  pk idem#<service key's scope + key>, sk idem   task_id, fingerprint = the lease token,
                                                 expires_at = the first lease's end + 120 s
A retry renews the lease from its own time (its answer may have been lost for longer than a
lease), unless the task has since ended, been handed back or taken over by another claim.

Only a service key that names the pool (`make service-key ... POOLS=remote`) may claim it
or report under its leases: a user's JWT or API key cannot.
"""

from __future__ import annotations

import contextlib
import math
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from chalicelib import aws
from chalicelib.errors import (
    DomainError,
    IdempotencyKeyInUse,
    NotAllowed,
    StateConflict,
    TaskNotFound,
    TransitionRefused,
)
from chalicelib.model import RUNNING, Status, Task
from chalicelib.pools import Pools, pool_queue_url
from chalicelib.queues import TaskMessage
from chalicelib.store.keys import KeyRecord

if TYPE_CHECKING:
    from chalicelib.edge.auth import Principal
    from chalicelib.service import TaskService

MAX_WAIT_SECONDS = 20  # a claim answers within API Gateway's 29 s
WORKER = "worker:"  # the history names a remote writer `worker:<pool>`
# How long past its lease a claim's key answers a retry: the client's read timeout (the
# wait plus 10 s) and its retries' backoff, with room to spare.
CLAIM_REPLAY_SECONDS = 120


class PoolForbidden(NotAllowed):
    """The credential may not work this pool: 403."""


class UnknownPoolName(DomainError):
    """The service declares no such pool: 404."""


class LeaseRefused(StateConflict):
    """A lease token that is not the task's live lease (expired, or superseded by a takeover):
    409, so a worker that lost its task never writes over the one that has it now."""

    def __init__(self, task: Task, why: str) -> None:
        super().__init__(f"job {task.id}: {why}; another worker may hold it now")
        self.task = task


@dataclass(frozen=True)
class Claimed:
    task: Task
    lease_token: str
    lease_seconds: int


@dataclass(frozen=True)
class ClaimKey:
    """A claim's Idempotency-Key, kept under the credential that sent it (`holder`), so no
    other service key can read or spend it."""

    holder: str
    name: str

    @classmethod
    def of(cls, principal: Principal, name: str | None) -> ClaimKey | None:
        return None if name is None else cls(f"claim:{principal.key_id}", name)


def authorize(principal: Principal, pool: str) -> None:
    """Only a service key naming the pool works it; the pool must be declared."""
    if pool not in Pools.from_environment().names:
        raise UnknownPoolName(f"pool {pool!r} is not a worker pool of this service")
    if principal.kind != "service_key" or pool not in principal.pools:
        raise PoolForbidden(
            f"this credential may not work pool {pool!r}: a remote worker uses a service key "
            f"issued with POOLS={pool} (make service-key)"
        )


def claim(
    service: TaskService,
    pool: str,
    wait_seconds: float,
    clock: Any = time.monotonic,
    key: ClaimKey | None = None,
) -> Claimed | None:
    """The next task of the pool under a new lease, or None after `wait_seconds`; with a
    `key` another attempt of this claim used, the task that attempt took."""
    if key is not None and (again := _taken_before(service, key)) is not None:
        return again
    wait_seconds = max(0.0, min(float(wait_seconds), MAX_WAIT_SECONDS))
    lease = service.settings.worker_lease_seconds
    queue_url = pool_queue_url(service.settings.tasks_queue_url, pool)
    sqs = aws.client("sqs")
    ends = clock() + wait_seconds
    while True:
        remaining = ends - clock()
        messages = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=1,
            WaitTimeSeconds=max(0, min(MAX_WAIT_SECONDS, math.floor(remaining))),
            VisibilityTimeout=lease,
        ).get("Messages", [])
        for message in messages:
            claimed = _take(service, pool, queue_url, message, lease, key)
            if claimed is not None:
                return claimed
        if ends - clock() <= 0:
            return None


def _taken_before(service: TaskService, key: ClaimKey) -> Claimed | None:
    """The claim another attempt with this key made, its lease renewed from now (the answer
    may have been lost for longer than a lease), unless that task has since ended, been
    handed back or taken over by another claim."""
    record = service.store.keys.live(key.holder, key.name, service.clock())
    if record is None:
        return None
    task = service.find(record.task_id)
    if task is None or task.lease_token != record.fingerprint or task.status not in RUNNING:
        return None
    now_epoch = int(service.clock().timestamp())
    renewed = _move_lease(service, task, record.fingerprint, now_epoch, lapsed_ok=True)
    if renewed is None:
        return None  # taken over between the read and the renewal
    return Claimed(renewed, record.fingerprint, service.settings.worker_lease_seconds)


def _take(
    service: TaskService,
    pool: str,
    queue_url: str,
    message: dict[str, Any],
    lease: int,
    key: ClaimKey | None = None,
) -> Claimed | None:
    """Take the task a message names; settle the message when there is nothing to take."""
    sqs = aws.client("sqs")
    receipt = message["ReceiptHandle"]
    try:
        task_id = TaskMessage.from_json(message["Body"]).taskId
    except ValueError:
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=receipt)
        return None
    task = service.find(task_id)
    now = service.clock()
    epoch = int(now.timestamp())
    if task is None or task.is_terminal or task.pool != pool:
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=receipt)
        return None
    if task.status in RUNNING and (task.lease_until or 0) >= epoch:
        # A live lease (its worker heartbeats): look again when it would run out.
        visible_in = min(43200, (task.lease_until or epoch) - epoch + 1)
        sqs.change_message_visibility(
            QueueUrl=queue_url, ReceiptHandle=receipt, VisibilityTimeout=visible_in
        )
        return None
    if task.status not in (Status.SUBMITTED, Status.RETRYING, *RUNNING):
        return None  # scheduled, not yet due: the message comes back after the lease
    attempt = task.attempts + 1
    if attempt > service.settings.max_attempts:
        _give_up(service, task)
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=receipt)
        return None
    token = uuid.uuid4().hex
    taken = task.replace(
        status=Status.STARTED,
        version=task.version + 1,
        updated_at=now,
        updated_by=WORKER + pool,
        attempts=attempt,
        lease_until=epoch + lease,
        lease_token=token,
        lease_receipt=receipt,
        started_at=task.started_at or now,
    )
    try:
        if key is None:
            stored = service.store.save(task, taken)  # fenced on the version read
        else:
            kept = epoch + lease + CLAIM_REPLAY_SECONDS
            record = KeyRecord(task_id=task.id, fingerprint=token, expires_at=kept)
            stored = service.store.replace(task, taken, (key.name, record), key_holder=key.holder)
    except TransitionRefused:
        return None  # another writer won; the message comes back after the lease
    except IdempotencyKeyInUse:
        # Another attempt of this claim took a task first: answer with it, and leave this
        # message to the next claim at once. A key whose claim has ended is not reused.
        again = _taken_before(service, key) if key is not None else None
        if again is None:
            return _take(service, pool, queue_url, message, lease)
        sqs.change_message_visibility(
            QueueUrl=queue_url, ReceiptHandle=receipt, VisibilityTimeout=0
        )
        return again
    return Claimed(stored, token, lease)


def _give_up(service: TaskService, task: Task) -> None:
    reason = (
        f"gave up after {task.attempts} attempts: the worker's lease ran out "
        f"(last error: {task.error or 'the worker did not finish'})"
    )
    with contextlib.suppress(TransitionRefused):  # another writer ended or took it
        service.store.save(
            task,
            task.replace(
                status=Status.FAILED,
                version=task.version + 1,
                updated_at=service.clock(),
                completed_at=service.clock(),
                updated_by="claims",
                error=reason,
                lease_until=None,
                lease_token=None,
                lease_receipt=None,
            ),
        )


def check_lease(task: Task, token: str | None, now_epoch: int) -> None:
    """A pool task's report or heartbeat must carry its live lease (LeaseRefused if not)."""
    if token is None:
        raise LeaseRefused(task, "a pool task's report needs the leaseToken of its claim")
    if task.lease_token != token:
        raise LeaseRefused(task, "the lease token is not this job's current lease")
    if task.status not in RUNNING or (task.lease_until or 0) < now_epoch:
        raise LeaseRefused(task, "the lease has run out")


def extend(service: TaskService, task_id: str, token: str, owners_allow: Any) -> Task:
    """A lease heartbeat: lease_until and the message's visibility move on by one lease.

    One conditional write on the token and a live lease; the version is kept, so readers
    see no news. A cancelled task answers as it is (the worker stops on it)."""
    task = service.find(task_id)
    if task is None or not owners_allow(task.owner) or task.pool is None:
        raise TaskNotFound(task_id)
    if task.status is Status.CANCELLED:
        return task
    now_epoch = int(service.clock().timestamp())
    check_lease(task, token, now_epoch)
    renewed = _move_lease(service, task, token, now_epoch)
    if renewed is None:
        raise LeaseRefused(task, "the lease ran out or was taken over")
    return renewed


def _move_lease(
    service: TaskService, task: Task, token: str, now_epoch: int, *, lapsed_ok: bool = False
) -> Task | None:
    """The lease of `token` moved on to now + one lease, with the message's visibility;
    None if the condition failed. On a live lease; with `lapsed_ok`, on one that may have
    run out but was not taken over (the version read: a takeover raises it)."""
    lease = service.settings.worker_lease_seconds
    until = now_epoch + lease
    values = {
        ":until": {"N": str(until)},
        ":deadline": {"N": str(until + service.settings.default_task_timeout_seconds)},
        ":token": {"S": token},
    }
    if lapsed_ok:
        condition = "lease_token = :token AND version = :version"
        values[":version"] = {"N": str(task.version)}
    else:
        condition = "lease_token = :token AND lease_until >= :epoch"
        values[":epoch"] = {"N": str(now_epoch)}
    try:
        item = aws.client("dynamodb").update_item(
            TableName=service.settings.tasks_table,
            Key={"id": {"S": task.id}},
            # The reaper's deadline follows the lease: a task of any length lives while its
            # worker heartbeats, and one whose worker is gone for good is failed after it.
            UpdateExpression="SET lease_until = :until, deadline = :deadline",
            ConditionExpression=condition,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )["Attributes"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
        return None
    _set_visibility(service, task, lease)
    from chalicelib.store import task_from_item

    return task_from_item(item)


def release(service: TaskService, task_id: str, token: str, owners_allow: Any) -> Task:
    """Hand a task back to its pool at once (a worker stopping): `retrying`, its message
    visible now, so another worker claims it without waiting out the lease."""
    task = service.find(task_id)
    if task is None or not owners_allow(task.owner) or task.pool is None:
        raise TaskNotFound(task_id)
    check_lease(task, token, int(service.clock().timestamp()))
    released = service.transition(
        task,
        Status.RETRYING,
        by=WORKER + task.pool,
        error="handed back by its worker (it is stopping)",
        lease_until=None,
        lease_token=None,
        lease_receipt=None,
    )
    _set_visibility(service, task, 0)
    return released


def settle_message(service: TaskService, before: Task, after: Task) -> None:
    """An ending reported under a lease deletes the task's pool message (best effort: a
    message left behind is deleted by the next claim that finds the task ended)."""
    if not after.is_terminal or before.pool is None or before.lease_receipt is None:
        return
    with contextlib.suppress(ClientError):
        aws.client("sqs").delete_message(
            QueueUrl=pool_queue_url(service.settings.tasks_queue_url, before.pool),
            ReceiptHandle=before.lease_receipt,
        )


def _set_visibility(service: TaskService, task: Task, seconds: int) -> None:
    if task.pool is None or task.lease_receipt is None:
        return
    # A message that came back and was received again fails here: the next claim decides.
    with contextlib.suppress(ClientError):
        aws.client("sqs").change_message_visibility(
            QueueUrl=pool_queue_url(service.settings.tasks_queue_url, task.pool),
            ReceiptHandle=task.lease_receipt,
            VisibilityTimeout=seconds,
        )
