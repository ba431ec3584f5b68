"""The REST half of worker pools: `POST /pools/{pool}/claim`, a pool job's lease heartbeat
(`POST /jobs/{jobId}/heartbeat` with `leaseToken`) and `POST /jobs/{jobId}/release`.

Each handler reads the request, calls chalicelib/claims.py and answers in the native shape.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chalice.app import Request, Response

from chalicelib import claims
from chalicelib.contracts.jobs import idempotency_key, job_document
from chalicelib.edge import http
from chalicelib.edge.http_errors import Conflict, NotFound, Unprocessable, native_errors
from chalicelib.errors import TransitionRefused
from chalicelib.reports import ActingFor
from chalicelib.service import TaskService

if TYPE_CHECKING:
    from chalicelib.bootstrap import Container


def acting_for(request: Request) -> ActingFor:
    """The owners the caller may report for (a service key's patterns, else its own id)."""
    principal = http.current_principal(request)
    if principal.acts_for:
        return ActingFor.patterns(principal.acts_for)
    return ActingFor(frozenset({principal.owner}))


def _wait_seconds(request: Request) -> float:
    raw = (request.query_params or {}).get("waitSeconds", str(claims.MAX_WAIT_SECONDS))
    try:
        wait = float(raw)
    except ValueError:
        wait = -1.0
    if not 0 <= wait <= claims.MAX_WAIT_SECONDS:
        raise Unprocessable(
            f"waitSeconds must be a number from 0 to {claims.MAX_WAIT_SECONDS}; got {raw[:32]!r}"
        )
    return wait


def claim_job(container: Container, request: Request, pool: str) -> Response:
    service = container.service
    principal = http.current_principal(request)
    wait = _wait_seconds(request)
    with native_errors():
        try:
            claims.authorize(principal, pool)
        except claims.UnknownPoolName as exc:
            raise NotFound(str(exc)) from None
    key = claims.ClaimKey.of(principal, idempotency_key(request))
    claimed = claims.claim(service, pool, wait, key=key)
    if claimed is None:
        return Response(body="", status_code=204)
    from chalicelib.contracts.schemas import ClaimAnswer

    answer = ClaimAnswer(
        job=job_document(claimed.task, with_input=True),
        leaseToken=claimed.lease_token,
        leaseSeconds=claimed.lease_seconds,
        attempt=claimed.task.attempts,
    )
    return http.json_response(answer.model_dump(mode="json"))


def lease_token(body: Any) -> str:
    from chalicelib.contracts.schemas import LeaseRequest

    asked = http.body_model(
        body, LeaseRequest, "the lease", 'request body must be {"leaseToken": "..."}'
    )
    return asked.leaseToken


def lease_heartbeat(
    service: TaskService, request: Request, job_id: str, token: str, allows: Any
) -> Response:
    from chalicelib.contracts.schemas import HeartbeatAnswer

    with native_errors():
        task = claims.extend(service, job_id, token, allows)
    answer = HeartbeatAnswer(
        jobId=task.id,
        status=task.status,
        cancelRequested=task.status.value == "cancelled",
        version=task.version,
        heartbeatSeconds=service.settings.worker_lease_seconds,
    )
    return http.json_response(
        answer.model_dump(mode="json"), headers={"ETag": http.etag(task.id, task.version)}
    )


def release_job(container: Container, request: Request, job_id: str) -> Response:
    http.task_id_param(job_id)
    token = lease_token(http.json_body(request))
    with native_errors():
        try:
            task = claims.release(container.service, job_id, token, acting_for(request).allows)
        except TransitionRefused as exc:
            raise Conflict(str(exc)) from None
    return http.json_response(
        job_document(task), headers={"ETag": http.etag(task.id, task.version)}
    )
