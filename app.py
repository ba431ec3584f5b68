"""taskstatus: routes and handlers. Each one declares an entry point and delegates.

Handlers import their chalicelib module on first call: every Lambda function of
the app loads this file, and each pays at cold start only for what it runs.
"""

from __future__ import annotations

import os
from typing import Any

from chalice import Chalice, Rate

from chalicelib import http

app = Chalice(app_name="taskstatus")
app.experimental_feature_flags.update(["WEBSOCKETS"])
app.register_middleware(http.edge_middleware, "http")

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


def _invocation(event: Any) -> None:
    """Log lines of an event handler carry its Lambda request id, as REST lines carry theirs."""
    from chalicelib.observability import configure_logging, request_id_var

    configure_logging()
    request_id_var.set(getattr(event.context, "aws_request_id", None))


def _service() -> Any:
    from chalicelib.service import default_service

    return default_service()


@app.route("/health", methods=["GET"])
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.route("/openapi.json", methods=["GET"])
def openapi() -> dict[str, Any]:
    from chalicelib.openapi import document

    return document()


@app.route("/jobs", methods=["POST"], content_types=list(http.ACCEPTED_CONTENT_TYPES))
def submit_job() -> Any:
    from chalicelib import api

    return api.submit_job(_service(), app.current_request)


@app.route("/jobs", methods=["GET"])
def list_jobs() -> Any:
    from chalicelib import api

    return api.list_jobs(_service(), app.current_request)


@app.route("/jobs/{jobId}", methods=["GET"])
def get_job(jobId: str) -> Any:
    from chalicelib import api

    return api.get_job(_service(), app.current_request, jobId)


@app.route("/jobs/{jobId}", methods=["DELETE"])
def cancel_job(jobId: str) -> Any:
    from chalicelib import api

    return api.cancel_job(_service(), app.current_request, jobId)


@app.route("/uploads", methods=["POST"], content_types=list(http.ACCEPTED_CONTENT_TYPES))
def create_upload() -> Any:
    from chalicelib import api

    return api.create_upload(_service(), app.current_request)


@app.route("/jobs/{jobId}/deliveries", methods=["GET"])
def list_deliveries(jobId: str) -> Any:
    from chalicelib import api

    return api.list_deliveries(_service(), app.current_request, jobId)


@app.route("/webhooks/secret", methods=["GET"])
def webhook_secret() -> Any:
    from chalicelib import api

    return api.webhook_secret(_service(), app.current_request)


@app.route("/jobs/{jobId}/webhook", methods=["POST"])
def redeliver_webhook(jobId: str) -> Any:
    from chalicelib import api

    return api.redeliver_webhook(_service(), app.current_request, jobId)


# -- operations: history, retry, bulk redrive and cancel (chalicelib/ops_api.py) -------------


@app.route("/jobs/{jobId}/events", methods=["GET"])
def list_job_events(jobId: str) -> Any:
    from chalicelib import ops_api

    return ops_api.list_events(_service(), app.current_request, jobId)


@app.route("/jobs/{jobId}/retry", methods=["POST"])
def retry_job(jobId: str) -> Any:
    from chalicelib import ops_api

    return ops_api.retry_job(_service(), app.current_request, jobId)


@app.route("/jobs/redrive", methods=["POST"], content_types=list(http.ACCEPTED_CONTENT_TYPES))
def redrive_jobs() -> Any:
    from chalicelib import ops_api

    return ops_api.redrive_jobs(_service(), app.current_request)


@app.route("/jobs/cancel", methods=["POST"], content_types=list(http.ACCEPTED_CONTENT_TYPES))
def cancel_jobs() -> Any:
    from chalicelib import ops_api

    return ops_api.cancel_jobs(_service(), app.current_request)


# -- API keys (JWT only: keys cannot manage keys) ------------------------------------------


@app.route("/api-keys", methods=["POST"], content_types=list(http.ACCEPTED_CONTENT_TYPES))
def create_api_key() -> Any:
    from chalicelib import api_keys

    return api_keys.create(app.current_request)


@app.route("/api-keys", methods=["GET"])
def list_api_keys() -> Any:
    from chalicelib import api_keys

    return api_keys.list_keys(app.current_request)


@app.route("/api-keys/{keyId}", methods=["DELETE"])
def revoke_api_key(keyId: str) -> Any:
    from chalicelib import api_keys

    return api_keys.revoke(app.current_request, keyId)


# -- seeds 000/001: the Task Processor API ---------------------------------------------


@app.route("/task", methods=["GET"])
def task_processor_without_id() -> Any:
    from chalicelib.contracts import task_processor

    return task_processor.missing_id()


@app.route("/task/list", methods=["GET"])
def task_processor_list() -> Any:
    from chalicelib.contracts import task_processor

    user = http.current_user(app.current_request)
    operation = http.query(app.current_request).get("operations")
    return task_processor.list_tasks(_service(), user, operation)


@app.route("/task/{task_id}", methods=["GET"])
def task_processor_status(task_id: str) -> Any:
    from chalicelib.contracts import task_processor

    user = http.reader(app.current_request)
    return task_processor.get_task(_service(), user, task_id)


# -- seed 004: task status --------------------------------------------------------------


@app.route("/task-status", methods=["GET"])
def task_status_list() -> Any:
    from chalicelib.contracts import task_status

    return task_status.list_tasks(_service(), app.current_request)


@app.route("/task-status/{task_id}", methods=["GET"])
def task_status_get(task_id: str) -> Any:
    from chalicelib.contracts import task_status

    return task_status.get_task(_service(), app.current_request, task_id)


# -- seed 003: the Status Lambda, and the same over REST -----------------------------------


@app.lambda_function(name="status")
def status(event: Any, context: Any) -> dict[str, Any]:
    from chalicelib.contracts import assembly

    return assembly.handle(
        _service(), event, user=None, request_id=getattr(context, "aws_request_id", "")
    )


@app.route("/assemblies", methods=["GET"])
def assembly_status_by_query() -> Any:
    from chalicelib.contracts import assembly

    return assembly.rest(_service(), app.current_request, None)


@app.route("/assemblies/{assemblyId}", methods=["GET"])
def assembly_status(assemblyId: str) -> Any:
    from chalicelib.contracts import assembly

    return assembly.rest(_service(), app.current_request, assemblyId)


# -- seed 002: auto-vid ----------------------------------------------------------------------


@app.route("/submit", methods=["POST"], content_types=list(http.ACCEPTED_CONTENT_TYPES))
def autovid_submit() -> Any:
    from chalicelib.contracts import autovid

    return autovid.submit(_service(), app.current_request)


@app.route("/status/{jobId}", methods=["GET"])
def autovid_status(jobId: str) -> Any:
    from chalicelib.contracts import autovid

    return autovid.status(_service(), app.current_request, jobId)


# -- WebSocket (DESIGN.md section 6) ---------------------------------------------------------


def _realtime() -> Any:
    from chalicelib.realtime import Realtime

    service = _service()
    return Realtime(service, service.settings)


@app.on_ws_connect(name="ws_connect")
def ws_connect(event: Any) -> dict[str, Any]:
    _invocation(event)
    query = event.to_dict().get("queryStringParameters")
    return _realtime().connect(event.connection_id, query)


@app.on_ws_message(name="ws_message")
def ws_message(event: Any) -> None:
    _invocation(event)
    _realtime().message(event.connection_id, event.body)


@app.on_ws_disconnect(name="ws_disconnect")
def ws_disconnect(event: Any) -> None:
    _invocation(event)
    _realtime().disconnect(event.connection_id)


# -- event handlers -----------------------------------------------------------------------


# One task per invocation: a batch runs its tasks one after another, and the longest a
# processor may run (max_runtime_seconds) must fit the worker's timeout.
@app.on_sqs_message(queue=TASKS_QUEUE, batch_size=1, name="worker")
def worker(event: Any) -> dict[str, Any]:
    _invocation(event)
    from chalicelib.worker import Worker

    return Worker(_service()).handle_batch(event.to_dict()["Records"])


@app.on_sqs_message(queue=TASKS_DLQ, batch_size=10, name="dead_letters")
def dead_letters(event: Any) -> None:
    _invocation(event)
    from chalicelib.worker import Worker

    Worker(_service()).handle_dead_letters(event.to_dict()["Records"])


@app.on_dynamodb_record(stream_arn=TASKS_STREAM_ARN, batch_size=100, name="stream")
def stream(event: Any) -> dict[str, Any]:
    _invocation(event)
    from chalicelib.stream import StreamHandler

    return StreamHandler(_service()).handle_batch(event.to_dict()["Records"])


# Deliveries run one after another: 3 attempts of at most WEBHOOK_TIMEOUT_SECONDS (15 s)
# fit the function's 60 s timeout with room to spare (tests/unit/test_limits.py).
@app.on_sqs_message(queue=STREAM_FAILURES_QUEUE, batch_size=10, name="stream_failures")
def stream_failures(event: Any) -> dict[str, Any]:
    _invocation(event)
    from chalicelib.stream import fail_unprocessed

    return fail_unprocessed(_service(), event.to_dict()["Records"])


@app.on_sqs_message(queue=WEBHOOKS_QUEUE, batch_size=3, name="webhooks")
def webhooks(event: Any) -> dict[str, Any]:
    _invocation(event)
    from chalicelib.webhooks import WebhookDispatcher

    return WebhookDispatcher(_service().settings).handle_batch(event.to_dict()["Records"])


@app.schedule(Rate(1, unit=Rate.MINUTES), name="reaper")
def reaper(event: Any) -> dict[str, Any]:
    _invocation(event)
    return {"failed": _service().reap()}


# Last: every route above answers its CORS preflight (chalicelib/cors.py).
http.register_preflights(app)
