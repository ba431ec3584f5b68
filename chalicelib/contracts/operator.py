"""The operator's console over REST: `/ops/...` and `GET /metrics` (handlers and models).

Only an operator reaches these (chalicelib/edge/middleware.py asks for the `operator` scope:
a JWT carrying OPERATOR_SCOPE, or a service key issued with SCOPES=operator); every other
credential is a 403. What they read and how, without a Scan: chalicelib/console.py.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

from chalice.app import Request, Response

from chalicelib import console, timefmt
from chalicelib.edge import http
from chalicelib.edge.http_errors import BadRequest, Conflict, NotFound
from chalicelib.errors import TaskNotFound, TransitionRefused
from chalicelib.model import Status, Task
from chalicelib.pools import POOL_NAME, POOL_NAME_RULE
from chalicelib.service import TaskService
from chalicelib.validation import Schema

if TYPE_CHECKING:
    from chalicelib.bootstrap import Container

MESSAGE_ID = re.compile(r"^[A-Za-z0-9-]{1,100}$")
MAX_OWNER_LENGTH = 256
MAX_TYPE_LENGTH = 128
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


# -- models (the OpenAPI document's) -----------------------------------------------------


class OpsTask(Schema):
    id: str
    owner: str
    type: str
    status: Status
    pool: str | None = None
    runner: str
    attempts: int
    createdAt: str
    updatedAt: str
    updatedBy: str | None = None
    error: str | None = None


class OpsTaskList(Schema):
    tasks: list[OpsTask]
    nextCursor: str | None


class OpsQueue(Schema):
    name: str
    deadLetters: bool
    redrivesTo: str | None = None
    exists: bool
    visible: int | None = None
    inFlight: int | None = None
    delayed: int | None = None
    oldestSeconds: int | None = None


class OpsQueueList(Schema):
    queues: list[OpsQueue]


class OpsDeadLetter(Schema):
    messageId: str
    queue: str
    sentAt: str
    receives: int
    body: str
    taskId: str | None = None
    task: OpsTask | None = None


class OpsDeadLetterList(Schema):
    queue: str
    messages: list[OpsDeadLetter]


class OpsOutcome(Schema):
    messageId: str
    action: str
    taskId: str | None = None


class OpsStuck(Schema):
    taskId: str
    kind: str
    reason: str
    owner: str | None = None
    type: str | None = None
    task: OpsTask | None = None


class OpsStuckList(Schema):
    stuck: list[OpsStuck]


class OpsCounts(Schema):
    submitted: int
    completed: int
    failed: int


class OpsOwnerUsage(Schema):
    owner: str
    lastHour: OpsCounts
    lastDay: OpsCounts
    running: int | None = None
    parked: int


class OpsUsage(Schema):
    owners: list[OpsOwnerUsage]


class OpsTypeLatency(Schema):
    type: str
    window: str
    started: int
    waitP50: float | None = None
    waitP95: float | None = None
    finished: int
    runP50: float | None = None
    runP95: float | None = None


class OpsLatency(Schema):
    types: list[OpsTypeLatency]


class OpsHostCounts(Schema):
    attempts: int
    failed: int
    exhausted: int


class OpsHost(Schema):
    host: str
    lastHour: OpsHostCounts
    lastDay: OpsHostCounts
    failureRate: float | None = None
    lastError: str | None = None
    lastErrorAt: str | None = None


class OpsHosts(Schema):
    hosts: list[OpsHost]


# -- views --------------------------------------------------------------------------------


def task_view(task: Task) -> dict[str, Any]:
    view = {
        "id": task.id,
        "owner": task.owner,
        "type": task.type,
        "status": task.status.value,
        "pool": task.pool,
        "runner": task.runner,
        "attempts": task.attempts,
        "createdAt": timefmt.wire(task.created_at),
        "updatedAt": timefmt.wire(task.updated_at),
        "updatedBy": task.updated_by,
        "error": task.error,
    }
    return {name: value for name, value in view.items() if value is not None}


def no_query(request: Request) -> None:
    """A route that takes no query parameter refuses any: a typo is not silently ignored."""
    given = sorted(http.query(request))
    if given:
        raise BadRequest(f"this route takes no query parameter; got {', '.join(given)[:200]}")


def _operator_id(request: Request) -> str:
    return http.current_principal(request).owner


# -- tasks --------------------------------------------------------------------------------

TASK_PARAMS = {"owner", "type", "status", "pool", "since", "until", "limit", "cursor"}


def _moment(name: str, value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise BadRequest(
            f"{name} must be an ISO-8601 time with its zone, such as 2026-12-07T05:00:00Z; "
            f"got {value[:64]!r}"
        )
    return moment


def _text(params: dict[str, str], name: str, limit: int) -> str | None:
    value = params.get(name) or None
    if value is not None and len(value) > limit:
        raise BadRequest(f"{name} must be at most {limit} characters")
    return value


def task_filter(params: dict[str, str]) -> console.TaskFilter:
    unknown = set(params) - TASK_PARAMS
    if unknown:
        raise BadRequest(
            f"unknown query parameter(s): {', '.join(sorted(unknown))}; "
            f"use {', '.join(sorted(TASK_PARAMS))}"
        )
    status = params.get("status") or None
    if status is not None and status not in {s.value for s in Status}:
        allowed = ", ".join(s.value for s in Status)
        raise BadRequest(f"status must be one of {allowed}; got {status[:32]!r}")
    pool = params.get("pool") or None
    if pool is not None and not POOL_NAME.match(pool):
        raise BadRequest(f"pool must be a pool name ({POOL_NAME_RULE}); got {pool[:64]!r}")
    since, until = _moment("since", params.get("since")), _moment("until", params.get("until"))
    if since and until and since > until:
        raise BadRequest("since must not be after until")
    return console.TaskFilter(
        owner=_text(params, "owner", MAX_OWNER_LENGTH),
        type=_text(params, "type", MAX_TYPE_LENGTH),
        status=Status(status) if status else None,
        pool=pool,
        since=since,
        until=until,
    )


def list_tasks(container: Container, request: Request) -> Response:
    service = container.service
    params = http.query(request)
    wanted = task_filter(params)
    scope = "ops-tasks|" + "|".join(
        f"{k}={params.get(k, '')}" for k in sorted(TASK_PARAMS - {"cursor", "limit"})
    )
    page = console.list_tasks(
        service.settings.tasks_table,
        wanted,
        service.clock(),
        http.limit_param(params.get("limit")),
        http.decode_cursor(request, params.get("cursor"), scope),
    )
    return http.json_response(
        {
            "tasks": [task_view(task) for task in page.tasks],
            "nextCursor": http.encode_cursor(request, page.next_key, scope),
        }
    )


def _task_action(request: Request, job_id: str, action: Any) -> Response:
    no_query(request)
    http.task_id_param(job_id)
    try:
        task = action(job_id, _operator_id(request))
    except TaskNotFound:
        raise NotFound(f"job {job_id} was not found") from None
    except TransitionRefused as exc:
        raise Conflict(f"job {job_id} cannot be changed so: {exc}") from None
    return http.json_response(task_view(task))


def cancel_task(container: Container, request: Request, job_id: str) -> Response:
    service = container.service
    return _task_action(request, job_id, lambda i, op: console.cancel(service, i, op))


def retry_task(container: Container, request: Request, job_id: str) -> Response:
    service = container.service
    return _task_action(request, job_id, lambda i, op: console.retry(service, i, op))


# -- queues and dead letters ------------------------------------------------------------


def queue_view(depth: console.QueueDepth) -> dict[str, Any]:
    view = {
        "name": depth.queue.name,
        "deadLetters": depth.queue.dead_letters,
        "redrivesTo": depth.queue.source,
        "exists": depth.visible is not None,
        "visible": depth.visible,
        "inFlight": depth.in_flight,
        "delayed": depth.delayed,
        "oldestSeconds": depth.oldest_seconds,
    }
    return {name: value for name, value in view.items() if value is not None}


def list_queues(container: Container, request: Request) -> Response:
    service = container.service
    no_query(request)
    depths = console.depths(console.service_queues(service))
    return http.json_response({"queues": [queue_view(d) for d in depths]})


def _dead_letter_queue(service: TaskService, name: str) -> console.Queue:
    known = [q for q in console.service_queues(service) if q.dead_letters]
    for queue in known:
        if queue.name == name:
            return queue
    raise NotFound(
        f"{name[:64]!r} is not a dead-letter queue of this service; "
        f"they are: {', '.join(q.name for q in known)}"
    )


def letter_view(letter: console.DeadLetter) -> dict[str, Any]:
    view: dict[str, Any] = {
        "messageId": letter.message_id,
        "queue": letter.queue,
        "sentAt": timefmt.wire(letter.sent_at),
        "receives": letter.receives,
        "body": letter.body[:2048],
    }
    if letter.task_id:
        view["taskId"] = letter.task_id
    if letter.task is not None:
        view["task"] = task_view(letter.task)
    return view


def list_dead_letters(container: Container, request: Request, queue_name: str) -> Response:
    service = container.service
    no_query(request)
    queue = _dead_letter_queue(service, queue_name)
    letters = console.with_tasks(service, console.peek(queue))
    return http.json_response(
        {"queue": queue.name, "messages": [letter_view(letter) for letter in letters]}
    )


def _message_action(
    service: TaskService, request: Request, queue_name: str, message_id: str, action: Any
) -> Response:
    no_query(request)
    queue = _dead_letter_queue(service, queue_name)
    if not MESSAGE_ID.match(message_id):
        raise BadRequest(f"messageId must be an SQS message id; got {message_id[:64]!r}")
    try:
        outcome = action(service, queue, message_id, _operator_id(request))
    except console.DeadLetterNotFound:
        raise NotFound(
            f"message {message_id} is not in {queue.name} (redriven, discarded or expired)"
        ) from None
    except TransitionRefused as exc:
        raise Conflict(f"the message's task could not be retried: {exc}") from None
    body = {"messageId": outcome.message_id, "action": outcome.action, "taskId": outcome.task_id}
    return http.json_response({k: v for k, v in body.items() if v is not None})


def redrive_dead_letter(
    container: Container, request: Request, queue_name: str, message_id: str
) -> Response:
    return _message_action(container.service, request, queue_name, message_id, console.redrive)


def discard_dead_letter(
    container: Container, request: Request, queue_name: str, message_id: str
) -> Response:
    return _message_action(container.service, request, queue_name, message_id, console.discard)


# -- stuck work ------------------------------------------------------------------------------


def stuck_view(item: console.Stuck) -> dict[str, Any]:
    view: dict[str, Any] = {"taskId": item.task_id, "kind": item.kind, "reason": item.reason}
    if item.owner:
        view["owner"] = item.owner
    if item.type:
        view["type"] = item.type
    if item.task is not None:
        view["task"] = task_view(item.task)
    return view


def list_stuck(container: Container, request: Request) -> Response:
    service = container.service
    no_query(request)
    return http.json_response({"stuck": [stuck_view(s) for s in console.stuck(service)]})


# -- usage and latency ---------------------------------------------------------------------


def usage_view(item: console.OwnerUsage) -> dict[str, Any]:
    view: dict[str, Any] = {
        "owner": item.owner,
        "lastHour": item.hour,
        "lastDay": item.day,
        "parked": item.parked,
    }
    if item.running is not None:
        view["running"] = item.running
    return view


def latency_view(item: console.TypeLatency) -> dict[str, Any]:
    view = {
        "type": item.type,
        "window": item.window,
        "started": item.started,
        "waitP50": item.wait_p50,
        "waitP95": item.wait_p95,
        "finished": item.finished,
        "runP50": item.run_p50,
        "runP95": item.run_p95,
    }
    return {name: value for name, value in view.items() if value is not None}


def list_usage(container: Container, request: Request) -> Response:
    service = container.service
    no_query(request)
    usage = console.usage(service, console.read_tallies(service))
    return http.json_response({"owners": [usage_view(u) for u in usage]})


def list_latency(container: Container, request: Request) -> Response:
    service = container.service
    no_query(request)
    latency = console.latency(console.read_tallies(service))
    return http.json_response({"types": [latency_view(t) for t in latency]})


def host_view(item: console.HostHealth) -> dict[str, Any]:
    view = {
        "host": item.host,
        "lastHour": item.hour,
        "lastDay": item.day,
        "failureRate": item.failure_rate,
        "lastError": item.last_error,
        "lastErrorAt": item.last_error_at,
    }
    return {name: value for name, value in view.items() if value is not None}


def list_webhook_hosts(container: Container, request: Request) -> Response:
    service = container.service
    no_query(request)
    hosts = console.webhook_hosts(console.read_tallies(service))
    return http.json_response({"hosts": [host_view(h) for h in hosts]})


# -- metrics ----------------------------------------------------------------------------------

STUCK_KINDS = ("past_deadline", "no_heartbeat", "parked", "scheduled_past")


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _family(name: str, help_text: str) -> list[str]:
    return [f"# TYPE {name} gauge", f"# HELP {name} {help_text}"]


def openmetrics(
    depths: list[console.QueueDepth],
    stuck: list[console.Stuck],
    usage: list[console.OwnerUsage],
    latency: list[console.TypeLatency],
    hosts: list[console.HostHealth],
) -> str:
    """The console's figures in the OpenMetrics text format (Prometheus, Grafana Agent)."""
    found = [d for d in depths if d.visible is not None]
    lines = _family("taskstatus_queue_messages", "Messages in a queue by state (SQS's estimate).")
    for d in found:
        states = {"visible": d.visible, "in_flight": d.in_flight, "delayed": d.delayed}
        for state, value in states.items():
            labels = f'queue="{_label(d.queue.name)}",state="{state}"'
            lines.append(f"taskstatus_queue_messages{{{labels}}} {value}")
    oldest = "taskstatus_queue_oldest_message_age_seconds"
    lines += _family(
        oldest,
        "Age of a queue's oldest message: a dead-letter queue's from its messages, another's "
        "as CloudWatch last saw it (left out until CloudWatch has a figure).",
    )
    for d in found:
        if d.queue.dead_letters or d.oldest_seconds is not None:
            lines.append(f'{oldest}{{queue="{_label(d.queue.name)}"}} {d.oldest_seconds or 0}')
    lines += _family(
        "taskstatus_stuck_tasks", f"Stuck tasks by kind (at most {console.MAX_STUCK} of each)."
    )
    for kind in STUCK_KINDS:
        count = sum(1 for s in stuck if s.kind == kind)
        lines.append(f'taskstatus_stuck_tasks{{kind="{kind}"}} {count}')
    lines += _usage_lines(usage) + _latency_lines(latency) + _host_lines(hosts)
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def _usage_lines(usage: list[console.OwnerUsage]) -> list[str]:
    name = "taskstatus_owner_tasks"
    lines = _family(name, "Tasks an owner submitted, completed and failed, per window.")
    for item in usage:
        for window, counts in (("hour", item.hour), ("day", item.day)):
            for event, count in counts.items():
                labels = f'owner="{_label(item.owner)}",event="{event}",window="{window}"'
                lines.append(f"{name}{{{labels}}} {count}")
    lines += _family("taskstatus_owner_running", "An owner's tasks holding a slot now.")
    lines += [
        f'taskstatus_owner_running{{owner="{_label(u.owner)}"}} {u.running}'
        for u in usage
        if u.running is not None
    ]
    lines += _family("taskstatus_owner_parked", "An owner's tasks waiting for a slot now.")
    lines += [f'taskstatus_owner_parked{{owner="{_label(u.owner)}"}} {u.parked}' for u in usage]
    return lines


def _latency_lines(latency: list[console.TypeLatency]) -> list[str]:
    lines = []
    for name, what, pick in (
        ("taskstatus_wait_seconds", "Submit to start", lambda t: (t.wait_p50, t.wait_p95)),
        ("taskstatus_run_seconds", "Start to end", lambda t: (t.run_p50, t.run_p95)),
    ):
        lines += _family(name, f"{what}, per type and window: a bucket's upper bound.")
        for item in latency:
            for q, value in zip(("0.5", "0.95"), pick(item), strict=True):
                if value is not None:
                    labels = f'type="{_label(item.type)}",window="{item.window}",quantile="{q}"'
                    lines.append(f"{name}{{{labels}}} {value}")
    return lines


def _host_lines(hosts: list[console.HostHealth]) -> list[str]:
    name = "taskstatus_webhook_attempts"
    lines = _family(name, "Webhook attempts per receiving host, by outcome and window.")
    for item in hosts:
        for window, counts in (("hour", item.hour), ("day", item.day)):
            for outcome, count in counts.items():
                labels = f'host="{_label(item.host)}",outcome="{outcome}",window="{window}"'
                lines.append(f"{name}{{{labels}}} {count}")
    return lines


def metrics(container: Container, request: Request) -> Response:
    service = container.service
    no_query(request)
    depths = console.depths(console.service_queues(service))
    read = console.read_tallies(service)
    body = openmetrics(
        depths,
        console.stuck(service),
        console.usage(service, read),
        console.latency(read),
        console.webhook_hosts(read),
    )
    return Response(
        body=body,
        status_code=200,
        headers={"Content-Type": OPENMETRICS},
    )
