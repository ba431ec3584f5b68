"""The operator's console: every owner's work, the queues and their dead letters, what is stuck.

Never a Scan. Where it reads:
- Tasks across owners: the sharded GSI by_created (created_shard = the task's shard, one of
  16, + created_at), one Query per shard for a page, merged newest first, then one
  BatchGetItem of the page's tasks; with an owner, Queries of by_owner. A time range is the
  Queries' key condition; pool and type are their filters, and so is the status on by_owner.
  by_created projects only what never changes after a task is created (its keys, type, pool,
  expiry), so a task's status writes never write it: one index write per task instead of
  three (bench/units.py counts them). Its status filter is therefore applied to the tasks
  read, reading on (at most MAX_STATUS_ROUNDS pages of candidates) while the page is short.
- Queues: GetQueueAttributes of each queue. Their URLs are derived from TASKS_QUEUE_URL and
  WEBHOOKS_QUEUE_URL with the names infra/resources.json gives them (`<stack>-tasks-dlq`,
  `<stack>-stream-failures`, `<stack>-pool-<name>[-dlq]`), so no setting per queue is needed.
- Dead letters: the message bodies, received under a short hold and let go again at once
  (a dead-letter queue has no consumer but the tasks DLQ's handler, which a hold only delays).
- Stuck work: the sparse by_deadline and by_due indexes (one Query per shard each, 272
  shards read 10 at a time: store.overdue_sample) and the parked owners' lines in the
  records table (chalicelib/fairness.py).

Each operator action is a guarded write by `operator <id>`, so the task's history shows who.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from chalicelib import aws, bulk, reruns, tallies, timefmt
from chalicelib.errors import TaskNotFound, TransitionRefused
from chalicelib.fairness import OWNER, Gate, Slots
from chalicelib.model import RETRYABLE, Status, Task
from chalicelib.pools import Pools, pool_queue_url
from chalicelib.queues import DeliveryMessage, TaskMessage
from chalicelib.service import TaskService
from chalicelib.store import (
    BY_CREATED,
    BY_OWNER,
    DEADLINE_SHARDS,
    task_from_item,
)

MAX_QUERIES_PER_PARTITION = 4  # per shard and page: a filter that matches little stops early
MAX_STATUS_ROUNDS = 4  # pages of by_created's candidates read for one page of a status
MAX_STUCK = 50  # of each kind of stuck work
MAX_DEAD_LETTERS = 50  # shown per queue
PEEK_HOLD_SECONDS = 30  # dead letters are held this long at most while they are read
FIND_RECEIVES = 10  # receives (of 10) to find one dead letter by its id
# How long an action waits for a dead letter that someone else's read holds (another page's
# peek lets go at once; one whose request died holds it for PEEK_HOLD_SECONDS at most).
TAKE_WAIT_SECONDS = 10


def operator_name(operator_id: str) -> str:
    """The writer a task's history names for an operator's action."""
    return f"operator {operator_id}"


# -- tasks across owners -------------------------------------------------------------------


@dataclass(frozen=True)
class TaskFilter:
    owner: str | None = None
    type: str | None = None
    status: Status | None = None
    pool: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class TaskPage:
    tasks: list[Task]
    next_key: tuple[str, str] | None  # (created_at, id): the next page starts below it


def _iso(moment: datetime) -> str:
    return timefmt.item(moment)  # as the index's created_at is stored


def _partitions(wanted: TaskFilter) -> list[tuple[str, str, str]]:
    """(index, key attribute, key value) of each partition the listing reads."""
    if wanted.owner is not None:
        return [(BY_OWNER, "owner", wanted.owner)]
    return [(BY_CREATED, "created_shard", shard) for shard in DEADLINE_SHARDS]


def _query(
    table: str,
    partition: tuple[str, str, str],
    wanted: TaskFilter,
    now: datetime,
    below: tuple[str, str] | None,
) -> dict[str, Any]:
    index, key_name, key_value = partition
    names = {"#k": key_name}
    values: dict[str, Any] = {":k": {"S": key_value}, ":now": {"N": str(int(now.timestamp()))}}
    condition = "#k = :k"
    low = _iso(wanted.since) if wanted.since else None
    high = _iso(wanted.until) if wanted.until else None
    if below is not None:
        high = min(high, below[0]) if high else below[0]
    if low and high:
        values.update({":low": {"S": low}, ":high": {"S": high}})
        condition += " AND created_at BETWEEN :low AND :high"
    elif low:
        values[":low"] = {"S": low}
        condition += " AND created_at >= :low"
    elif high:
        values[":high"] = {"S": high}
        condition += " AND created_at <= :high"
    filters = ["expires_at > :now"]
    for name, value in (
        ("status", wanted.status.value if wanted.status else None),
        ("pool", wanted.pool),
        ("type", wanted.type),
    ):
        if value is not None:
            names[f"#{name}"] = name
            values[f":{name}"] = {"S": value}
            filters.append(f"#{name} = :{name}")
    return {
        "TableName": table,
        "IndexName": index,
        "KeyConditionExpression": condition,
        "FilterExpression": " AND ".join(filters),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
        "ScanIndexForward": False,
    }


def _key_of(item: dict[str, Any]) -> tuple[str, str]:
    return (item["created_at"]["S"], item["id"]["S"])


def _read_partition(
    request: dict[str, Any], limit: int, below: tuple[str, str] | None
) -> tuple[list[dict[str, Any]], tuple[str, str] | None]:
    """Up to `limit` matching items below `below`, newest first, and where reading stopped
    short of the partition's end with fewer than `limit` (None: nothing above it unread)."""
    ddb = aws.client("dynamodb")
    found: list[dict[str, Any]] = []
    request = {**request, "Limit": limit}
    for _ in range(MAX_QUERIES_PER_PARTITION):
        response = ddb.query(**request)
        found += [i for i in response.get("Items", []) if below is None or _key_of(i) < below]
        last = response.get("LastEvaluatedKey")
        if last is None or len(found) >= limit:
            return found[:limit], None
        request["ExclusiveStartKey"] = last
        request["Limit"] = min(1000, request["Limit"] * 4)
    return found, (last["created_at"]["S"], last["id"]["S"])


def list_tasks(
    table: str, wanted: TaskFilter, now: datetime, limit: int, below: tuple[str, str] | None
) -> TaskPage:
    """Tasks across owners, newest first, `limit` a page; `below`: the previous page's key."""
    if wanted.owner is not None:  # by_owner projects whole tasks
        items, next_key = _candidates(table, wanted, now, limit, below)
        return TaskPage([task_from_item(item) for item in items], next_key)
    tasks: list[Task] = []
    next_key = below
    for _ in range(MAX_STATUS_ROUNDS):
        keys, next_key = _candidates(
            table, replace(wanted, status=None), now, limit - len(tasks), next_key
        )
        tasks += [
            task
            for task in _whole_tasks(table, keys)
            if wanted.status is None or task.status is wanted.status
        ]
        if next_key is None or len(tasks) >= limit:
            break
    return TaskPage(tasks, next_key)


def _whole_tasks(table: str, entries: list[dict[str, Any]]) -> list[Task]:
    """The tasks of by_created's entries, in their order: one BatchGetItem (a task gone
    since the Query is left out)."""
    keys = [{"id": entry["id"]} for entry in entries]
    found = {item["id"]["S"]: item for item in bulk.get_items(table, keys)}
    return [task_from_item(found[key["id"]["S"]]) for key in keys if key["id"]["S"] in found]


def _candidates(
    table: str, wanted: TaskFilter, now: datetime, limit: int, below: tuple[str, str] | None
) -> tuple[list[dict[str, Any]], tuple[str, str] | None]:
    """Up to `limit` index entries that match, newest first, and the key the next page
    starts below (None: nothing more)."""
    items: list[dict[str, Any]] = []
    boundary: tuple[str, str] | None = None  # no item below this was read in some partition
    for partition in _partitions(wanted):
        found, stopped = _read_partition(_query(table, partition, wanted, now, below), limit, below)
        items += found
        if stopped is not None:
            boundary = max(boundary, stopped) if boundary else stopped
    items.sort(key=_key_of, reverse=True)
    if boundary is not None:
        items = [item for item in items if _key_of(item) >= boundary]
    page = items[:limit]
    if len(page) == limit:
        next_key: tuple[str, str] | None = _key_of(page[-1])
    else:
        next_key = boundary
    return page, next_key


# -- queues --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Queue:
    name: str  # as the console shows it: tasks, tasks-dlq, webhooks-dlq, pool-<name>, ...
    url: str
    dead_letters: bool = False  # its messages are ones that gave up: the console acts on them
    source: str | None = None  # the queue a redriven message goes back to


@dataclass(frozen=True)
class QueueDepth:
    queue: Queue
    visible: int | None  # None: the queue does not exist
    in_flight: int | None
    delayed: int | None
    # The oldest message's age: a dead-letter queue's from a peek (sent when); another's as
    # CloudWatch last saw it (`oldest_ages`), None when unknown or empty.
    oldest_seconds: int | None = None


def _sibling(url: str, name: str) -> str:
    return f"{url.rpartition('/')[0]}/{name}"


def queues(tasks_queue_url: str, webhooks_queue_url: str, pools: Iterable[str]) -> list[Queue]:
    """The service's queues, named as infra/resources.json names them beside the tasks queue."""
    stack = tasks_queue_url.rpartition("/")[2].removesuffix("-tasks")
    found = [
        Queue("tasks", tasks_queue_url),
        Queue("tasks-dlq", _sibling(tasks_queue_url, f"{stack}-tasks-dlq"), True, "tasks"),
    ]
    if webhooks_queue_url:
        webhooks_dlq = webhooks_queue_url + "-dlq"
        found += [
            Queue("webhooks", webhooks_queue_url),
            Queue("webhooks-dlq", webhooks_dlq, True, "webhooks"),
        ]
    found.append(
        Queue("stream-failures", _sibling(tasks_queue_url, f"{stack}-stream-failures"), True)
    )
    for pool in pools:
        url = pool_queue_url(tasks_queue_url, pool)
        found += [
            Queue(f"pool-{pool}", url),
            Queue(f"pool-{pool}-dlq", url + "-dlq", True, f"pool-{pool}"),
        ]
    return found


def service_queues(service: TaskService) -> list[Queue]:
    settings = service.settings
    pools = Pools.from_environment().names
    return queues(settings.tasks_queue_url, settings.webhooks_queue_url, pools)


def _missing_queue(exc: ClientError) -> bool:
    code = exc.response["Error"]["Code"]
    return code in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")


def depth(queue: Queue) -> QueueDepth:
    """One GetQueueAttributes (and for a dead-letter queue a peek, for its oldest message)."""
    try:
        attributes = aws.client("sqs").get_queue_attributes(
            QueueUrl=queue.url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
    except ClientError as exc:
        if _missing_queue(exc):
            return QueueDepth(queue, None, None, None)
        raise
    visible = int(attributes.get("ApproximateNumberOfMessages", 0))
    oldest = None
    if queue.dead_letters and visible:
        sent = [letter.sent_at for letter in peek(queue, limit=10)]
        if sent:
            oldest = int(datetime.now(UTC).timestamp() - min(sent).timestamp())
    return QueueDepth(
        queue,
        visible,
        int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
        int(attributes.get("ApproximateNumberOfMessagesDelayed", 0)),
        oldest,
    )


OLDEST_AGE = "ApproximateAgeOfOldestMessage"
OLDEST_LOOKBACK_SECONDS = 600


def depths(queues: Iterable[Queue]) -> list[QueueDepth]:
    """Every queue's depth, and each main queue's oldest message as CloudWatch last saw it."""
    found = [depth(queue) for queue in queues]
    ages = oldest_ages([d.queue for d in found if not d.queue.dead_letters and d.visible])
    return [replace(d, oldest_seconds=ages.get(d.queue.name, d.oldest_seconds)) for d in found]


def oldest_ages(queues: list[Queue]) -> dict[str, int]:
    """The age of each queue's oldest message, by the queue's console name: SQS publishes it
    only to CloudWatch (`AWS/SQS` ApproximateAgeOfOldestMessage, each minute; no SQS call
    answers it), so one GetMetricData for them all, the latest minute of the last ten. A
    queue with no data point yet (an emulator, a queue just made) is left out, and so are
    all of them when CloudWatch refuses (a role without cloudwatch:GetMetricData): the
    console shows the rest."""
    if not queues:
        return {}
    now = datetime.now(UTC)
    queries = [
        {
            "Id": f"q{index}",
            "MetricStat": {
                "Metric": {
                    "Namespace": "AWS/SQS",
                    "MetricName": OLDEST_AGE,
                    "Dimensions": [{"Name": "QueueName", "Value": q.url.rpartition("/")[2]}],
                },
                "Period": 60,
                "Stat": "Maximum",
            },
            "ReturnData": True,
        }
        for index, q in enumerate(queues)
    ]
    try:
        results = aws.client("cloudwatch").get_metric_data(
            MetricDataQueries=queries,
            StartTime=datetime.fromtimestamp(now.timestamp() - OLDEST_LOOKBACK_SECONDS, UTC),
            EndTime=now,
            ScanBy="TimestampDescending",
        )["MetricDataResults"]
    except ClientError:
        return {}
    ages: dict[str, int] = {}
    for result in results:
        index = int(result["Id"][1:])
        if result.get("Values"):
            ages[queues[index].name] = int(result["Values"][0])
    return ages


# -- dead letters ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    queue: str
    sent_at: datetime
    receives: int
    body: str
    task_id: str | None = None  # the task a tasks, pool or webhook message is about
    task: Task | None = field(default=None, compare=False)


def task_id_of(body: str) -> str | None:
    """The task a message of the service's own queues names; None for any other body."""
    for kind in (TaskMessage, DeliveryMessage):
        try:
            return kind.from_json(body).taskId
        except (ValueError, TypeError):
            continue
    return None


def _letter(queue: Queue, message: dict[str, Any]) -> DeadLetter:
    attributes = message.get("Attributes", {})
    sent = int(attributes.get("SentTimestamp", "0")) / 1000
    return DeadLetter(
        message_id=message["MessageId"],
        queue=queue.name,
        sent_at=datetime.fromtimestamp(sent, UTC),
        receives=int(attributes.get("ApproximateReceiveCount", "0")),
        body=message["Body"],
        task_id=task_id_of(message["Body"]),
    )


def _receive(queue: Queue, wait_seconds: int = 0) -> list[dict[str, Any]]:
    response = aws.client("sqs").receive_message(
        QueueUrl=queue.url,
        MaxNumberOfMessages=10,
        VisibilityTimeout=PEEK_HOLD_SECONDS,
        WaitTimeSeconds=wait_seconds,
        AttributeNames=["All"],
    )
    messages: list[dict[str, Any]] = response.get("Messages", [])
    return messages


def _let_go(queue: Queue, messages: Iterable[dict[str, Any]]) -> None:
    """Make held messages visible again at once."""
    sqs = aws.client("sqs")
    for message in messages:
        try:
            sqs.change_message_visibility(
                QueueUrl=queue.url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
        except ClientError:
            continue  # deleted meanwhile (the tasks DLQ's handler): nothing to let go


def peek(queue: Queue, limit: int = MAX_DEAD_LETTERS) -> list[DeadLetter]:
    """Up to `limit` of a dead-letter queue's messages, held while read and let go at once."""
    held: list[dict[str, Any]] = []
    seen: set[str] = set()
    try:
        while len(held) < limit:
            batch = [m for m in _receive(queue) if m["MessageId"] not in seen]
            if not batch:
                break
            held += batch
            seen.update(m["MessageId"] for m in batch)
    except ClientError as exc:
        if _missing_queue(exc):
            return []
        raise
    finally:
        _let_go(queue, held)
    return sorted((_letter(queue, m) for m in held[:limit]), key=lambda d: d.sent_at)


def with_tasks(service: TaskService, letters: list[DeadLetter]) -> list[DeadLetter]:
    """Each letter with its task (one GetItem per task named)."""
    tasks: dict[str, Task | None] = {}
    for letter in letters:
        if letter.task_id and letter.task_id not in tasks:
            tasks[letter.task_id] = service.find(letter.task_id)
    return [replace(letter, task=tasks.get(letter.task_id or "")) for letter in letters]


class DeadLetterNotFound(LookupError):
    """No message of that id is in the queue (handled by someone else, or never there)."""


def _take(queue: Queue, message_id: str) -> dict[str, Any]:
    """The message with this id, held for the action; every other one is let go.

    A message another read holds (an operator's page listing the queue at that moment) is
    invisible: while the queue has more messages in flight than this call holds, it waits
    for them, up to TAKE_WAIT_SECONDS, before saying the message is gone."""
    others: list[dict[str, Any]] = []
    ends = time.monotonic() + TAKE_WAIT_SECONDS
    wait, was_held = 0, False
    try:
        for _ in range(FIND_RECEIVES + TAKE_WAIT_SECONDS + 1):  # pages, then 1 s waits
            batch = _receive(queue, wait)
            for message in batch:
                if message["MessageId"] == message_id:
                    return message
                others.append(message)
            if batch:
                wait = 0
                continue
            held = time.monotonic() < ends and _held_elsewhere(queue, len(others))
            if not held and not was_held:
                break
            # held: wait for it; a hold that just ended: its message is visible, receive it
            wait, was_held = (1 if held else 0), held
    finally:
        _let_go(queue, others)
    raise DeadLetterNotFound(message_id)


def _held_elsewhere(queue: Queue, held_here: int) -> bool:
    attributes = aws.client("sqs").get_queue_attributes(
        QueueUrl=queue.url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes.get("ApproximateNumberOfMessagesNotVisible", "0")) > held_here


@dataclass(frozen=True)
class Outcome:
    message_id: str
    action: str  # retried, requeued, released, discarded
    task_id: str | None = None


def redrive(service: TaskService, queue: Queue, message_id: str, operator_id: str) -> Outcome:
    """Give a dead letter another go.

    A task message whose task failed (or was cancelled) retries the task, by the operator:
    the stream queues it as a new run. Any other message of a queue with a source goes back
    to that queue as it is; a stream failure is made visible to its handler now.
    """
    message = _take(queue, message_id)
    sqs = aws.client("sqs")
    task_id = task_id_of(message["Body"])
    if queue.source is None:
        _let_go(queue, [message])
        return Outcome(message_id, "released", task_id)
    task = service.find(task_id) if task_id and queue.name != "webhooks-dlq" else None
    if task is not None and task.status in RETRYABLE:
        _retry(service, task, operator_id)
        action = "retried"
    else:
        source = next(q for q in service_queues(service) if q.name == queue.source)
        sqs.send_message(QueueUrl=source.url, MessageBody=message["Body"])
        action = "requeued"
    sqs.delete_message(QueueUrl=queue.url, ReceiptHandle=message["ReceiptHandle"])
    return Outcome(message_id, action, task_id)


def discard(service: TaskService, queue: Queue, message_id: str, operator_id: str) -> Outcome:
    """Delete a dead letter. A task message's task that has not finished is failed by the
    operator, so that nothing waits on a message that will never come."""
    message = _take(queue, message_id)
    task_id = task_id_of(message["Body"])
    if task_id and queue.name != "webhooks-dlq":
        service.fail(
            task_id,
            f"its message was discarded from {queue.name} by {operator_name(operator_id)}",
            by=operator_name(operator_id),
        )
    aws.client("sqs").delete_message(QueueUrl=queue.url, ReceiptHandle=message["ReceiptHandle"])
    return Outcome(message_id, "discarded", task_id)


def _retry(service: TaskService, task: Task, operator_id: str) -> Task:
    retried, _ = reruns.retry(service, task.owner, task.id, by=operator_name(operator_id))
    return retried


# -- operator actions on a task ------------------------------------------------------------


def cancel(service: TaskService, task_id: str, operator_id: str) -> Task:
    """Cancel any owner's unfinished task; TaskNotFound, TransitionRefused as a user's cancel."""
    task = service.find(task_id)
    if task is None:
        raise TaskNotFound(task_id)
    return service.cancel(task.owner, task_id, by=operator_name(operator_id))


def retry(service: TaskService, task_id: str, operator_id: str) -> Task:
    """Run any owner's failed or cancelled task again."""
    task = service.find(task_id)
    if task is None:
        raise TaskNotFound(task_id)
    if task.status not in RETRYABLE:
        raise TransitionRefused(task_id, task.status.value, Status.SUBMITTED.value)
    return _retry(service, task, operator_id)


# -- stuck work ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stuck:
    task_id: str
    kind: str  # past_deadline, no_heartbeat, parked, scheduled_past
    reason: str
    task: Task | None = None
    owner: str | None = None
    type: str | None = None


def stuck(service: TaskService, limit: int = MAX_STUCK) -> list[Stuck]:
    """Tasks past their deadline (external ones: no heartbeat), parked behind their owner's
    limit, and scheduled ones whose time has passed; at most `limit` of each kind."""
    now = service.clock()
    return [*_overdue(service, now, limit), *_parked(service, limit), *_late(service, now, limit)]


def _overdue(service: TaskService, now: datetime, limit: int) -> list[Stuck]:
    found = []
    for overdue in service.store.overdue_sample(now, limit):
        task = service.find(overdue.id)
        if task is None or task.is_terminal or task.status is Status.SCHEDULED:
            continue  # ended since, or the sweep's (below)
        since = task.updated_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        if task.is_external:
            kind, reason = "no_heartbeat", f"its producer has not reported since {since}"
        else:
            kind, reason = "past_deadline", f"{task.status.value} since {since}, past its deadline"
        found.append(Stuck(task.id, kind, reason, task, task.owner, task.type))
    return found


def _parked(service: TaskService, limit: int) -> list[Stuck]:
    """Tasks waiting in a line for a slot (chalicelib/fairness.py), with the gate they wait for."""
    slots = service.slots
    found: list[Stuck] = []
    for gate, _ in slots.parked_gates():
        reason = _parked_reason(slots, gate)
        for parked in slots.parked(gate, limit - len(found)):
            found.append(Stuck(parked.task_id, "parked", reason, None, parked.owner, parked.type))
        if len(found) >= limit:
            break
    return found


def _parked_reason(slots: Slots, gate: Gate) -> str:
    if gate.limit <= 0:
        return "waits for the reaper's next minute to queue it (no limit is set)"
    running = len(slots.holders(gate))
    if gate.kind == OWNER:
        owner = _owner_of_scope(gate.scope)
        return f"waits for a slot: {owner} runs {running} of MAX_RUNNING_PER_OWNER={gate.limit}"
    return f"waits for a slot ({gate.reason} {gate.scope}): {running} of {gate.limit} running"


def _owner_of_scope(scope: str) -> str:
    length, _, rest = scope.partition(":")
    return rest[: int(length)] if length.isdigit() else scope


def _late(service: TaskService, now: datetime, limit: int) -> list[Stuck]:
    found = []
    for due in service.store.due_sample(now, limit):
        task = service.find(due.id)
        if task is None or task.status is not Status.SCHEDULED:
            continue
        when = task.run_at.strftime("%Y-%m-%dT%H:%M:%SZ") if task.run_at else "?"
        reason = f"scheduled for {when}, not started yet"
        found.append(Stuck(task.id, "scheduled_past", reason, task, task.owner, task.type))
    return found


# -- usage per owner and latency per type (chalicelib/tallies.py) ----------------------------

MAX_OWNERS = 50  # the busiest owners of the day
MAX_PARKED_COUNTED = 1000  # an owner's parked tasks counted at most


@dataclass(frozen=True)
class OwnerUsage:
    owner: str
    hour: dict[str, int]  # submitted, completed, failed over the last hour (estimated)
    day: dict[str, int]  # the same over the last day
    running: int | None  # tasks holding a slot now; None when no limit is set
    parked: int  # tasks waiting for a slot now


@dataclass(frozen=True)
class TypeLatency:
    type: str
    window: str  # hour or day
    started: int
    wait_p50: float | None  # seconds from submit (or run_at) to start
    wait_p95: float | None
    finished: int
    run_p50: float | None  # seconds from start to end
    run_p95: float | None


def read_tallies(service: TaskService) -> tuple[datetime, dict[str, list[dict[str, Any]]]]:
    now = service.clock()
    return now, tallies.read_hours(service.settings.records_table, now, 24)


def usage(
    service: TaskService, read: tuple[datetime, dict[str, list[dict[str, Any]]]]
) -> list[OwnerUsage]:
    """The busiest owners of the day (and any with parked tasks): their counts and load now."""
    now, hours = read
    per_owner = tallies.windows(hours, now, "owner")
    slots = service.slots
    parked: Counter[str] = Counter()
    for gate, _ in slots.parked_gates():
        parked.update(p.owner for p in slots.parked(gate, MAX_PARKED_COUNTED))
    owners = sorted(set(per_owner) | set(parked), key=lambda o: (-per_owner[o].day["s"], o))

    def counts(window: dict[str, float]) -> dict[str, int]:
        return {name: round(window.get(code, 0)) for code, name in tallies.COUNTS.items()}

    return [
        OwnerUsage(
            owner,
            counts(per_owner[owner].hour),
            counts(per_owner[owner].day),
            len(slots.holders(owner)) if slots.limit > 0 else None,
            parked.get(owner, 0),
        )
        for owner in owners[:MAX_OWNERS]
    ]


def latency(read: tuple[datetime, dict[str, list[dict[str, Any]]]]) -> list[TypeLatency]:
    """Submit-to-start and run time p50/p95 per type over the last hour and day."""
    now, hours = read
    found = []
    for task_type, window in sorted(tallies.windows(hours, now, "type").items()):
        for name, counts in (("hour", window.hour), ("day", window.day)):
            found.append(
                TypeLatency(
                    task_type,
                    name,
                    round(tallies.total(counts, "w")),
                    tallies.quantile(counts, "w", 0.5),
                    tallies.quantile(counts, "w", 0.95),
                    round(tallies.total(counts, "r")),
                    tallies.quantile(counts, "r", 0.5),
                    tallies.quantile(counts, "r", 0.95),
                )
            )
    return found


@dataclass(frozen=True)
class HostHealth:
    host: str
    hour: dict[str, int]  # attempts, failed, exhausted over the last hour (estimated)
    day: dict[str, int]
    last_error: str | None
    last_error_at: str | None

    @property
    def failure_rate(self) -> float | None:
        """The day's failed share of attempts; None without any."""
        attempts = self.day["attempts"]
        return round(self.day["failed"] / attempts, 3) if attempts else None


HOST_COUNTS = {"a": "attempts", "x": "failed", "e": "exhausted"}


def webhook_hosts(read: tuple[datetime, dict[str, list[dict[str, Any]]]]) -> list[HostHealth]:
    """Webhook health per receiving host, the most failing first."""
    now, hours = read
    errors = tallies.last_errors(hours)

    def counts(window: dict[str, float]) -> dict[str, int]:
        return {name: round(window.get(code, 0)) for code, name in HOST_COUNTS.items()}

    found = [
        HostHealth(host, counts(w.hour), counts(w.day), *errors.get(host, (None, None)))
        for host, w in tallies.windows(hours, now, "host").items()
    ]
    return sorted(found, key=lambda h: (-h.day["failed"], h.host))
