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


OTHER_USERS_SECRET = "whsec_" + "c29tZW9uZS1lbHNlcy1zZWNyZXQtMzItYnl0ZXM="


def refusal(body=BODY, headers=None) -> InvalidDelivery:
    with pytest.raises(InvalidDelivery) as refused:
        DeliveryVerifier(SECRET).verify(body, signed() if headers is None else headers)
    return refused.value


def test_a_delivery_signed_with_another_users_secret_is_refused_as_the_wrong_secret():
    refused = refusal(headers=signed(secret=OTHER_USERS_SECRET))
    assert refused.reason == "wrong_secret"
    assert "each user has their own" in str(refused)
    assert "taskstatus --token $TOKEN webhook-secret" in str(refused)


def test_a_body_changed_after_signing_is_refused_as_the_wrong_secret_with_a_raw_bytes_hint():
    refused = refusal(body=BODY.replace("completed", "failed"))
    assert refused.reason == "wrong_secret"
    assert "raw bytes" in str(refused)


def test_an_old_timestamp_is_refused_as_stale_with_its_age():
    refused = refusal(headers=signed(at=datetime.now(UTC) - timedelta(minutes=10)))
    assert refused.reason == "stale"
    assert "is 600 s old" in str(refused) or "is 601 s old" in str(refused)
    assert "clock" in str(refused)


def test_a_timestamp_in_the_future_is_refused_as_stale():
    refused = refusal(headers=signed(at=datetime.now(UTC) + timedelta(minutes=10)))
    assert refused.reason == "stale"
    assert "in the future" in str(refused)


def test_an_old_delivery_signed_with_another_secret_is_reported_as_the_wrong_secret():
    old = datetime.now(UTC) - timedelta(hours=1)
    assert refusal(headers=signed(at=old, secret=OTHER_USERS_SECRET)).reason == "wrong_secret"


def test_a_missing_header_is_refused_as_malformed_and_named():
    headers = {k: v for k, v in signed().items() if k != "webhook-signature"}
    refused = refusal(headers=headers)
    assert refused.reason == "malformed"
    assert "missing header(s) webhook-signature" in str(refused)


@pytest.mark.parametrize("signature", ["no-comma", "v1,not base64!", "v2,c2lnbmF0dXJl", "", "v1"])
def test_an_unreadable_signature_header_is_refused_as_malformed_not_raised_as_another_error(
    signature,
):
    refused = refusal(headers={**signed(), "webhook-signature": signature})
    assert refused.reason == "malformed"


def test_a_timestamp_that_is_not_a_number_is_refused_as_malformed():
    refused = refusal(headers={**signed(), "webhook-timestamp": "yesterday"})
    assert refused.reason == "malformed"
    assert "'yesterday' is not a Unix time" in str(refused)


def test_a_signed_body_that_is_not_json_is_refused_as_malformed():
    refused = refusal(body="not json", headers=signed(body="not json"))
    assert refused.reason == "malformed"
    assert "not JSON" in str(refused)


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
