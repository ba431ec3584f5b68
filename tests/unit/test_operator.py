"""The operator's console: who is an operator (each refusal written as the attack), every
owner's jobs, the queues and their dead letters, stuck work and the metrics, each figure
from a known state."""

import json
from datetime import timedelta

import boto3
import pytest

from chalicelib.edge.service_keys import ServiceKeys
from chalicelib.model import utcnow
from chalicelib.queues import DeliveryMessage, TaskMessage
from local.token import mint_token
from tests.conftest import JWT_SECRET, auth
from tests.unit.helpers import get, sleep_job, submit

OPERATOR_ROUTES = [
    ("GET", "/ops/tasks"),
    ("POST", "/ops/tasks/0f8b7d8e-0000-4000-8000-000000000000/cancel"),
    ("POST", "/ops/tasks/0f8b7d8e-0000-4000-8000-000000000000/retry"),
    ("GET", "/ops/queues"),
    ("GET", "/ops/queues/tasks-dlq/messages"),
    ("POST", "/ops/queues/tasks-dlq/messages/0f8b7d8e-0000-4000-8000-000000000000/redrive"),
    ("DELETE", "/ops/queues/tasks-dlq/messages/0f8b7d8e-0000-4000-8000-000000000000"),
    ("GET", "/ops/stuck"),
    ("GET", "/ops/usage"),
    ("GET", "/ops/latency"),
    ("GET", "/ops/webhooks"),
    ("GET", "/metrics"),
]
POOL_JOB = {"type": "video/render", "input": {"frames": 3}, "pool": "remote"}


def operator(user="ops-ann", **claims):
    if not claims:
        claims = {"scope": "openid taskstatus:operator"}
    token = mint_token(user, JWT_SECRET, 3600, **claims)
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def call(client, method, path, headers):
    return getattr(client.http, method.lower())(path, headers=headers, body="")


def service_key(service, scopes, owners=("alice",), pools=(), name="producer"):
    keys = ServiceKeys(service.settings.records_table)
    secret = keys.create(name, list(owners), scopes, utcnow(), pools=pools)[1]
    return {"X-API-Key": secret, "Content-Type": "application/json"}


def user_api_key(client, user="alice"):
    body = json.dumps({"name": "ci", "scopes": ["jobs:read", "jobs:write", "jobs:report"]})
    response = client.http.post("/api-keys", headers=auth(user), body=body)
    assert response.status_code == 201, response.json_body
    return {"X-API-Key": response.json_body["key"], "Content-Type": "application/json"}


def submitted(client, user="alice", body=None) -> str:
    response = submit(client, body or sleep_job(), user=user)
    assert response.status_code == 202, response.json_body
    return response.json_body["jobId"]


def ops_get(client, path, headers=None):
    response = client.http.get(path, headers=headers or operator())
    assert response.status_code == 200, response.body
    return response.json_body


# -- who is an operator: every other credential is refused, each route ----------------------


@pytest.mark.parametrize(("method", "path"), OPERATOR_ROUTES)
def test_a_users_token_is_refused_on_every_operator_route(client, method, path):
    response = call(client, method, path, auth("alice"))
    assert response.status_code == 403, (method, path, response.body)
    assert "operator" in response.json_body["error"]["message"]


@pytest.mark.parametrize(("method", "path"), OPERATOR_ROUTES)
def test_a_users_api_key_is_refused_on_every_operator_route(client, method, path):
    assert call(client, method, path, user_api_key(client)).status_code == 403


@pytest.mark.parametrize(("method", "path"), OPERATOR_ROUTES)
def test_a_producers_service_key_is_refused_on_every_operator_route(client, service, method, path):
    key = service_key(service, ["jobs:read", "jobs:write", "jobs:report"], owners=("*",))
    assert call(client, method, path, key).status_code == 403


@pytest.mark.parametrize(("method", "path"), OPERATOR_ROUTES)
def test_a_workers_service_key_is_refused_on_every_operator_route(client, service, method, path):
    key = service_key(service, ["jobs:report"], owners=("*",), pools=("remote",), name="gpu")
    assert call(client, method, path, key).status_code == 403


@pytest.mark.parametrize(("method", "path"), OPERATOR_ROUTES)
def test_no_credential_is_a_401_on_every_operator_route(client, method, path):
    assert call(client, method, path, {}).status_code == 401


def test_a_token_that_names_the_scope_in_a_claim_no_provider_uses_is_refused(client):
    headers = operator(role="taskstatus:operator", groups=["taskstatus:operator"])
    assert client.http.get("/ops/queues", headers=headers).status_code == 403


def test_a_token_with_a_scope_that_merely_contains_the_operator_scope_is_refused(client):
    headers = operator(scope="taskstatus:operator-lite xtaskstatus:operator")
    assert client.http.get("/ops/queues", headers=headers).status_code == 403


def test_the_dashboard_session_tells_a_user_the_console_is_not_theirs(client):
    response = client.http.get("/dashboard/session", headers=auth("alice"))
    assert response.status_code == 200
    assert response.json_body == {"owner": "alice", "operator": False}


def test_the_dashboard_session_tells_an_operator_the_console_is_theirs(client):
    response = client.http.get("/dashboard/session", headers=operator())
    assert response.json_body == {"owner": "ops-ann", "operator": True}


def test_an_operator_service_key_opens_the_console_in_the_dashboard_session(client, service):
    keys = ServiceKeys(service.settings.records_table)
    secret = keys.create("ops", ["*"], ["jobs:read", "operator"], utcnow())[1]
    response = client.http.get("/dashboard/session", headers={"X-API-Key": secret})
    assert response.json_body["operator"] is True


def test_a_workers_service_key_does_not_open_the_console(client, service):
    headers = service_key(service, ["jobs:read", "jobs:report"], owners=("*",), pools=("remote",))
    assert client.http.get("/dashboard/session", headers=headers).json_body["operator"] is False


def test_a_user_cannot_give_their_own_api_key_the_operator_scope(client):
    body = json.dumps({"name": "sneaky", "scopes": ["operator"]})
    response = client.http.post("/api-keys", headers=auth("alice"), body=body)
    assert response.status_code == 422


@pytest.mark.parametrize(
    "claims",
    [
        {"scope": "openid taskstatus:operator"},
        {"scp": ["taskstatus:operator"]},
        {"cognito:groups": ["staff", "taskstatus:operator"]},
        {"roles": ["taskstatus:operator"]},
    ],
    ids=["scope", "scp", "cognito-group", "entra-role"],
)
def test_an_operator_is_named_by_scope_cognito_group_or_entra_role(client, claims):
    assert client.http.get("/ops/queues", headers=operator(**claims)).status_code == 200


def test_operator_scope_is_configurable(client, monkeypatch):
    from tests.conftest import reset_caches

    monkeypatch.setenv("OPERATOR_SCOPE", "oncall")
    reset_caches()
    assert client.http.get("/ops/queues", headers=operator()).status_code == 403
    assert client.http.get("/ops/queues", headers=operator(roles=["oncall"])).status_code == 200


def test_an_operator_service_key_opens_the_console_and_writes_no_jobs(client, service):
    key = service_key(service, ["operator"], owners=(), name="ops")
    assert client.http.get("/ops/queues", headers=key).status_code == 200
    response = client.http.post("/jobs", headers=key, body=json.dumps(sleep_job()))
    assert response.status_code == 403


def test_make_devs_operator_token_opens_the_console_and_its_users_does_not(client):
    from local.dev import dev_token, operator_token

    def bearer(token):
        return {"Authorization": f"Bearer {token}"}

    assert client.http.get("/ops/queues", headers=bearer(operator_token())).status_code == 200
    assert client.http.get("/ops/queues", headers=bearer(dev_token())).status_code == 403


def test_the_dashboard_page_carries_the_operator_console_hidden_until_an_operator_signs_in(
    client,
):
    html = client.http.get("/dashboard").body.decode()
    assert '<div id="ops" hidden>' in html
    assert 'api("/ops/queues")' in html


def test_an_operators_token_is_still_its_users_own(client):
    job_id = submitted(client, user="ops-ann")
    assert get(client, f"/jobs/{job_id}", user="ops-ann").status_code == 200


# -- every owner's jobs ---------------------------------------------------------------------


def every_page(client, path: str, pages: int) -> list[str]:
    """The ids of the listing's pages in order, following its cursor (at most `pages`)."""
    seen, cursor = [], None
    for _ in range(pages):
        page = ops_get(client, path + (f"&cursor={cursor}" if cursor else ""))
        seen += [t["id"] for t in page["tasks"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    return seen


def test_the_operator_lists_every_owners_jobs_newest_first(client):
    ids = [submitted(client, user=user) for user in ("alice", "bob", "carol", "alice")]
    listed = ops_get(client, "/ops/tasks")["tasks"]
    assert [t["id"] for t in listed] == ids[::-1]
    assert [t["owner"] for t in listed] == ["alice", "carol", "bob", "alice"]


def test_pages_of_every_owners_jobs_go_on_with_the_cursor_without_gaps_or_repeats(client):
    ids = [submitted(client, user=f"user-{i % 3}") for i in range(8)]
    assert every_page(client, "/ops/tasks?limit=3", pages=5) == ids[::-1]


def test_the_operator_filters_by_owner_type_and_status(client, service):
    alice_job = submitted(client, user="alice")
    submitted(client, user="bob")
    other_type = submitted(client, user="bob", body={"type": "media/convert", "runner": "external"})
    service.fail(alice_job, "broken", by="worker")
    assert [t["id"] for t in ops_get(client, "/ops/tasks?owner=alice")["tasks"]] == [alice_job]
    assert [t["id"] for t in ops_get(client, "/ops/tasks?type=media/convert")["tasks"]] == [
        other_type
    ]
    failed = ops_get(client, "/ops/tasks?status=failed")["tasks"]
    assert [(t["id"], t["error"]) for t in failed] == [(alice_job, "broken")]
    by_owner_type = ops_get(client, "/ops/tasks?owner=bob&type=media/convert")["tasks"]
    assert [t["id"] for t in by_owner_type] == [other_type]


def test_a_status_across_owners_is_found_behind_newer_jobs_of_other_statuses(client, service):
    """by_created does not hold the status: the jobs read are filtered, and reading goes on
    while the page is short."""
    failed = [submitted(client, user=user) for user in ("alice", "bob")]
    for job in failed:
        service.fail(job, "broken", by="worker")
    for user in ("carol", "alice", "bob", "carol"):
        submitted(client, user=user)
    page = ops_get(client, "/ops/tasks?status=failed&limit=2")
    assert [t["id"] for t in page["tasks"]] == failed[::-1]


def test_pages_of_one_status_across_owners_go_on_without_gaps_or_repeats(client, service):
    ids = [submitted(client, user=f"user-{i % 3}") for i in range(9)]
    failed = ids[::2]
    for job in failed:
        service.fail(job, "broken", by="worker")
    assert every_page(client, "/ops/tasks?status=failed&limit=2", pages=6) == failed[::-1]


def test_every_owners_jobs_are_listed_as_they_are_now_not_as_created(client, service):
    job = submitted(client, user="alice")
    service.fail(job, "broken", by="worker")
    (listed,) = ops_get(client, "/ops/tasks")["tasks"]
    assert (listed["status"], listed["error"]) == ("failed", "broken")


def test_the_operator_filters_by_pool_and_time(client):
    before = submitted(client, user="alice")
    pooled = submitted(client, user="bob", body=POOL_JOB)
    assert [t["id"] for t in ops_get(client, "/ops/tasks?pool=remote")["tasks"]] == [pooled]
    created = ops_get(client, "/ops/tasks")["tasks"][0]["createdAt"]
    future = (utcnow() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert ops_get(client, f"/ops/tasks?since={future}")["tasks"] == []
    until_first = ops_get(client, "/ops/tasks?until=2000-01-01T00:00:00Z")["tasks"]
    assert until_first == [] and created
    assert {t["id"] for t in ops_get(client, "/ops/tasks?since=2000-01-01T00:00:00Z")["tasks"]} == {
        before,
        pooled,
    }


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("status=lost", "status"),
        ("pool=Not_A_Pool", "pool"),
        ("since=yesterday", "since"),
        ("until=2026-12-07T05:00:00", "until"),
        ("since=2026-12-08T00:00:00Z&until=2026-12-07T00:00:00Z", "since"),
        ("limit=0", "limit"),
        ("owner=" + "a" * 300, "owner"),
        ("colour=red", "colour"),
        ("cursor=forged.cursor", "cursor"),
    ],
)
def test_a_bad_task_listing_query_is_a_400_naming_what_to_fix(client, query, named):
    response = client.http.get(f"/ops/tasks?{query}", headers=operator())
    assert response.status_code == 400, response.body
    assert named in response.json_body["error"]["message"]


@pytest.mark.parametrize(("method", "path"), [r for r in OPERATOR_ROUTES if r[1] != "/ops/tasks"])
def test_every_other_operator_route_refuses_a_query_parameter_it_does_not_take(
    client, method, path
):
    response = call(client, method, f"{path}?limt=5", operator())
    assert response.status_code == 400, (method, path, response.body)
    assert "limt" in response.json_body["error"]["message"]


@pytest.mark.parametrize("action", ["cancel", "retry"])
def test_an_operator_action_on_a_malformed_job_id_is_a_400(client, action):
    response = client.http.post(f"/ops/tasks/{'x' * 200}/{action}", headers=operator())
    assert response.status_code == 400
    assert "jobId" in response.json_body["error"]["message"]


def test_a_cursor_given_for_one_filter_is_refused_for_another(client):
    for user in ("alice", "alice", "bob"):
        submitted(client, user=user)
    cursor = ops_get(client, "/ops/tasks?limit=1")["nextCursor"]
    response = client.http.get(f"/ops/tasks?limit=1&owner=bob&cursor={cursor}", headers=operator())
    assert response.status_code == 400


# -- operator actions on a job ---------------------------------------------------------------


def history_writers(client, stack, job_id, owner="alice"):
    stack.run_stream()
    events = get(client, f"/jobs/{job_id}/events", user=owner).json_body["events"]
    return [(e["status"], e["by"]) for e in events]


def test_the_operator_cancels_any_owners_job_and_the_history_says_who(client, stack):
    job_id = submitted(client, user="alice")
    response = client.http.post(f"/ops/tasks/{job_id}/cancel", headers=operator("ops-ann"))
    assert response.status_code == 200, response.body
    assert response.json_body["status"] == "cancelled"
    assert history_writers(client, stack, job_id)[-1] == ("cancelled", "operator ops-ann")


def test_the_operator_retries_any_owners_failed_job_and_the_history_says_who(
    client, stack, service
):
    job_id = submitted(client, user="alice")
    service.fail(job_id, "broken", by="worker")
    response = client.http.post(f"/ops/tasks/{job_id}/retry", headers=operator("ops-ann"))
    assert response.status_code == 200, response.body
    assert response.json_body["status"] == "submitted"
    assert history_writers(client, stack, job_id)[-1] == ("submitted", "operator ops-ann")


def test_an_operator_action_on_a_missing_job_is_a_404_and_on_a_running_one_a_409(client):
    missing = "0f8b7d8e-0000-4000-8000-000000000000"
    assert client.http.post(f"/ops/tasks/{missing}/cancel", headers=operator()).status_code == 404
    job_id = submitted(client)
    response = client.http.post(f"/ops/tasks/{job_id}/retry", headers=operator())
    assert response.status_code == 409


# -- queues and dead letters ---------------------------------------------------------------


def queue_named(client, name):
    queues = {q["name"]: q for q in ops_get(client, "/ops/queues")["queues"]}
    return queues[name]


def test_queues_show_their_depth_and_in_flight_counts(client, stack):
    submitted(client)
    submitted(client, user="bob")
    stack.run_stream()  # both queued, nothing run
    tasks = queue_named(client, "tasks")
    assert (tasks["visible"], tasks["inFlight"], tasks["exists"]) == (2, 0, True)
    stack.sqs.receive_message(QueueUrl=stack.queue_url, MaxNumberOfMessages=1)
    tasks = queue_named(client, "tasks")
    assert (tasks["visible"], tasks["inFlight"]) == (1, 1)


def test_a_main_queues_oldest_message_is_its_age_as_cloudwatch_last_saw_it(client, stack):
    """SQS tells the age of a queue's oldest message only to CloudWatch (each minute)."""
    submitted(client)
    stack.run_stream()  # queued, not run
    assert "oldestSeconds" not in queue_named(client, "tasks")  # no data point yet
    name = stack.queue_url.rpartition("/")[2]
    boto3.client("cloudwatch").put_metric_data(
        Namespace="AWS/SQS",
        MetricData=[
            {
                "MetricName": "ApproximateAgeOfOldestMessage",
                "Dimensions": [{"Name": "QueueName", "Value": name}],
                "Timestamp": utcnow() - timedelta(minutes=minutes),
                "Value": value,
            }
            for minutes, value in ((3, 12.0), (1, 95.0))
        ],
    )
    assert queue_named(client, "tasks")["oldestSeconds"] == 95  # the latest minute's


def test_the_queues_listed_are_the_services_own(client):
    names = [q["name"] for q in ops_get(client, "/ops/queues")["queues"]]
    expected = ["tasks", "tasks-dlq", "webhooks", "webhooks-dlq", "stream-failures"]
    assert names == [*expected, "pool-remote", "pool-remote-dlq"]
    assert all(q["exists"] for q in ops_get(client, "/ops/queues")["queues"])


def dead_letter(stack, queue_output, body) -> str:
    url = stack.outputs[queue_output]
    return stack.sqs.send_message(QueueUrl=url, MessageBody=body)["MessageId"]


def failed_into_dead_letters(
    client, stack, service, body=POOL_JOB, output="RemotePoolDeadLetterQueueUrl"
):
    """A job that gave up: its message in a dead-letter queue, the job failed."""
    job_id = submitted(client, user="alice", body=body)
    message = TaskMessage(taskId=job_id, type=body["type"], owner="alice").to_json()
    message_id = dead_letter(stack, output, message)
    service.fail(job_id, "gave up: the task's message exhausted its deliveries", by="dead-letters")
    return job_id, message_id


def test_a_dead_letter_is_listed_with_its_job(client, stack, service):
    job_id, message_id = failed_into_dead_letters(client, stack, service)
    listed = ops_get(client, "/ops/queues/pool-remote-dlq/messages")["messages"]
    assert [(m["messageId"], m["taskId"]) for m in listed] == [(message_id, job_id)]
    assert listed[0]["task"]["status"] == "failed" and listed[0]["task"]["owner"] == "alice"
    assert queue_named(client, "pool-remote-dlq")["visible"] == 1  # listing let it go


def test_redriving_a_dead_letter_runs_its_failed_job_again_by_the_operator(client, stack, service):
    job_id, message_id = failed_into_dead_letters(client, stack, service)
    path = f"/ops/queues/pool-remote-dlq/messages/{message_id}/redrive"
    response = client.http.post(path, headers=operator("ops-ann"))
    assert response.status_code == 200, response.body
    assert response.json_body == {"messageId": message_id, "action": "retried", "taskId": job_id}
    assert service.find(job_id).status.value == "submitted"
    assert ops_get(client, "/ops/queues/pool-remote-dlq/messages")["messages"] == []
    assert history_writers(client, stack, job_id)[-1] == ("submitted", "operator ops-ann")


def test_redriving_the_dead_letter_of_a_waiting_pool_job_sends_it_back_to_its_pool(
    client, stack, service
):
    job_id = submitted(client, user="alice", body=POOL_JOB)
    pool_queue = stack.outputs["RemotePoolQueueUrl"]
    stack.sqs.purge_queue(QueueUrl=pool_queue)  # what SQS's redrive to the DLQ did
    message = TaskMessage(taskId=job_id, type=POOL_JOB["type"], owner="alice").to_json()
    message_id = dead_letter(stack, "RemotePoolDeadLetterQueueUrl", message)
    path = f"/ops/queues/pool-remote-dlq/messages/{message_id}/redrive"
    response = client.http.post(path, headers=operator())
    assert response.json_body["action"] == "requeued"
    back = stack.sqs.receive_message(QueueUrl=pool_queue)["Messages"]
    assert [m["Body"] for m in back] == [message]
    assert service.find(job_id).status.value == "submitted"


def test_redriving_a_webhook_dead_letter_sends_it_back_to_the_webhooks_queue(client, stack):
    body = DeliveryMessage(taskId="0f8b7d8e-0000-4000-8000-000000000000", version=2, attempt=5)
    message_id = dead_letter(stack, "WebhooksDeadLetterQueueUrl", body.to_json())
    path = f"/ops/queues/webhooks-dlq/messages/{message_id}/redrive"
    response = client.http.post(path, headers=operator())
    assert response.json_body["action"] == "requeued"
    back = stack.sqs.receive_message(QueueUrl=stack.webhooks_url)["Messages"]
    assert [m["Body"] for m in back] == [body.to_json()]
    assert queue_named(client, "webhooks-dlq")["visible"] == 0


def test_discarding_a_dead_letter_deletes_it_and_fails_its_unfinished_job(client, stack, service):
    job_id = submitted(client, user="alice", body=POOL_JOB)
    message = TaskMessage(taskId=job_id, type="video/render", owner="alice").to_json()
    message_id = dead_letter(stack, "RemotePoolDeadLetterQueueUrl", message)
    path = f"/ops/queues/pool-remote-dlq/messages/{message_id}"
    response = client.http.delete(path, headers=operator("ops-ann"))
    assert response.json_body == {"messageId": message_id, "action": "discarded", "taskId": job_id}
    assert service.find(job_id).status.value == "failed"
    assert queue_named(client, "pool-remote-dlq")["visible"] == 0
    assert history_writers(client, stack, job_id)[-1] == ("failed", "operator ops-ann")


def test_a_redrive_while_another_page_reads_the_queue_waits_for_its_letter(client, stack, service):
    job_id, message_id = failed_into_dead_letters(client, stack, service)
    url = stack.outputs["RemotePoolDeadLetterQueueUrl"]
    # another operator's page listing the queue at this moment holds the letter (2 s here)
    held = stack.sqs.receive_message(QueueUrl=url, VisibilityTimeout=2)["Messages"]
    assert [m["MessageId"] for m in held] == [message_id]
    path = f"/ops/queues/pool-remote-dlq/messages/{message_id}/redrive"
    response = client.http.post(path, headers=operator())
    assert response.status_code == 200, response.body
    assert response.json_body == {"messageId": message_id, "action": "retried", "taskId": job_id}


def test_acting_on_a_dead_letter_that_is_gone_is_a_404(client, stack, service):
    _, message_id = failed_into_dead_letters(client, stack, service)
    path = f"/ops/queues/pool-remote-dlq/messages/{message_id}"
    assert client.http.delete(path, headers=operator()).status_code == 200
    assert client.http.delete(path, headers=operator()).status_code == 404
    assert client.http.post(path + "/redrive", headers=operator()).status_code == 404


def test_a_queue_that_is_not_a_dead_letter_queue_is_a_404_naming_the_ones_that_are(client):
    response = client.http.get("/ops/queues/tasks/messages", headers=operator())
    assert response.status_code == 404
    assert "tasks-dlq" in response.json_body["error"]["message"]


def test_a_malformed_message_id_is_a_400(client):
    path = "/ops/queues/tasks-dlq/messages/not%20an%20id!/redrive"
    assert client.http.post(path, headers=operator()).status_code == 400


# -- stuck work --------------------------------------------------------------------------------


def stuck_kinds(client):
    return [(s["kind"], s["taskId"]) for s in ops_get(client, "/ops/stuck")["stuck"]]


def test_a_job_parked_behind_its_owners_limit_is_stuck_with_why(client, stack):
    ids = [submitted(client, user="alice") for _ in range(4)]  # the limit is 3
    stack.run_stream()
    stuck = ops_get(client, "/ops/stuck")["stuck"]
    assert [(s["kind"], s["taskId"]) for s in stuck] == [("parked", ids[3])]
    assert "alice runs 3 of MAX_RUNNING_PER_OWNER=3" in stuck[0]["reason"]


def test_a_job_past_its_deadline_is_stuck(client, stack, service, monkeypatch):
    job_id = submitted(client, user="alice")
    later = utcnow() + timedelta(hours=2)
    monkeypatch.setattr(service, "clock", lambda: later)
    assert stuck_kinds(client) == [("past_deadline", job_id)]


def test_an_external_job_without_a_heartbeat_is_stuck(client, service, monkeypatch):
    body = {"type": "media/convert", "runner": "external", "heartbeatSeconds": 60}
    job_id = submitted(client, user="alice", body=body)
    later = utcnow() + timedelta(minutes=5)
    monkeypatch.setattr(service, "clock", lambda: later)
    assert stuck_kinds(client) == [("no_heartbeat", job_id)]


def test_a_job_scheduled_in_the_past_that_has_not_started_is_stuck(client, service, monkeypatch):
    run_at = (utcnow() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    job_id = submitted(client, user="alice", body={**sleep_job(), "runAt": run_at})
    assert stuck_kinds(client) == []
    later = utcnow() + timedelta(hours=1, minutes=5)
    monkeypatch.setattr(service, "clock", lambda: later)
    assert stuck_kinds(client) == [("scheduled_past", job_id)]


# -- metrics -----------------------------------------------------------------------------------


def test_metrics_are_openmetrics_text_with_the_consoles_figures(client, stack):
    ids = [submitted(client, user="alice") for _ in range(4)]
    stack.run_stream()  # 3 queued, 1 parked
    response = client.http.get("/metrics", headers=operator())
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    text = response.body.decode() if isinstance(response.body, bytes) else response.body
    lines = text.splitlines()
    assert lines[-1] == "# EOF"
    assert 'taskstatus_queue_messages{queue="tasks",state="visible"} 3' in lines
    assert 'taskstatus_queue_messages{queue="tasks-dlq",state="visible"} 0' in lines
    assert 'taskstatus_stuck_tasks{kind="parked"} 1' in lines
    assert ids


# -- usage per owner and latency per type ----------------------------------------------------


def usage_of(client, owner):
    return next(u for u in ops_get(client, "/ops/usage")["owners"] if u["owner"] == owner)


def test_usage_counts_each_owners_submitted_failed_running_and_parked(client, stack, service):
    alice = [submitted(client, user="alice") for _ in range(4)]  # the limit is 3: one parks
    submitted(client, user="bob")
    stack.run_stream()
    service.fail(alice[0], "broken", by="worker")
    stack.run_stream()
    counts = {"submitted": 4, "completed": 0, "failed": 1}
    assert usage_of(client, "alice") == {
        "owner": "alice",
        "lastHour": counts,
        "lastDay": counts,
        "running": 3,  # the failed one's slot went to the parked one
        "parked": 0,
    }
    assert usage_of(client, "bob")["lastDay"] == {"submitted": 1, "completed": 0, "failed": 0}


def test_a_stream_record_delivered_twice_is_counted_once(client, stack, service):
    from chalicelib.bootstrap import container

    job_id = submitted(client, user="alice")
    stack.run_stream()
    task = service.find(job_id)
    record = {
        "eventID": "again",
        "eventName": "INSERT",
        "dynamodb": {
            "Keys": {"id": {"S": job_id}},
            "NewImage": service.store.attributes(task),
            "SequenceNumber": "1",
        },
    }
    c = container()
    handler = c.stream_handler
    handler.handle_batch([record])
    handler.handle_batch([record])
    assert usage_of(client, "alice")["lastDay"]["submitted"] == 1


def test_latency_shows_wait_and_run_quantiles_per_type_from_known_runs():
    from datetime import UTC, datetime

    from chalicelib import tallies
    from chalicelib.model import Status, Task

    now = datetime(2026, 12, 7, 5, 30, tzinfo=UTC)
    counted = tallies.Tallies("unused")
    for waited in [1] * 9 + [100]:
        created = now - timedelta(seconds=waited + 2)
        task = Task.new(owner="alice", type="demo/sleep", ttl_seconds=3600, now=created)
        started = task.replace(
            status=Status.STARTED, started_at=created + timedelta(seconds=waited)
        )
        started = started.replace(updated_at=started.started_at, version=2)
        counted.count(Status.SUBMITTED, False, started)
        done = started.replace(status=Status.COMPLETED, completed_at=now, updated_at=now, version=3)
        counted.count(Status.STARTED, False, done)
    items = [
        {"pk": {"S": pk}, "sk": {"S": sk}, counted.names[(pk, sk)][0]: {"S": "demo/sleep"}}
        | {name: {"N": str(n)} for name, n in counters.items()}
        for (pk, sk), counters in counted.added.items()
    ]
    window = tallies.windows({tallies.hour_key(now): items}, now, "type")["demo/sleep"]
    assert tallies.quantile(window.day, "w", 0.5) == 1.0
    assert tallies.quantile(window.day, "w", 0.95) == 120.0  # 100 s falls in (60, 120]
    assert tallies.quantile(window.day, "r", 0.5) == 2.0  # every run took 2 s
    assert tallies.total(window.hour, "w") == 10


def test_the_last_hour_takes_the_share_of_the_previous_clock_hour_still_in_it():
    from datetime import UTC, datetime

    from chalicelib import tallies

    now = datetime(2026, 12, 7, 5, 15, tzinfo=UTC)  # 45 minutes of 04:00-05:00 are in the hour

    def item(hour, n):
        return {
            "pk": {"S": hour},
            "sk": {"S": "owner#5:alice"},
            "owner": {"S": "alice"},
            "s": {"N": str(n)},
        }

    hours = {
        tallies.hour_key(now): [item(tallies.hour_key(now), 10)],
        tallies.hour_key(now - timedelta(hours=1)): [item("prev", 40)],
        tallies.hour_key(now - timedelta(hours=5)): [item("older", 100)],
    }
    window = tallies.windows(hours, now, "owner")["alice"]
    assert window.hour["s"] == 10 + 40 * 0.75
    assert window.day["s"] == 150


def test_latency_route_answers_each_type_for_the_hour_and_the_day(client, stack):
    submitted(client, user="alice")
    stack.settle()
    types = [t for t in ops_get(client, "/ops/latency")["types"] if t["type"] == "demo/sleep"]
    assert [t["window"] for t in types] == ["hour", "day"]
    for window in types:
        assert (window["started"], window["finished"]) == (1, 1)
        assert window["waitP50"] in tallies_bounds() and window["runP95"] in tallies_bounds()


def tallies_bounds():
    from chalicelib.tallies import BOUNDS

    return [float(b) for b in BOUNDS]


def test_webhook_health_per_host_counts_attempts_failures_and_exhaustion(
    client, stack, receiver, no_wait
):
    failing = receiver([500])
    working = receiver([200])
    for url in (failing.url, working.url):
        submit(client, {**sleep_job(), "webhook": {"url": url}}, user="alice")
    stack.settle()
    hosts = ops_get(client, "/ops/webhooks")["hosts"]
    # both receivers listen on 127.0.0.1: one host, 8 failed attempts (the last exhausted)
    # and one delivered
    assert [h["host"] for h in hosts] == ["127.0.0.1"]
    day = {"attempts": 9, "failed": 8, "exhausted": 1}
    assert hosts[0]["lastDay"] == day and hosts[0]["lastHour"] == day
    assert hosts[0]["failureRate"] == round(8 / 9, 3)
    assert hosts[0]["lastError"] == "HTTP 500"


# -- live: operator connections get every owner's changes, coalesced per batch ---------------


def ops_messages(connection_id):
    from tests.unit.test_realtime import sent

    return [m for m in sent(connection_id) if m["type"] == "ops_changes"]


def operator_query():
    token = operator()["Authorization"].removeprefix("Bearer ")
    return {"token": token, "watch": "operators"}


def test_an_operator_connection_gets_every_owners_changes_in_one_message_per_batch(client, stack):
    from chalicelib.bootstrap import container

    realtime = container().realtime
    assert realtime.connect("op-1", operator_query()) == {"statusCode": 200}
    ids = [submitted(client, user=user) for user in ("alice", "bob", "carol")]
    stack.run_stream()
    [message] = ops_messages("op-1")
    assert message["count"] == 3
    assert {(c["jobId"], c["owner"]) for c in message["changes"]} == set(
        zip(ids, ["alice", "bob", "carol"], strict=True)
    )


def test_a_user_cannot_watch_every_owners_changes(client):
    from chalicelib.bootstrap import container

    query = {"token": token_for_user("alice"), "watch": "operators"}
    assert container().realtime.connect("user-1", query)["statusCode"] == 403


def test_an_operators_own_connection_without_watch_gets_no_other_owners_changes(client, stack):
    from chalicelib.bootstrap import container

    query = {"token": operator_query()["token"]}
    assert container().realtime.connect("op-own", query) == {"statusCode": 200}
    submitted(client, user="alice")
    stack.run_stream()
    from moto.apigatewaymanagementapi.models import apigatewaymanagementapi_backends

    backend = apigatewaymanagementapi_backends["123456789012"]["us-east-1"]
    assert "op-own" not in backend.connections


def test_operator_connections_are_bounded(client):
    from chalicelib.bootstrap import container
    from chalicelib.realtime.operators import MAX_OPERATOR_CONNECTIONS

    realtime = container().realtime
    for n in range(MAX_OPERATOR_CONNECTIONS):
        assert realtime.connect(f"op-{n}", operator_query()) == {"statusCode": 200}
    assert realtime.connect("op-over", operator_query())["statusCode"] == 429
    realtime.disconnect("op-0")
    assert realtime.connect("op-again", operator_query()) == {"statusCode": 200}


def token_for_user(user):
    from tests.conftest import token_for

    return token_for(user)
