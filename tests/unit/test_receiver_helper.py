"""The receiver-side helper users put in their webhook endpoint."""

from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook

from taskstatus_client.webhooks import DeliveryVerifier, DuplicateDelivery, InvalidDelivery

SECRET = "whsec_" + "cmVjZWl2ZXItdGVzdC1zZWNyZXQtMzItYnl0ZXM="
BODY = '{"jobId":"j1","status":"completed","event":"job.completed"}'


def signed(webhook_id="msg_1", at=None, secret=SECRET, body=BODY):
    at = at or datetime.now(UTC)
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(webhook_id, at, body),
    }


def test_a_valid_delivery_returns_the_job():
    assert DeliveryVerifier(SECRET).verify(BODY, signed())["jobId"] == "j1"


def test_a_second_delivery_of_a_handled_id_is_a_duplicate():
    verifier = DeliveryVerifier(SECRET)
    verifier.handle(BODY, signed("msg_7"), lambda job: None)
    with pytest.raises(DuplicateDelivery):
        verifier.handle(BODY, signed("msg_7"), lambda job: None)


def test_a_delivery_whose_handler_failed_is_handled_again_on_retry():
    verifier = DeliveryVerifier(SECRET)
    handled = []

    def flaky(job):
        if not handled:
            handled.append("crashed")
            raise RuntimeError("database down")
        handled.append(job["jobId"])

    with pytest.raises(RuntimeError):
        verifier.handle(BODY, signed("msg_8"), flaky)
    verifier.handle(BODY, signed("msg_8"), flaky)
    assert handled == ["crashed", "j1"]


def test_verify_alone_does_not_mark_a_delivery_as_handled():
    verifier = DeliveryVerifier(SECRET)
    verifier.verify(BODY, signed("msg_10"))
    assert verifier.handle(BODY, signed("msg_10"), lambda job: job["status"]) == "completed"


def test_a_wrong_signature_is_invalid():
    other = "whsec_" + "c29tZW9uZS1lbHNlcy1zZWNyZXQtMzItYnl0ZXM="
    with pytest.raises(InvalidDelivery):
        DeliveryVerifier(SECRET).verify(BODY, signed(secret=other))


def test_an_old_timestamp_is_refused():
    with pytest.raises(InvalidDelivery, match="too old"):
        DeliveryVerifier(SECRET).verify(BODY, signed(at=datetime.now(UTC) - timedelta(minutes=10)))


def test_headers_are_matched_case_insensitively():
    headers = {k.title(): v for k, v in signed().items()}
    assert DeliveryVerifier(SECRET).verify(BODY, headers)["status"] == "completed"


def test_either_secret_verifies_during_a_rotation():
    old = "whsec_" + "b2xkLXJlY2VpdmVyLXNlY3JldC0zMi1ieXRlcyE="
    assert DeliveryVerifier(SECRET, old).verify(BODY, signed(secret=old))


def test_a_refused_delivery_is_not_remembered():
    verifier = DeliveryVerifier(SECRET)
    with pytest.raises(InvalidDelivery):
        verifier.handle(BODY + " ", signed("msg_9"), lambda job: None)
    assert verifier.handle(BODY, signed("msg_9"), lambda job: job)
