"""taskstatus: routes and handlers. Each one declares an entry point and delegates.

Handlers import their chalicelib module on first call: every Lambda function of
the app loads this file, and each pays at cold start only for what it runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chalice import Chalice, ConvertToMiddleware, Rate

from chalicelib import bootstrap
from chalicelib.edge import cors, http, overload
from chalicelib.observability import invocation
from chalicelib.settings import check_environment

if TYPE_CHECKING:
    from chalice.app import Request, Response

# Every function of the app loads this file: an unsafe configuration stops it at start
# (a Lambda init error, `make dev` exits) with the reason, instead of failing per request.
check_environment()

app = Chalice(app_name="taskstatus")
app.experimental_feature_flags.update(["WEBSOCKETS"])


@app.middleware("http")
def rest_edge(request: Request, get_response: Callable[[Request], Response]) -> Response:
    """Every REST route: request ids, credentials, error shapes, CORS (edge/middleware.py).
    Loaded on the first request, so the other functions never import it."""
    from chalicelib.edge import middleware

    c = bootstrap.container()
    return middleware.serve(request, get_response, c.settings, c.authenticator.authenticate)


# Every other handler runs inside `invocation` (JSON logs, each line with the Lambda request
# id): registered once per event type, so no handler can be left out.
for event_type in ("sqs", "dynamodb", "websocket", "scheduled", "pure_lambda"):
    app.register_middleware(ConvertToMiddleware(invocation), event_type)


# Event sources are named at deploy time from the stage's environment variables;
# `chalice package` output has them replaced by references (see infra/package.py).
TASKS_QUEUE = os.environ.get("TASKS_QUEUE_NAME", "taskstatus-tasks")
TASKS_DLQ = os.environ.get("TASKS_DLQ_NAME", "taskstatus-tasks-dlq")
WEBHOOKS_QUEUE = os.environ.get("WEBHOOKS_QUEUE_NAME", "taskstatus-webhooks")
STREAM_FAILURES_QUEUE = os.environ.get("STREAM_FAILURES_QUEUE_NAME", "taskstatus-stream-failures")
TASKS_STREAM_ARN = os.environ.get(
    "TASKS_STREAM_ARN",
    "arn:aws:dynamodb:us-east-1:000000000000:table/taskstatus-tasks/stream/unset",
)


@app.route("/health", methods=["GET"])
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.route("/openapi.json", methods=["GET"])
def openapi() -> dict[str, Any]:
    from chalicelib.contracts import openapi

    return openapi.serve(bootstrap.container(), app.current_request)


@app.route("/dashboard", methods=["GET"])
def dashboard() -> Any:
    from chalicelib.contracts import dashboard

    return dashboard.page(bootstrap.container(), app.current_request)


@app.route("/dashboard/session", methods=["GET"])
def dashboard_session() -> Any:
    from chalicelib.contracts.dashboard import links

    return links.session(bootstrap.container(), app.current_request)


@app.route("/dashboard/links", methods=["POST"])
def create_dashboard_link() -> Any:
    from chalicelib.contracts.dashboard import links

    return links.create(bootstrap.container(), app.current_request)


@app.route("/dashboard/sign-in", methods=["POST"])
def dashboard_sign_in() -> Any:
    from chalicelib.contracts.dashboard import links

    return links.sign_in(bootstrap.container(), app.current_request)


@app.route("/jobs", methods=["POST"], content_types=list(http.ACCEPTED_CONTENT_TYPES))
def submit_job() -> Any:
    from chalicelib.contracts import jobs

    return jobs.submit_job(bootstrap.container(), app.current_request)


@app.route("/jobs/batch", methods=["POST"], content_types=list(http.ACCEPTED_CONTENT_TYPES))
def submit_jobs() -> Any:
    from chalicelib.contracts import batches

    return batches.submit_batch(bootstrap.container(), app.current_request)


@app.route("/jobs", methods=["GET"])
def list_jobs() -> Any:
    from chalicelib.contracts import jobs

    return jobs.list_jobs(bootstrap.container(), app.current_request)


@app.route("/jobs/{jobId}", methods=["GET"])
def get_job(jobId: str) -> Any:
    from chalicelib.contracts import jobs

    return jobs.get_job(bootstrap.container(), app.current_request, job_id=jobId)


@app.route("/jobs/{jobId}", methods=["DELETE"])
def cancel_job(jobId: str) -> Any:
    from chalicelib.contracts import jobs

    return jobs.cancel_job(bootstrap.container(), app.current_request, job_id=jobId)


@app.route("/uploads", methods=["POST"], content_types=list(http.ACCEPTED_CONTENT_TYPES))
def create_upload() -> Any:
    from chalicelib.contracts import jobs

    return jobs.create_upload(bootstrap.container(), app.current_request)


@app.route("/jobs/{jobId}/deliveries", methods=["GET"])
def list_deliveries(jobId: str) -> Any:
    from chalicelib.contracts import jobs

    return jobs.list_deliveries(bootstrap.container(), app.current_request, job_id=jobId)


@app.route("/webhooks/secret", methods=["GET"])
def webhook_secret() -> Any:
    from chalicelib.contracts import jobs

    return jobs.webhook_secret(bootstrap.container(), app.current_request)


@app.route("/jobs/{jobId}/webhook", methods=["POST"])
def redeliver_webhook(jobId: str) -> Any:
    from chalicelib.contracts import jobs

    return jobs.redeliver_webhook(bootstrap.container(), app.current_request, job_id=jobId)


# -- producers: external jobs report and heartbeat (chalicelib/contracts/reports.py) ----------


@app.route(
    "/jobs/{jobId}/report", methods=["POST"], content_types=list(http.ACCEPTED_CONTENT_TYPES)
)
def report_job(jobId: str) -> Any:
    from chalicelib.contracts import reports

    return reports.report_job(bootstrap.container(), app.current_request, job_id=jobId)


@app.route(
    "/jobs/{jobId}/heartbeat", methods=["POST"], content_types=list(http.ACCEPTED_CONTENT_TYPES)
)
def heartbeat_job(jobId: str) -> Any:
    from chalicelib.contracts import reports

    return reports.heartbeat_job(bootstrap.container(), app.current_request, job_id=jobId)


# -- worker pools: remote workers claim under a lease (chalicelib/contracts/claims.py) ---------


@app.route("/pools/{pool}/claim", methods=["POST"], content_types=list(http.ACCEPTED_CONTENT_TYPES))
def claim_from_pool(pool: str) -> Any:
    from chalicelib.contracts import claims

    return claims.claim_job(bootstrap.container(), app.current_request, pool=pool)


@app.route(
    "/jobs/{jobId}/release", methods=["POST"], content_types=list(http.ACCEPTED_CONTENT_TYPES)
)
def release_job(jobId: str) -> Any:
    from chalicelib.contracts import claims

    return claims.release_job(bootstrap.container(), app.current_request, job_id=jobId)


# -- operations: history, retry, bulk redrive and cancel (chalicelib/operations.py) -------------


@app.route("/jobs/{jobId}/events", methods=["GET"])
def list_job_events(jobId: str) -> Any:
    from chalicelib.contracts import operations

    return operations.list_events(bootstrap.container(), app.current_request, job_id=jobId)


@app.route("/jobs/{jobId}/retry", methods=["POST"])
def retry_job(jobId: str) -> Any:
    from chalicelib.contracts import operations

    return operations.retry_job(bootstrap.container(), app.current_request, job_id=jobId)


@app.route("/jobs/redrive", methods=["POST"], content_types=list(http.ACCEPTED_CONTENT_TYPES))
def redrive_jobs() -> Any:
    from chalicelib.contracts import operations

    return operations.redrive_jobs(bootstrap.container(), app.current_request)


@app.route("/jobs/cancel", methods=["POST"], content_types=list(http.ACCEPTED_CONTENT_TYPES))
def cancel_jobs() -> Any:
    from chalicelib.contracts import operations

    return operations.cancel_jobs(bootstrap.container(), app.current_request)


# -- schedules: cron or rate, one task per fire (chalicelib/contracts/schedules.py) --------------


@app.route("/schedules", methods=["POST"], content_types=list(http.ACCEPTED_CONTENT_TYPES))
def create_schedule() -> Any:
    from chalicelib.contracts import schedules

    return schedules.create_schedule(bootstrap.container(), app.current_request)


@app.route("/schedules", methods=["GET"])
def list_schedules() -> Any:
    from chalicelib.contracts import schedules

    return schedules.list_schedules(bootstrap.container(), app.current_request)


@app.route("/schedules/{scheduleId}", methods=["GET"])
def get_schedule(scheduleId: str) -> Any:
    from chalicelib.contracts import schedules

    return schedules.get_schedule(
        bootstrap.container(), app.current_request, schedule_id=scheduleId
    )


@app.route(
    "/schedules/{scheduleId}", methods=["PATCH"], content_types=list(http.ACCEPTED_CONTENT_TYPES)
)
def patch_schedule(scheduleId: str) -> Any:
    from chalicelib.contracts import schedules

    return schedules.patch_schedule(
        bootstrap.container(), app.current_request, schedule_id=scheduleId
    )


@app.route("/schedules/{scheduleId}", methods=["DELETE"])
def delete_schedule(scheduleId: str) -> Any:
    from chalicelib.contracts import schedules

    return schedules.delete_schedule(
        bootstrap.container(), app.current_request, schedule_id=scheduleId
    )


# -- API keys (JWT only: keys cannot manage keys) ------------------------------------------


@app.route("/api-keys", methods=["POST"], content_types=list(http.ACCEPTED_CONTENT_TYPES))
def create_api_key() -> Any:
    from chalicelib.contracts import api_keys

    return api_keys.create(bootstrap.container(), app.current_request)


@app.route("/api-keys", methods=["GET"])
def list_api_keys() -> Any:
    from chalicelib.contracts import api_keys

    return api_keys.list_keys(bootstrap.container(), app.current_request)


@app.route("/api-keys/{keyId}", methods=["DELETE"])
def revoke_api_key(keyId: str) -> Any:
    from chalicelib.contracts import api_keys

    return api_keys.revoke(bootstrap.container(), app.current_request, key_id=keyId)


# -- the operator's console: every owner's work, the queues (chalicelib/contracts/operator.py) --


@app.route("/ops/tasks", methods=["GET"])
def ops_list_tasks() -> Any:
    from chalicelib.contracts import operator

    return operator.list_tasks(bootstrap.container(), app.current_request)


@app.route("/ops/tasks/{jobId}/cancel", methods=["POST"])
def ops_cancel_task(jobId: str) -> Any:
    from chalicelib.contracts import operator

    return operator.cancel_task(bootstrap.container(), app.current_request, job_id=jobId)


@app.route("/ops/tasks/{jobId}/retry", methods=["POST"])
def ops_retry_task(jobId: str) -> Any:
    from chalicelib.contracts import operator

    return operator.retry_task(bootstrap.container(), app.current_request, job_id=jobId)


@app.route("/ops/queues", methods=["GET"])
def ops_list_queues() -> Any:
    from chalicelib.contracts import operator

    return operator.list_queues(bootstrap.container(), app.current_request)


@app.route("/ops/queues/{queue}/messages", methods=["GET"])
def ops_list_dead_letters(queue: str) -> Any:
    from chalicelib.contracts import operator

    return operator.list_dead_letters(bootstrap.container(), app.current_request, queue_name=queue)


@app.route("/ops/queues/{queue}/messages/{messageId}/redrive", methods=["POST"])
def ops_redrive_dead_letter(queue: str, messageId: str) -> Any:
    from chalicelib.contracts import operator

    return operator.redrive_dead_letter(
        bootstrap.container(), app.current_request, queue_name=queue, message_id=messageId
    )


@app.route("/ops/queues/{queue}/messages/{messageId}", methods=["DELETE"])
def ops_discard_dead_letter(queue: str, messageId: str) -> Any:
    from chalicelib.contracts import operator

    return operator.discard_dead_letter(
        bootstrap.container(), app.current_request, queue_name=queue, message_id=messageId
    )


@app.route("/ops/stuck", methods=["GET"])
def ops_list_stuck() -> Any:
    from chalicelib.contracts import operator

    return operator.list_stuck(bootstrap.container(), app.current_request)


@app.route("/ops/usage", methods=["GET"])
def ops_usage() -> Any:
    from chalicelib.contracts import operator

    return operator.list_usage(bootstrap.container(), app.current_request)


@app.route("/ops/latency", methods=["GET"])
def ops_latency() -> Any:
    from chalicelib.contracts import operator

    return operator.list_latency(bootstrap.container(), app.current_request)


@app.route("/ops/webhooks", methods=["GET"])
def ops_webhook_hosts() -> Any:
    from chalicelib.contracts import operator

    return operator.list_webhook_hosts(bootstrap.container(), app.current_request)


@app.route("/metrics", methods=["GET"])
def metrics() -> Any:
    from chalicelib.contracts import operator

    return operator.metrics(bootstrap.container(), app.current_request)


# -- seeds 000/001: the Task Processor API ---------------------------------------------


@app.route("/task", methods=["GET"])
def task_processor_without_id() -> Any:
    from chalicelib.contracts import task_processor

    return task_processor.missing_id(bootstrap.container(), app.current_request)


@app.route("/task/list", methods=["GET"])
def task_processor_list() -> Any:
    from chalicelib.contracts import task_processor

    return task_processor.list_tasks(bootstrap.container(), app.current_request)


@app.route("/task/{task_id}", methods=["GET"])
def task_processor_status(task_id: str) -> Any:
    from chalicelib.contracts import task_processor

    return task_processor.get_task(bootstrap.container(), app.current_request, task_id=task_id)


# -- seed 004: task status --------------------------------------------------------------


@app.route("/task-status", methods=["GET"])
def task_status_list() -> Any:
    from chalicelib.contracts import task_status

    return task_status.list_tasks(bootstrap.container(), app.current_request)


@app.route("/task-status/{task_id}", methods=["GET"])
def task_status_get(task_id: str) -> Any:
    from chalicelib.contracts import task_status

    return task_status.get_task(bootstrap.container(), app.current_request, task_id=task_id)


# -- seed 003: the Status Lambda, and the same over REST -----------------------------------


@app.lambda_function(name="status")
def status(event: Any, context: Any) -> dict[str, Any]:
    from chalicelib.contracts import assembly

    c = bootstrap.container()
    request_id = getattr(context, "aws_request_id", "")
    return assembly.handle(c.service, c.redeliver, event, user=None, request_id=request_id)


@app.route("/assemblies", methods=["GET"])
def assembly_status_by_query() -> Any:
    from chalicelib.contracts import assembly

    return assembly.rest(bootstrap.container(), app.current_request)


@app.route("/assemblies/{assemblyId}", methods=["GET"])
def assembly_status(assemblyId: str) -> Any:
    from chalicelib.contracts import assembly

    return assembly.rest(bootstrap.container(), app.current_request, assembly_id=assemblyId)


# -- seed 002: auto-vid ----------------------------------------------------------------------


@app.route("/submit", methods=["POST"], content_types=list(http.ACCEPTED_CONTENT_TYPES))
def autovid_submit() -> Any:
    from chalicelib.contracts import autovid

    return autovid.submit(bootstrap.container(), app.current_request)


@app.route("/status/{jobId}", methods=["GET"])
def autovid_status(jobId: str) -> Any:
    from chalicelib.contracts import autovid

    return autovid.status(bootstrap.container(), app.current_request, job_id=jobId)


# -- WebSocket (chalicelib/realtime/) -------------------------------------------------------------


@app.on_ws_connect(name="ws_connect")
def ws_connect(event: Any) -> dict[str, Any]:
    query = event.to_dict().get("queryStringParameters")
    return bootstrap.container().realtime.connect(event.connection_id, query)


@app.on_ws_message(name="ws_message")
def ws_message(event: Any) -> None:
    bootstrap.container().realtime.message(event.connection_id, event.body)


@app.on_ws_disconnect(name="ws_disconnect")
def ws_disconnect(event: Any) -> None:
    bootstrap.container().realtime.disconnect(event.connection_id)


# -- event handlers -----------------------------------------------------------------------


# One task per invocation: a batch runs its tasks one after another, and the longest a
# processor may run (max_runtime_seconds) must fit the worker's timeout.
@app.on_sqs_message(queue=TASKS_QUEUE, batch_size=1, name="worker")
def worker(event: Any) -> dict[str, Any]:
    return bootstrap.container().worker.handle_batch(event.to_dict()["Records"])


@app.on_sqs_message(queue=TASKS_DLQ, batch_size=10, name="dead_letters")
def dead_letters(event: Any) -> None:
    bootstrap.container().worker.handle_dead_letters(event.to_dict()["Records"])


@app.on_dynamodb_record(stream_arn=TASKS_STREAM_ARN, batch_size=100, name="stream")
def stream(event: Any) -> dict[str, Any]:
    return bootstrap.container().stream_handler.handle_batch(event.to_dict()["Records"])


# The stream's second reader: WebSocket pushes and the operators' change messages, off the
# path that queues tasks (chalicelib/realtime/pushes.py).
@app.on_dynamodb_record(stream_arn=TASKS_STREAM_ARN, batch_size=100, name="pushes")
def pushes(event: Any) -> dict[str, Any]:
    return bootstrap.container().push_handler.handle_batch(event.to_dict()["Records"])


# Deliveries run one after another: 3 attempts of at most WEBHOOK_TIMEOUT_SECONDS (15 s,
# the host's lookup included) fit the function's 60 s timeout with room to spare
# (tests/unit/test_deployed_limits.py).
# One message is one range of the stream's records, as much work as a stream invocation.
@app.on_sqs_message(queue=STREAM_FAILURES_QUEUE, batch_size=1, name="stream_failures")
def stream_failures(event: Any) -> dict[str, Any]:
    from chalicelib.stream import replay_unprocessed

    handler = bootstrap.container().stream_handler
    return replay_unprocessed(handler, event.to_dict()["Records"])


@app.on_sqs_message(queue=WEBHOOKS_QUEUE, batch_size=3, name="webhooks")
def webhooks(event: Any) -> dict[str, Any]:
    return bootstrap.container().webhooks.handle_batch(event.to_dict()["Records"])


# Once a minute: fail the tasks past their deadline, start the scheduled tasks now due, and
# fire the schedules now due (chalicelib/schedules.py).
@app.schedule(Rate(1, unit=Rate.MINUTES), name="reaper")
def reaper(event: Any) -> dict[str, Any]:
    c = bootstrap.container()
    service = c.service

    def time_left() -> float:
        return event.context.get_remaining_time_in_millis() / 1000

    # Scheduled tasks first: however long the reaping takes, nobody's due run waits on it.
    # Each part stops in time; what it leaves is the next minute's.
    released = service.release_due(time_left)
    # Then parked tasks the limit allows now (one raised or removed), before any is reaped.
    admitted = service.admit_parked(time_left)
    from chalicelib.schedules import fire_due

    fired = fire_due(service, c.schedule_store, time_left)
    # Running tasks whose worker stopped run again; reap adds their ids. (No annotation here:
    # `chalice package`'s policy analyzer fails on an annotated local in app.py.)
    resumed = []
    # (A worker pool's dead letters wait for an operator: docs/workers.md.)
    failed = service.reap(time_left, admitted, resumed)
    return {
        "failed": failed,
        "released": released,
        "admitted": admitted,
        "resumed": resumed,
        "fired": fired,
    }


# Last: every route above answers its CORS preflight (chalicelib/edge/cors.py), and a throttled
# or unavailable AWS with 503 and Retry-After, never a 500 (chalicelib/edge/overload.py).
cors.register_preflights(app)
overload.guard_routes(app)
