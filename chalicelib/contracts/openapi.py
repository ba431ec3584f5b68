"""The OpenAPI 3.1 document, generated from the models the handlers use (contracts/schemas.py).

Each route of app.py is declared once here with its models; a test checks that
the document and the app's routes are the same set.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from chalicelib.contracts import api_keys as k
from chalicelib.contracts import operations as o
from chalicelib.contracts import operator as ops
from chalicelib.contracts import schedules as sc
from chalicelib.contracts import schemas as m
from chalicelib.model import Status

if TYPE_CHECKING:
    from chalicelib.bootstrap import Container

REF = "#/components/schemas/{model}"
ERRORS = m.ErrorBody


@dataclass(frozen=True)
class Param:
    name: str
    where: str  # path | query | header
    schema: dict[str, Any]
    description: str = ""
    required: bool = False


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    responses: dict[int, Any]  # status -> model, [model] (array), or None (no body)
    request: type[BaseModel] | None = None
    params: list[Param] = field(default_factory=list)
    public: bool = False
    tag: str = "jobs"


JOB_ID = Param(
    "jobId",
    "path",
    {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$", "maxLength": 128},
    "a UUID the service gave, or an external job's own id",
    required=True,
)
TASK_ID = Param("task_id", "path", {"type": "string", "maxLength": 128}, required=True)
LIMIT = Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 100})
CURSOR = Param(
    "cursor", "query", {"type": "string", "maxLength": 512}, "nextCursor of the previous page"
)
AUTH_ERRORS = {400: ERRORS, 401: ERRORS}
SCHEDULE_ID = Param(
    "scheduleId", "path", {"type": "string", "pattern": "^sch_[0-9a-f]{32}$"}, required=True
)
QUEUE = Param(
    "queue",
    "path",
    {"type": "string", "maxLength": 64},
    "a dead-letter queue: tasks-dlq, webhooks-dlq, stream-failures, pool-<name>-dlq",
    required=True,
)
MESSAGE_ID = Param(
    "messageId", "path", {"type": "string", "pattern": "^[A-Za-z0-9-]{1,100}$"}, required=True
)
OPERATOR_ERRORS = {**{400: ERRORS, 401: ERRORS}, 403: ERRORS}
DATE_TIME = {"type": "string", "format": "date-time"}
OPENMETRICS = object()  # the body of GET /metrics: OpenMetrics text


def idempotency_key(description: str) -> Param:
    """The `Idempotency-Key` header: one rule for every route that takes it (jobs.py's
    IDEMPOTENCY_KEY_PATTERN), described as the route uses it."""
    schema = {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"}
    return Param("Idempotency-Key", "header", schema, description)


IDEMPOTENCY_KEY = idempotency_key("the same key and request return the same job")
CLAIM_IDEMPOTENCY_KEY = idempotency_key(
    "one per claim, the same on its retries: a retried claim answers the job and lease the "
    "first attempt took (kept for that lease, per service key)"
)
SCHEDULE_IDEMPOTENCY_KEY = idempotency_key(
    "a retried create with the same key and body answers the schedule the first made (200)"
)


OPERATIONS: list[Operation] = [
    Operation("GET", "/health", "Is the service up", {200: m.Health}, public=True, tag="service"),
    Operation("GET", "/openapi.json", "This document", {200: dict}, public=True, tag="service"),
    Operation(
        "GET",
        "/dashboard",
        "The live dashboard: an HTML page whose every data call sends your credentials",
        {200: str},
        public=True,
        tag="service",
    ),
    Operation(
        "GET",
        "/dashboard/session",
        "Who your credential is, and whether it opens the operator's console",
        {200: dict, **AUTH_ERRORS},
        tag="service",
    ),
    Operation(
        "POST",
        "/dashboard/links",
        "A one-time dashboard sign-in link for your credential: open /dashboard<fragment>",
        {201: dict, **AUTH_ERRORS},
        tag="service",
    ),
    Operation(
        "POST",
        "/dashboard/sign-in",
        "Redeem a sign-in link's code, once, for the credential it was made with",
        {200: dict, 400: ERRORS, 404: ERRORS, 413: ERRORS, 415: ERRORS, 422: ERRORS},
        public=True,
        tag="service",
    ),
    Operation(
        "POST",
        "/jobs",
        "Submit a job",
        {
            202: m.JobDocument,
            **AUTH_ERRORS,
            403: ERRORS,
            409: ERRORS,
            413: ERRORS,
            415: ERRORS,
            422: ERRORS,
        },
        request=m.JobRequest,
        params=[IDEMPOTENCY_KEY],
    ),
    Operation(
        "POST",
        "/jobs/batch",
        "Submit up to 100 jobs; each is answered on its own (207)",
        {207: m.BatchResponse, **AUTH_ERRORS, 413: ERRORS, 415: ERRORS, 422: ERRORS},
        request=m.BatchRequest,
    ),
    Operation(
        "GET",
        "/jobs",
        "List your jobs, newest first",
        {200: m.JobList, **AUTH_ERRORS},
        params=[
            Param("status", "query", {"type": "string", "enum": [s.value for s in Status]}),
            Param("type", "query", {"type": "string", "maxLength": 128}),
            LIMIT,
            CURSOR,
        ],
    ),
    Operation(
        "GET",
        "/jobs/{jobId}",
        "Read a job",
        {200: m.JobDocument, 304: None, **AUTH_ERRORS, 404: ERRORS},
        params=[JOB_ID, Param("If-None-Match", "header", {"type": "string"})],
    ),
    Operation(
        "DELETE",
        "/jobs/{jobId}",
        "Cancel a job that has not finished",
        {200: m.JobDocument, **AUTH_ERRORS, 404: ERRORS, 409: ERRORS},
        params=[JOB_ID],
    ),
    Operation(
        "POST",
        "/uploads",
        "A presigned PUT for a new object under your prefix, to use as a job's source",
        {201: m.UploadTicket, **AUTH_ERRORS, 413: ERRORS, 415: ERRORS, 422: ERRORS},
        request=m.UploadRequest,
        tag="objects",
    ),
    Operation(
        "GET",
        "/jobs/{jobId}/deliveries",
        "The job's webhook delivery log",
        {200: m.DeliveryList, **AUTH_ERRORS, 404: ERRORS},
        params=[JOB_ID],
        tag="webhooks",
    ),
    Operation(
        "POST",
        "/jobs/{jobId}/webhook",
        "Send the job's webhook again (same webhook-id)",
        {202: m.Redelivery, **AUTH_ERRORS, 404: ERRORS, 409: ERRORS, 429: ERRORS},
        params=[JOB_ID],
        tag="webhooks",
    ),
    Operation(
        "GET",
        "/jobs/{jobId}/events",
        "The job's history: one entry per version, oldest first, with who wrote it",
        {200: o.JobEventList, **AUTH_ERRORS, 404: ERRORS},
        params=[JOB_ID, LIMIT, CURSOR],
        tag="operations",
    ),
    Operation(
        "POST",
        "/jobs/{jobId}/retry",
        "Run a failed or cancelled job again under the same id (attempts reset)",
        {202: m.JobDocument, **AUTH_ERRORS, 404: ERRORS, 409: ERRORS, 422: ERRORS},
        params=[JOB_ID, IDEMPOTENCY_KEY],
        tag="operations",
    ),
    Operation(
        "POST",
        "/jobs/{jobId}/report",
        "A producer reports on its external job: status, progress, result, error, output "
        "(needs jobs:report; a repeat writes nothing)",
        {
            200: m.JobDocument,
            **AUTH_ERRORS,
            403: ERRORS,
            404: ERRORS,
            409: ERRORS,
            412: ERRORS,
            415: ERRORS,
            422: ERRORS,
        },
        request=m.ReportRequest,
        params=[
            JOB_ID,
            Param("If-Match", "header", {"type": "string"}, "report only if still this ETag"),
        ],
        tag="producers",
    ),
    Operation(
        "POST",
        "/jobs/{jobId}/heartbeat",
        "A producer's external job is alive: moves its deadline, answers whether it was "
        "cancelled (needs jobs:report)",
        {200: m.HeartbeatAnswer, **AUTH_ERRORS, 403: ERRORS, 404: ERRORS, 409: ERRORS},
        params=[JOB_ID],
        tag="producers",
    ),
    Operation(
        "POST",
        "/pools/{pool}/claim",
        "A remote worker takes its pool's next job under a lease, or 204 after waitSeconds "
        "(a service key issued with that pool only)",
        {200: m.ClaimAnswer, 204: None, **AUTH_ERRORS, 403: ERRORS, 404: ERRORS, 422: ERRORS},
        params=[
            Param(
                "pool",
                "path",
                {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,31}$"},
                required=True,
            ),
            Param(
                "waitSeconds",
                "query",
                {"type": "number", "minimum": 0, "maximum": 20},
                "how long to wait for a job (default and most: 20)",
            ),
            CLAIM_IDEMPOTENCY_KEY,
        ],
        tag="workers",
    ),
    Operation(
        "POST",
        "/jobs/{jobId}/release",
        "A remote worker hands a pool job back under its lease: retrying, claimable at once",
        {
            200: m.JobDocument,
            **AUTH_ERRORS,
            403: ERRORS,
            404: ERRORS,
            409: ERRORS,
            415: ERRORS,
            422: ERRORS,
        },
        request=m.LeaseRequest,
        params=[JOB_ID],
        tag="workers",
    ),
    Operation(
        "POST",
        "/jobs/redrive",
        "Retry your failed or cancelled jobs in bulk (at most 1,000 a call; dryRun counts)",
        {200: o.BulkResult, 202: o.BulkResult, **AUTH_ERRORS, 415: ERRORS, 422: ERRORS},
        request=o.RedriveRequest,
        tag="operations",
    ),
    Operation(
        "POST",
        "/jobs/cancel",
        "Cancel your unfinished jobs in bulk (at most 1,000 a call; dryRun counts)",
        {200: o.BulkResult, **AUTH_ERRORS, 415: ERRORS, 422: ERRORS},
        request=o.BulkCancelRequest,
        tag="operations",
    ),
    Operation(
        "GET",
        "/webhooks/secret",
        "Your webhook signing secret (needs jobs:write): verify your deliveries with it",
        {200: m.WebhookSecrets, **AUTH_ERRORS, 403: ERRORS},
        tag="webhooks",
    ),
    Operation(
        "POST",
        "/schedules",
        "Create a schedule: a cron or rate that creates one job per fire time",
        {
            200: sc.ScheduleDocument,
            201: sc.ScheduleDocument,
            **AUTH_ERRORS,
            403: ERRORS,
            409: ERRORS,
            422: ERRORS,
        },
        request=sc.ScheduleRequest,
        params=[SCHEDULE_IDEMPOTENCY_KEY],
        tag="schedules",
    ),
    Operation(
        "GET",
        "/schedules",
        "Your schedules, with their next runs and last outcomes",
        {200: sc.ScheduleList, **AUTH_ERRORS, 403: ERRORS},
        tag="schedules",
    ),
    Operation(
        "GET",
        "/schedules/{scheduleId}",
        "One of your schedules",
        {200: sc.ScheduleDocument, **AUTH_ERRORS, 403: ERRORS, 404: ERRORS},
        params=[SCHEDULE_ID],
        tag="schedules",
    ),
    Operation(
        "PATCH",
        "/schedules/{scheduleId}",
        "Change a schedule (pause, resume, new cron or rate, ...); a resume does not catch up",
        {
            200: sc.ScheduleDocument,
            **AUTH_ERRORS,
            403: ERRORS,
            404: ERRORS,
            409: ERRORS,
            422: ERRORS,
        },
        request=sc.SchedulePatch,
        params=[SCHEDULE_ID],
        tag="schedules",
    ),
    Operation(
        "DELETE",
        "/schedules/{scheduleId}",
        "Delete a schedule; the jobs it created stay",
        {204: None, **AUTH_ERRORS, 403: ERRORS, 404: ERRORS},
        params=[SCHEDULE_ID],
        tag="schedules",
    ),
    Operation(
        "POST",
        "/api-keys",
        "Create an API key for yourself (JWT only); the key is shown once",
        {201: k.CreatedApiKey, **AUTH_ERRORS, 403: ERRORS, 422: ERRORS},
        request=k.NewApiKey,
        tag="api keys",
    ),
    Operation(
        "GET",
        "/api-keys",
        "Your API keys (JWT only), without the keys themselves",
        {200: k.ApiKeyList, **AUTH_ERRORS, 403: ERRORS},
        tag="api keys",
    ),
    Operation(
        "DELETE",
        "/api-keys/{keyId}",
        "Revoke one of your API keys (JWT only)",
        {204: None, **AUTH_ERRORS, 403: ERRORS, 404: ERRORS},
        params=[
            Param(
                "keyId", "path", {"type": "string", "pattern": "^ak_[0-9a-f]{32}$"}, required=True
            )
        ],
        tag="api keys",
    ),
    Operation(
        "GET",
        "/ops/tasks",
        "Operator: every owner's jobs, newest first, by owner, type, status, pool and time",
        {200: ops.OpsTaskList, **OPERATOR_ERRORS},
        params=[
            Param("owner", "query", {"type": "string", "maxLength": 256}),
            Param("type", "query", {"type": "string", "maxLength": 128}),
            Param("status", "query", {"type": "string", "enum": [s.value for s in Status]}),
            Param("pool", "query", {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,31}$"}),
            Param(
                "since", "query", {"type": "string", "format": "date-time"}, "created at or after"
            ),
            Param(
                "until", "query", {"type": "string", "format": "date-time"}, "created at or before"
            ),
            LIMIT,
            CURSOR,
        ],
        tag="operator",
    ),
    Operation(
        "POST",
        "/ops/tasks/{jobId}/cancel",
        "Operator: cancel any owner's unfinished job (its history says by operator <id>)",
        {200: ops.OpsTask, **OPERATOR_ERRORS, 404: ERRORS, 409: ERRORS},
        params=[JOB_ID],
        tag="operator",
    ),
    Operation(
        "POST",
        "/ops/tasks/{jobId}/retry",
        "Operator: run any owner's failed or cancelled job again",
        {200: ops.OpsTask, **OPERATOR_ERRORS, 404: ERRORS, 409: ERRORS},
        params=[JOB_ID],
        tag="operator",
    ),
    Operation(
        "GET",
        "/ops/queues",
        "Operator: each queue's depth, messages in flight and delayed, and the age of its "
        "oldest message (a dead-letter queue's from its messages, another's from CloudWatch)",
        {200: ops.OpsQueueList, **OPERATOR_ERRORS},
        tag="operator",
    ),
    Operation(
        "GET",
        "/ops/queues/{queue}/messages",
        "Operator: a dead-letter queue's messages (up to 50), each with its job",
        {200: ops.OpsDeadLetterList, **OPERATOR_ERRORS, 404: ERRORS},
        params=[QUEUE],
        tag="operator",
    ),
    Operation(
        "POST",
        "/ops/queues/{queue}/messages/{messageId}/redrive",
        "Operator: a dead letter's failed job runs again, or the message goes back to its queue",
        {200: ops.OpsOutcome, **OPERATOR_ERRORS, 404: ERRORS, 409: ERRORS},
        params=[QUEUE, MESSAGE_ID],
        tag="operator",
    ),
    Operation(
        "DELETE",
        "/ops/queues/{queue}/messages/{messageId}",
        "Operator: discard a dead letter (its job, if unfinished, is failed)",
        {200: ops.OpsOutcome, **OPERATOR_ERRORS, 404: ERRORS},
        params=[QUEUE, MESSAGE_ID],
        tag="operator",
    ),
    Operation(
        "GET",
        "/ops/stuck",
        "Operator: jobs past their deadline, without a heartbeat, parked behind a limit, "
        "or scheduled in the past, each with why",
        {200: ops.OpsStuckList, **OPERATOR_ERRORS},
        tag="operator",
    ),
    Operation(
        "GET",
        "/ops/usage",
        "Operator: per owner, jobs submitted, completed and failed over the last hour and "
        "day, running and parked now (the day's busiest 50)",
        {200: ops.OpsUsage, **OPERATOR_ERRORS},
        tag="operator",
    ),
    Operation(
        "GET",
        "/ops/latency",
        "Operator: per type, submit-to-start and run time p50/p95 over the last hour and day",
        {200: ops.OpsLatency, **OPERATOR_ERRORS},
        tag="operator",
    ),
    Operation(
        "GET",
        "/ops/webhooks",
        "Operator: webhook health per receiving host: attempts, failures, exhausted events "
        "over the last hour and day, failure rate and last error",
        {200: ops.OpsHosts, **OPERATOR_ERRORS},
        tag="operator",
    ),
    Operation(
        "GET",
        "/metrics",
        "Operator: the console's figures in the OpenMetrics text format, for Prometheus",
        {200: OPENMETRICS, **OPERATOR_ERRORS},
        tag="operator",
    ),
    Operation(
        "GET",
        "/task",
        "Seeds 000/001 without a task id: the origin's 400, to anyone",
        {400: m.TaskProcessorError},
        public=True,
        tag="task processor",
    ),
    Operation(
        "GET",
        "/task/list",
        "Seeds 000/001 (the origin's later list): your tasks of one type",
        {200: m.TaskProcessorList, 400: m.TaskProcessorError, 401: m.TaskProcessorError},
        params=[Param("operations", "query", {"type": "string", "maxLength": 128}, required=True)],
        tag="task processor",
    ),
    Operation(
        "GET",
        "/task/{task_id}",
        "Seeds 000/001: a task's status",
        {
            200: m.TaskProcessorTask,
            400: m.TaskProcessorError,
            401: m.TaskProcessorError,
            404: m.TaskProcessorError,
            500: m.TaskProcessorError,
        },
        params=[TASK_ID],
        tag="task processor",
    ),
    Operation(
        "GET",
        "/task-status",
        "Seed 004: your tasks, newest first (unknown query parameters are ignored)",
        {200: [m.TaskStatus], 400: m.TaskProcessorError, 401: m.TaskProcessorError},
        params=[
            Param("operation", "query", {"type": "string"}),
            Param("recent", "query", {"type": "string", "enum": ["true", "false"]}),
            Param("hours", "query", {"type": "number", "exclusiveMinimum": 0}),
            Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 1000}),
            CURSOR,
        ],
        tag="task status",
    ),
    Operation(
        "GET",
        "/task-status/{task_id}",
        "Seed 004: a task's status",
        {
            200: m.TaskStatus,
            400: m.TaskProcessorError,
            401: m.TaskProcessorError,
            404: m.TaskProcessorError,
        },
        params=[TASK_ID],
        tag="task status",
    ),
    Operation(
        "GET",
        "/assemblies",
        "Seed 003: an assembly's status, the origin's `?assemblyId=` form",
        {
            200: m.AssemblyStatus,
            400: m.AssemblyError,
            401: m.AssemblyError,
            403: m.AssemblyError,
            404: m.AssemblyError,
            500: m.AssemblyError,
        },
        params=[
            Param("assemblyId", "query", {"type": "string"}, required=True),
            Param("triggerWebhook", "query", {"type": "string", "enum": ["true", "false"]}),
        ],
        tag="assemblies",
    ),
    Operation(
        "POST",
        "/submit",
        "Seed 002: submit an auto-vid job spec (or a native job request)",
        {
            200: m.AutoVidJob,
            400: m.AutoVidError,
            401: m.AutoVidError,
            409: m.AutoVidError,
            413: m.AutoVidError,
            415: m.AutoVidError,
            422: m.AutoVidError,
            500: m.AutoVidError,
        },
        tag="auto-vid",
    ),
    Operation(
        "GET",
        "/status/{jobId}",
        "Seed 002: a job's status",
        {200: m.AutoVidJob, 401: m.AutoVidError, 404: m.AutoVidError, 500: m.AutoVidError},
        params=[Param("jobId", "path", {"type": "string"}, required=True)],
        tag="auto-vid",
    ),
    Operation(
        "GET",
        "/assemblies/{assemblyId}",
        "Seed 003: an assembly's status",
        {
            200: m.AssemblyStatus,
            400: m.AssemblyError,
            401: m.AssemblyError,
            403: m.AssemblyError,
            404: m.AssemblyError,
            500: m.AssemblyError,
        },
        params=[
            Param("assemblyId", "path", {"type": "string", "maxLength": 128}, required=True),
            Param(
                "triggerWebhook", "query", {"type": "string", "enum": ["true", "false", "1", "0"]}
            ),
        ],
        tag="assemblies",
    ),
]


def _models() -> list[type[BaseModel]]:
    found: dict[str, type[BaseModel]] = {}
    for operation in OPERATIONS:
        for body in operation.responses.values():
            model = body[0] if isinstance(body, list) else body
            if isinstance(model, type) and issubclass(model, BaseModel):
                found[model.__name__] = model
    return list(found.values())


def _content(body: Any, refs: dict[str, Any]) -> dict[str, Any]:
    if body is str:  # the dashboard's page
        return {"text/html": {"schema": {"type": "string"}}}
    if body is OPENMETRICS:
        return {"application/openmetrics-text": {"schema": {"type": "string"}}}
    if body is dict:
        schema: dict[str, Any] = {"type": "object"}
    elif isinstance(body, list):
        schema = {"type": "array", "items": refs[body[0].__name__]}
    else:
        schema = refs[body.__name__]
    return {"application/json": {"schema": schema}}


# Any route that reaches AWS, when AWS throttles or is unavailable (chalicelib/edge/overload.py):
# in the route's own error shape, and nothing was changed.
OVERLOADED = {
    "description": "AWS is throttling or unavailable; nothing was changed: send the same "
    "request again after Retry-After seconds",
    "headers": {
        "X-Request-Id": {"schema": {"type": "string"}},
        "Retry-After": {"schema": {"type": "integer", "minimum": 1}},
    },
}


def _operation(operation: Operation, refs: dict[str, Any]) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, body in operation.responses.items():
        response: dict[str, Any] = {
            "description": "OK" if status < 400 else "error",
            "headers": {"X-Request-Id": {"schema": {"type": "string"}}},
        }
        if body is not None:
            response["content"] = _content(body, refs)
        responses[str(status)] = response
    if not operation.public:
        responses["503"] = OVERLOADED
    document: dict[str, Any] = {
        "operationId": operation.method.lower()
        + "_"
        + re.sub(r"\W+", "_", operation.path).strip("_"),
        "summary": operation.summary,
        "tags": [operation.tag],
        "responses": responses,
    }
    if operation.params:
        document["parameters"] = [
            {"name": p.name, "in": p.where, "required": p.required, "schema": p.schema}
            | ({"description": p.description} if p.description else {})
            for p in operation.params
        ]
    if operation.request is not None:
        document["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": refs[f"{operation.request.__name__}Input"]}},
        }
    if operation.public:
        document["security"] = []
    return document


def serve(container: Container, request: Any) -> dict[str, Any]:
    """`GET /openapi.json`: public."""
    return document()


@cache
def document() -> dict[str, Any]:
    requests = {op.request for op in OPERATIONS if op.request is not None}
    inputs = [(model, "validation") for model in requests]
    outputs = [(model, "serialization") for model in _models()]
    keys, schema = models_json_schema(inputs + outputs, ref_template=REF)
    refs = {
        model.__name__ + ("Input" if mode == "validation" else ""): ref
        for (model, mode), ref in keys.items()
    }
    paths: dict[str, dict[str, Any]] = {}
    for operation in OPERATIONS:
        paths.setdefault(operation.path, {})[operation.method.lower()] = _operation(operation, refs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "taskstatus",
            "version": "1.0.0",
            "description": "Asynchronous tasks: submit, follow, cancel; the seeds' contracts.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}, {"apiKey": []}],
        "paths": paths,
        "components": {
            "schemas": schema.get("$defs", {}),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT or tsk_..."},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
    }


def routes() -> set[tuple[str, str]]:
    return {(op.path, op.method) for op in OPERATIONS}
