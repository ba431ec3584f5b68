"""Webhooks: signed per Standard Webhooks, retried on schedule, logged, replayable, SSRF-safe."""

import json

import pytest
from standardwebhooks import Webhook

from chalicelib import webhooks
from chalicelib.webhooks.ssrf import UnsafeUrl, check_url
from tests.conftest import auth, reset_caches
from tests.unit.helpers import get, sleep_job, submit, webhook_secret


def job_with_webhook(client, stack, url, user="alice"):
    job_id = submit(client, {**sleep_job(), "webhook": {"url": url}}, user=user).json_body["jobId"]
    stack.settle()
    return job_id


def deliveries(client, job_id, user="alice"):
    return get(client, f"/jobs/{job_id}/deliveries", user=user).json_body["deliveries"]


def test_a_finished_job_posts_a_signed_job_document(client, stack, receiver):
    hook = receiver([200])
    job_id = job_with_webhook(client, stack, hook.url)
    assert len(hook.deliveries) == 1
    delivery = hook.deliveries[0]
    payload = Webhook(webhook_secret(client)).verify(delivery.body, delivery.headers)
    assert payload["jobId"] == job_id
    assert payload["status"] == "completed"
    assert payload["event"] == "job.completed"
    assert delivery.headers["webhook-id"].startswith("msg_")


def test_a_tampered_body_does_not_verify(client, stack, receiver):
    hook = receiver([200])
    job_with_webhook(client, stack, hook.url)
    delivery = hook.deliveries[0]
    with pytest.raises(Exception, match="signature"):
        Webhook(webhook_secret(client)).verify(
            delivery.body.replace(b"completed", b"failed"), delivery.headers
        )


def test_500_twice_then_200_delivers_three_times_with_one_id(client, stack, receiver, no_wait):
    hook = receiver([500, 500, 200])
    job_id = job_with_webhook(client, stack, hook.url)
    assert len(hook.deliveries) == 3
    assert len(set(hook.ids())) == 1
    log = deliveries(client, job_id)
    assert [(d["attempt"], d["statusCode"], d["state"]) for d in log] == [
        (1, 500, "retrying"),
        (2, 500, "retrying"),
        (3, 200, "delivered"),
    ]


def test_a_400_is_not_retried(client, stack, receiver, no_wait):
    hook = receiver([400])
    job_id = job_with_webhook(client, stack, hook.url)
    assert len(hook.deliveries) == 1
    assert deliveries(client, job_id)[0]["state"] == "failed"


@pytest.mark.parametrize("status", [408, 429, 503])
def test_retryable_statuses_are_retried(client, stack, receiver, no_wait, status):
    hook = receiver([status, 200])
    job_with_webhook(client, stack, hook.url)
    assert len(hook.deliveries) == 2


def test_a_redirect_is_final_and_not_followed(client, stack, receiver, no_wait):
    target = receiver([200])
    hook = receiver([302], headers={"Location": target.url})
    job_id = job_with_webhook(client, stack, hook.url)
    assert target.deliveries == []
    assert deliveries(client, job_id)[0]["state"] == "failed"


def test_a_timeout_is_retried(client, stack, receiver, no_wait, container):
    container(webhook_timeout_seconds=0.3)
    hook = receiver([200, 200], delays=[1.0, 0])
    job_id = job_with_webhook(client, stack, hook.url)
    log = deliveries(client, job_id)
    assert log[0]["statusCode"] is None and "timed out" in log[0]["error"]
    assert log[-1]["state"] == "delivered"
    assert len(set(hook.ids())) == 1


def test_exhaustion_is_logged_after_the_last_attempt(client, stack, receiver, no_wait):
    hook = receiver([500])
    job_id = job_with_webhook(client, stack, hook.url)
    log = deliveries(client, job_id)
    assert len(hook.deliveries) == webhooks.MAX_ATTEMPTS == 8
    assert log[-1]["state"] == "exhausted"
    assert [d["attempt"] for d in log] == list(range(1, 9))


def test_a_duplicate_stream_record_sends_once(client, stack, receiver):
    hook = receiver([200])
    job_with_webhook(client, stack, hook.url)
    stack.stream_pump.positions.clear()  # replay every record of the stream
    stack.settle()
    assert len(hook.deliveries) == 1


def test_a_duplicate_delivery_message_sends_once(client, stack, receiver):
    hook = receiver([200])
    job_id = job_with_webhook(client, stack, hook.url)
    task = stack.app.bootstrap.container().service.find(job_id)
    message = webhooks.DeliveryMessage(taskId=job_id, version=task.version, attempt=1)
    stack.sqs.send_message(QueueUrl=stack.webhooks_url, MessageBody=message.to_json())
    stack.run_webhooks()
    assert len(hook.deliveries) == 1


def test_manual_redelivery_resends_with_the_same_id(client, stack, receiver):
    hook = receiver([200])
    job_id = job_with_webhook(client, stack, hook.url)
    response = client.http.post(f"/jobs/{job_id}/webhook", headers=auth())
    assert response.status_code == 202
    stack.run_webhooks()
    assert len(hook.deliveries) == 2
    assert hook.ids()[0] == hook.ids()[1] == response.json_body["eventId"]


def test_manual_redelivery_without_a_webhook_is_409(client, stack):
    job_id = submit(client).json_body["jobId"]
    response = client.http.post(f"/jobs/{job_id}/webhook", headers=auth())
    assert response.status_code == 409
    assert "no webhook" in response.json_body["error"]["message"]


def test_resending_the_webhook_of_an_unfinished_job_is_409_and_sends_nothing(
    client, stack, receiver
):
    """Its only event is sent when it finishes; a resend before then would invent one."""
    hook = receiver([200])
    job_id = submit(client, {**sleep_job(), "webhook": {"url": hook.url}}).json_body["jobId"]
    stack.run_stream()  # queued, not yet run: `submitted`
    response = client.http.post(f"/jobs/{job_id}/webhook", headers=auth())
    assert response.status_code == 409
    assert (
        "the job is submitted: its webhook is sent when it finishes"
        in (response.json_body["error"]["message"])
    )
    stack.run_webhooks()
    assert hook.deliveries == []


def test_an_unfinished_jobs_refused_resend_does_not_hold_back_the_next(client, stack, receiver):
    hook = receiver([200])
    job_id = submit(client, {**sleep_job(), "webhook": {"url": hook.url}}).json_body["jobId"]
    assert client.http.post(f"/jobs/{job_id}/webhook", headers=auth()).status_code == 409
    stack.settle()
    assert client.http.post(f"/jobs/{job_id}/webhook", headers=auth()).status_code == 202
    stack.run_webhooks()
    assert [json.loads(d.body)["event"] for d in hook.deliveries] == ["job.completed"] * 2


def test_manual_redelivery_of_another_users_job_is_404(client, stack, receiver):
    job_id = job_with_webhook(client, stack, receiver([200]).url)
    assert client.http.post(f"/jobs/{job_id}/webhook", headers=auth("bob")).status_code == 404


def test_the_delivery_log_is_only_for_the_owner(client, stack, receiver):
    job_id = job_with_webhook(client, stack, receiver([200]).url)
    assert get(client, f"/jobs/{job_id}/deliveries", user="bob").status_code == 404


def test_a_rotation_signs_with_both_secrets(client, stack, receiver, monkeypatch):
    old = "whsec_" + "b2xkLXNlY3JldC1iZWluZy1yb3RhdGVkLW91dA=="
    new = "whsec_" + "bmV3LXNlY3JldC1pbi11c2UtZnJvbS1ub3ctb24="
    monkeypatch.setenv("WEBHOOK_SECRET", new)
    monkeypatch.setenv("WEBHOOK_PREVIOUS_SECRET", old)
    reset_caches()
    hook = receiver([200])
    job_with_webhook(client, stack, hook.url)
    delivery = hook.deliveries[0]
    assert len(delivery.headers["webhook-signature"].split(" ")) == 2
    secrets = get(client, "/webhooks/secret").json_body
    assert secrets["secret"] != secrets["previousSecret"]
    for secret in (secrets["secret"], secrets["previousSecret"]):
        Webhook(secret).verify(delivery.body, delivery.headers)


def test_only_terminal_changes_send(client, stack, receiver):
    hook = receiver([200])
    job_with_webhook(client, stack, receiver([200]).url)
    job_id = submit(client, {**sleep_job(steps=3), "webhook": {"url": hook.url}}).json_body["jobId"]
    stack.settle()
    assert [json.loads(d.body)["status"] for d in hook.deliveries] == ["completed"]
    assert json.loads(hook.deliveries[0].body)["jobId"] == job_id


# -- retry schedule -----------------------------------------------------------------


def test_the_schedule_is_standard_webhooks():
    assert webhooks.SCHEDULE_SECONDS == (0, 5, 300, 1800, 7200, 18000, 36000, 36000)


@pytest.mark.parametrize("attempt", range(1, 8))
def test_next_delay_follows_the_schedule_with_jitter(attempt):
    outcome = webhooks.Outcome(500, "HTTP 500", 10)
    delay = webhooks.RetrySchedule().next_delay(attempt, outcome)
    scheduled = webhooks.SCHEDULE_SECONDS[attempt]
    assert 0.9 * scheduled <= delay <= 1.1 * scheduled


def test_a_longer_retry_after_is_honoured():
    outcome = webhooks.Outcome(429, "HTTP 429", 10, retry_after=120)
    assert webhooks.RetrySchedule().next_delay(1, outcome) == 120


def test_a_far_future_retry_after_is_capped_at_the_longest_step():
    outcome = webhooks.Outcome(429, "HTTP 429", 10, retry_after=10**9)
    assert webhooks.RetrySchedule().next_delay(1, outcome) == webhooks.SCHEDULE_SECONDS[-1]


# -- SSRF ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://169.254.169.254/latest/meta-data/",
        "https://[fd00:ec2::254]/",
        "https://10.1.2.3/hook",
        "https://192.168.0.10/hook",
        "https://127.0.0.1/hook",
        "https://localhost/hook",
        "https://[::1]/hook",
        "https://[::ffff:10.0.0.1]/hook",
        "https://0.0.0.0/hook",
        "http://93.184.216.34/hook",
        "ftp://93.184.216.34/hook",
        "https://user:pw@93.184.216.34/hook",
        "https://no-such-host.invalid/hook",
        "https://93.184.216.34:25/hook",
    ],
)
def test_unsafe_webhook_urls_are_refused_at_submit(client, stack, strict, url):
    response = submit(client, {**sleep_job(), "webhook": {"url": url}})
    assert response.status_code == 422
    assert response.json_body["error"]["errors"][0]["field"] == "webhook.url"
    assert stack.task_count() == 0


def test_a_public_https_url_is_accepted(strict):
    check_url("https://hooks.example/x", strict, resolver=lambda host, port: ["93.184.216.34"])


def test_a_host_that_later_resolves_privately_is_refused_at_delivery(
    client, stack, receiver, container
):
    hook = receiver([200])
    job_id = submit(client, {**sleep_job(), "webhook": {"url": hook.url}}).json_body["jobId"]
    container(webhook_allow_private=False)  # e.g. DNS now points inside
    stack.settle()
    assert hook.deliveries == []
    log = deliveries(client, job_id)
    assert log[0]["state"] == "failed" and "refused" in log[0]["error"]


def test_check_url_explains_the_refusal(strict):
    with pytest.raises(UnsafeUrl, match="not public"):
        check_url("https://169.254.169.254/", strict)


def test_a_delivery_checked_with_another_users_secret_is_refused_as_the_wrong_secret(
    client, stack, receiver
):
    from taskstatus_client.webhooks import DeliveryVerifier, InvalidDelivery

    hook = receiver([200])
    job_with_webhook(client, stack, hook.url, user="alice")
    delivery = hook.deliveries[0]
    with pytest.raises(InvalidDelivery) as refused:
        DeliveryVerifier(webhook_secret(client, "dev-user")).verify(delivery.body, delivery.headers)
    assert refused.value.reason == "wrong_secret"
    assert DeliveryVerifier(webhook_secret(client, "alice")).verify(delivery.body, delivery.headers)
