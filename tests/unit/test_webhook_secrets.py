"""Each owner's deliveries are signed with a secret of their own, read from the API.

The attack: bob, a user of the same stage, knows his own signing secret. With one
secret shared by every user he could sign a delivery that alice's receiver accepts.
"""

import base64
import hashlib
import hmac
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from chalicelib.webhooks import signing
from tests.conftest import UNIT_ENV
from tests.unit.helpers import get, sleep_job, submit, webhook_secret
from tests.unit.test_api_keys import new_key, with_key


def finished_job_with_webhook(client, stack, url, user="alice", **hook):
    body = {**sleep_job(), "webhook": {"url": url, **hook}}
    job_id = submit(client, body, user=user).json_body["jobId"]
    stack.settle()
    return job_id


def test_each_owner_reads_a_secret_of_their_own(client):
    alice, bob = webhook_secret(client, "alice"), webhook_secret(client, "bob")
    assert alice.startswith("whsec_") and bob.startswith("whsec_")
    assert alice != bob
    assert UNIT_ENV["WEBHOOK_SECRET"] not in (alice, bob)


def test_the_secret_is_stable_between_reads(client):
    assert webhook_secret(client) == webhook_secret(client)


def test_a_delivery_signed_with_bobs_secret_does_not_verify_for_alice(client, stack, receiver):
    hook = receiver([200])
    job_id = finished_job_with_webhook(client, stack, hook.url)
    [delivery] = hook.deliveries
    bobs = Webhook(webhook_secret(client, "bob"))
    forged_id, now = "msg_forged", datetime.now(UTC)
    forged_body = delivery.body.decode().replace("completed", "failed")
    forged_headers = {
        "webhook-id": forged_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": bobs.sign(forged_id, now, forged_body),
    }
    alices = Webhook(webhook_secret(client, "alice"))
    with pytest.raises(WebhookVerificationError):
        alices.verify(forged_body, forged_headers)
    assert alices.verify(delivery.body, delivery.headers)["jobId"] == job_id


def test_bobs_secret_does_not_verify_alices_deliveries(client, stack, receiver):
    hook = receiver([200])
    finished_job_with_webhook(client, stack, hook.url)
    [delivery] = hook.deliveries
    with pytest.raises(WebhookVerificationError):
        Webhook(webhook_secret(client, "bob")).verify(delivery.body, delivery.headers)


def test_the_stage_secret_itself_signs_no_delivery(client, stack, receiver):
    hook = receiver([200])
    finished_job_with_webhook(client, stack, hook.url)
    [delivery] = hook.deliveries
    with pytest.raises(WebhookVerificationError):
        Webhook(UNIT_ENV["WEBHOOK_SECRET"]).verify(delivery.body, delivery.headers)


def test_the_transflow_signature_is_keyed_with_the_owners_secret(client, stack, receiver):
    hook = receiver([200])
    finished_job_with_webhook(client, stack, hook.url, format="transflow")
    [delivery] = hook.deliveries
    for user, matches in (("alice", True), ("bob", False)):
        key = webhook_secret(client, user).encode()
        expected = "sha256=" + hmac.new(key, delivery.body, hashlib.sha256).hexdigest()
        assert (delivery.headers["x-transflow-signature"] == expected) is matches


def test_a_read_only_key_cannot_read_the_signing_secret(client):
    reader = new_key(client, scopes=["jobs:read"])
    response = client.http.get("/webhooks/secret", headers=with_key(reader))
    assert response.status_code == 403
    assert "jobs:write" in response.json_body["error"]["message"]


def test_a_key_that_can_write_reads_its_owners_secret(client):
    writer = new_key(client, scopes=["jobs:read", "jobs:write"])
    response = client.http.get("/webhooks/secret", headers=with_key(writer))
    assert response.json_body["secret"] == webhook_secret(client, "alice")


def test_the_secret_needs_credentials(client):
    assert client.http.get("/webhooks/secret").status_code == 401


def test_no_previous_secret_is_shown_outside_a_rotation(client):
    assert "previousSecret" not in get(client, "/webhooks/secret").json_body


def test_a_stage_without_a_secret_signs_nothing():
    with pytest.raises(signing.SigningSecretMissing, match="WEBHOOK_SECRET"):
        signing.owner_secrets("", "", "alice")


def test_secrets_differ_for_owners_that_share_a_prefix():
    stage = UNIT_ENV["WEBHOOK_SECRET"]
    assert signing.owner_secret(stage, "al") != signing.owner_secret(stage, "alice")


def test_the_derivation_is_the_documented_hmac_of_the_owner_under_the_stage_key():
    """README: HMAC-SHA256 of the owner under the stage secret's key (the base64 after whsec_)."""
    digest = hmac.new(b"secret", b"taskstatus/webhook-signing/v1\x00alice", hashlib.sha256).digest()
    expected = "whsec_" + base64.b64encode(digest).decode()
    assert signing.owner_secret("whsec_c2VjcmV0", "alice") == expected


def test_a_stage_secret_that_is_not_whsec_base64_is_used_as_text():
    digest = hmac.new(b"plain text", b"taskstatus/webhook-signing/v1\x00bob", hashlib.sha256)
    expected = "whsec_" + base64.b64encode(digest.digest()).decode()
    assert signing.owner_secret("plain text", "bob") == expected


def test_the_previous_stage_secret_adds_a_second_owner_secret():
    current, previous = signing.owner_secrets("whsec_bmV3", "whsec_b2xk", "alice")
    assert current == signing.owner_secret("whsec_bmV3", "alice")
    assert previous == signing.owner_secret("whsec_b2xk", "alice")
    assert signing.owner_secrets("whsec_bmV3", "", "alice") == [current]


def test_the_secret_is_never_cached(client):
    assert get(client, "/webhooks/secret").headers["Cache-Control"] == "no-store"


def test_a_whsec_secret_that_is_not_valid_base64_is_used_as_text():
    """Not decoded leniently: dropping the stray `!` would give the key of another secret."""
    text = "whsec_c2Vj!cmV0"
    digest = hmac.new(text.encode(), b"taskstatus/webhook-signing/v1\x00bob", hashlib.sha256)
    expected = "whsec_" + base64.b64encode(digest.digest()).decode()
    assert signing.owner_secret(text, "bob") == expected
