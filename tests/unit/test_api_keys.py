"""API keys: created with a JWT, shown once, stored hashed, scoped, revocable, bounded."""

import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib import aws
from chalicelib.bootstrap import container
from chalicelib.edge import api_keys
from chalicelib.edge.api_keys import ApiKeyStore
from chalicelib.settings import get_settings
from tests.conftest import auth, token_for
from tests.unit.helpers import sleep_job

BOTH = ["jobs:read", "jobs:write"]


def create(client, user="alice", headers=None, **body):
    body = {"name": "ci", "scopes": BOTH, **body}
    return client.http.post(
        "/api-keys", headers={**auth(user), **(headers or {})}, body=json.dumps(body)
    )


def new_key(client, user="alice", **body) -> str:
    response = create(client, user, **body)
    assert response.status_code == 201, response.json_body
    return response.json_body["key"]


def with_key(key, header="x-api-key"):
    if header == "bearer":
        return {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    return {"X-API-Key": key, "Content-Type": "application/json"}


def submit_with(client, key):
    return client.http.post("/jobs", headers=with_key(key), body=json.dumps(sleep_job()))


def test_a_new_key_is_shown_once_with_tsk_and_32_random_bytes(client):
    response = create(client, name="deploys")
    assert response.status_code == 201
    body = response.json_body
    assert body["key"].startswith("tsk_") and len(body["key"]) >= 4 + 43
    assert body["prefix"] == body["key"][:12]
    assert response.headers["Location"] == f"/api-keys/{body['id']}"
    assert body["scopes"] == BOTH and body["name"] == "deploys"


def test_only_the_keys_hash_is_stored(client, stack):
    key = new_key(client)
    items = stack.ddb.scan(TableName=stack.outputs["RecordsTableName"])["Items"]
    assert key not in json.dumps(items)
    assert api_keys.digest_of(key) in json.dumps(items)


def test_the_list_shows_each_key_without_the_key(client):
    key = new_key(client, name="one", scopes=["jobs:read"])
    client.http.get("/jobs", headers=with_key(key))
    listed = client.http.get("/api-keys", headers=auth("alice")).json_body["apiKeys"]
    assert len(listed) == 1
    (entry,) = listed
    assert set(entry) == {"id", "name", "prefix", "scopes", "createdAt", "expiresAt", "lastUsedAt"}
    assert entry["name"] == "one" and entry["scopes"] == ["jobs:read"]
    assert entry["lastUsedAt"] is not None
    assert key not in json.dumps(listed)


def test_a_user_lists_only_their_own_keys(client):
    new_key(client, "alice")
    assert client.http.get("/api-keys", headers=auth("bob")).json_body == {"apiKeys": []}


@pytest.mark.parametrize("header", ["x-api-key", "bearer"])
def test_a_key_acts_as_its_owner(client, header):
    key = new_key(client, "alice")
    response = client.http.post(
        "/jobs", headers=with_key(key, header), body=json.dumps(sleep_job())
    )
    assert response.status_code == 202
    job_id = response.json_body["jobId"]
    assert client.http.get(f"/jobs/{job_id}", headers=auth("alice")).status_code == 200
    assert client.http.get(f"/jobs/{job_id}", headers=auth("bob")).status_code == 404


def test_a_read_only_key_cannot_write(client, stack):
    key = new_key(client, scopes=["jobs:read"])
    response = submit_with(client, key)
    assert response.status_code == 403
    assert "jobs:write" in response.json_body["error"]["message"]
    assert stack.task_count() == 0
    assert client.http.get("/jobs", headers=with_key(key)).status_code == 200


def test_a_read_only_key_cannot_cancel(client):
    job_id = submit_with(client, new_key(client)).json_body["jobId"]
    reader = new_key(client, scopes=["jobs:read"])
    assert client.http.delete(f"/jobs/{job_id}", headers=with_key(reader)).status_code == 403


def test_a_read_only_key_cannot_trigger_a_webhook_through_a_read(client):
    job_id = submit_with(client, new_key(client)).json_body["jobId"]
    reader = new_key(client, scopes=["jobs:read"])
    response = client.http.get(
        f"/assemblies/{job_id}?triggerWebhook=true", headers=with_key(reader)
    )
    assert response.status_code == 403


def test_a_write_only_key_cannot_read(client):
    key = new_key(client, scopes=["jobs:write"])
    assert client.http.get("/jobs", headers=with_key(key)).status_code == 403


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/api-keys"), ("GET", "/api-keys"), ("DELETE", "/api-keys/ak_" + "0" * 32)],
)
def test_a_key_cannot_manage_keys(client, method, path):
    key = new_key(client)
    body = json.dumps({"name": "escalate", "scopes": BOTH}) if method == "POST" else None
    response = client.http.request(method, path, headers=with_key(key), body=body)
    assert response.status_code == 403


def test_a_revoked_key_is_refused_at_once_where_it_was_revoked(client):
    created = create(client).json_body
    assert client.http.get("/jobs", headers=with_key(created["key"])).status_code == 200
    assert (
        client.http.delete(f"/api-keys/{created['id']}", headers=auth("alice")).status_code == 204
    )
    assert client.http.get("/jobs", headers=with_key(created["key"])).status_code == 401


def test_a_key_revoked_elsewhere_is_refused_once_the_cache_lapses(client, container):
    container(api_key_cache_seconds=0.3)
    created = create(client).json_body
    assert client.http.get("/jobs", headers=with_key(created["key"])).status_code == 200
    # Another warm function revokes it: this one still has it cached, for at most 0.3 s.
    ApiKeyStore(get_settings().records_table).revoke("alice", created["id"])
    time.sleep(0.35)
    response = client.http.get("/jobs", headers=with_key(created["key"]))
    assert response.status_code == 401
    assert "revoked" in response.json_body["error"]["message"]


def test_an_expired_key_is_refused_even_while_cached(client, monkeypatch):
    expiry = datetime.now(UTC) + timedelta(hours=1)
    key = new_key(client, expiresAt=expiry.strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert client.http.get("/jobs", headers=with_key(key)).status_code == 200
    # The key is cached now; an hour later it is refused without waiting for the cache.
    monkeypatch.setattr(api_keys, "utcnow", lambda: expiry + timedelta(seconds=1))
    response = client.http.get("/jobs", headers=with_key(key))
    assert response.status_code == 401
    assert "expired" in response.json_body["error"]["message"]


@pytest.mark.parametrize(
    "key",
    [
        "tsk_" + "A" * 43,  # well formed, never issued
        "tsk_short",
        "tsk_" + "A" * 42 + "!",
    ],
)
def test_an_unknown_or_malformed_key_is_unauthorized(client, key):
    assert client.http.get("/jobs", headers=with_key(key)).status_code == 401
    assert client.http.get("/jobs", headers=with_key(key, "bearer")).status_code == 401


def test_a_key_whose_id_matches_but_whose_hash_does_not_is_refused(client, stack):
    key = new_key(client)
    # Store a forged record under the real key's id whose full hash is another's.
    table = stack.outputs["RecordsTableName"]
    key_id = api_keys.id_of(api_keys.digest_of(key))
    stack.ddb.update_item(
        TableName=table,
        Key={"pk": {"S": f"apikey#{key_id}"}, "sk": {"S": "apikey"}},
        UpdateExpression="SET digest = :d",
        ExpressionAttributeValues={":d": {"S": key_id[3:] + "0" * 32}},
    )
    assert client.http.get("/jobs", headers=with_key(key)).status_code == 401


def test_sending_both_a_key_and_a_token_is_unauthorized(client):
    key = new_key(client)
    response = client.http.get("/jobs", headers={**auth("alice"), "X-API-Key": key})
    assert response.status_code == 401


def count_calls():
    calls: list[str] = []
    aws.client("dynamodb").meta.events.register(
        "before-call.dynamodb.*", lambda model, **_: calls.append(model.name)
    )
    return calls


def test_a_key_costs_one_dynamodb_call_and_none_once_cached(client):
    key = new_key(client)
    job_id = submit_with(client, key).json_body["jobId"]
    container().key_cache.clear()
    calls = count_calls()
    client.http.get(f"/jobs/{job_id}", headers=with_key(key))
    first = list(calls)
    calls.clear()
    client.http.get(f"/jobs/{job_id}", headers=with_key(key))
    assert first == ["UpdateItem", "GetItem"]  # the key (recording its use), then the job
    assert calls == ["GetItem"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"scopes": ["jobs:admin"]}, "scopes"),
        ({"scopes": []}, "scopes"),
        ({"scopes": ["jobs:read", "jobs:read"]}, "scopes"),
        ({"expiresAt": "2001-01-01T00:00:00Z"}, "expiresAt"),
        ({"expiresAt": "2999-01-01T00:00:00"}, "expiresAt"),
        ({"name": "  "}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"owner": "bob"}, "owner"),
    ],
)
def test_a_bad_key_request_is_422_and_stores_nothing(client, body, field):
    response = create(client, **body)
    assert response.status_code == 422
    assert field in response.json_body["error"]["message"]
    assert client.http.get("/api-keys", headers=auth("alice")).json_body["apiKeys"] == []


def test_a_body_that_is_not_an_object_is_422(client):
    response = client.http.post("/api-keys", headers=auth("alice"), body="[1]")
    assert response.status_code == 422


def test_too_many_keys_is_422_until_one_is_deleted(client, container):
    container(max_api_keys_per_user=2)
    first = create(client).json_body
    new_key(client)
    response = create(client)
    assert response.status_code == 422
    assert "2 API keys" in response.json_body["error"]["message"]
    assert create(client, "bob").status_code == 201  # the limit is per user
    client.http.delete(f"/api-keys/{first['id']}", headers=auth("alice"))
    assert create(client).status_code == 201


def test_revoking_another_users_key_is_404_and_keeps_it(client):
    created = create(client, "alice").json_body
    response = client.http.delete(f"/api-keys/{created['id']}", headers=auth("bob"))
    assert response.status_code == 404
    assert client.http.get("/jobs", headers=with_key(created["key"])).status_code == 200


def test_revoking_an_unknown_key_is_404(client):
    response = client.http.delete("/api-keys/ak_" + "0" * 32, headers=auth("alice"))
    assert response.status_code == 404


def test_a_malformed_key_id_is_400(client):
    response = client.http.delete("/api-keys/not-an-id", headers=auth("alice"))
    assert response.status_code == 400


def test_a_key_opens_a_websocket_as_its_owner(client, service):
    key = new_key(client)
    realtime = container().realtime
    assert realtime.connect("key-conn", {"token": key}) == {"statusCode": 200}
    assert realtime.subscriptions.connection("key-conn").owner == "alice"


def test_a_key_without_read_scope_cannot_open_a_websocket(client, service):
    key = new_key(client, scopes=["jobs:write"])
    realtime = container().realtime
    assert realtime.connect("key-conn", {"token": key})["statusCode"] == 403
    assert realtime.subscriptions.connection("key-conn") is None


def test_a_revoked_key_cannot_open_a_websocket(client, service):
    created = create(client).json_body
    client.http.delete(f"/api-keys/{created['id']}", headers=auth("alice"))
    realtime = container().realtime
    assert realtime.connect("key-conn", {"token": created["key"]})["statusCode"] == 401


def test_the_cache_is_bounded():
    cache = api_keys.KeyCache(size=3)
    for n in range(10):
        cache.put(f"d{n}", None, 0.0)
    assert len(cache._entries) == 3
    assert cache.get("d9", 5, 1.0) == (True, None)
    assert cache.get("d0", 5, 1.0) == (False, None)


def test_revoking_a_key_ends_the_websocket_connections_it_opened(client, service, container):
    from moto.apigatewaymanagementapi.models import apigatewaymanagementapi_backends

    from chalicelib.model import Status
    from tests.unit.tasks import stored_task

    realtime = container(api_key_cache_seconds=0).realtime
    created = create(client).json_body
    assert realtime.connect("leaked", {"token": created["key"]}) == {"statusCode": 200}
    realtime.pusher.send("leaked", '{"type": "hello"}')
    task = stored_task(service, Status.PROCESSING)
    assert realtime.on_task_change(task) == 1  # the key is live: pushes arrive
    assert client.http.delete(f"/api-keys/{created['id']}", headers=auth()).status_code == 204
    changed = task.replace(version=task.version + 1)
    assert realtime.on_task_change(changed) == 0
    assert realtime.subscriptions.connection("leaked") is None
    assert "leaked" not in apigatewaymanagementapi_backends["123456789012"]["us-east-1"].connections


# -- every key expires --------------------------------------------------------------------


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_token_about_to_expire_cannot_mint_a_key_that_never_expires(client):
    """The attack: a JWT stolen seconds before it expires asks for a key without expiresAt."""
    dying = {"Authorization": f"Bearer {token_for('alice', ttl=30)}"}
    response = client.http.post(
        "/api-keys", headers=dying, body=json.dumps({"name": "forever", "scopes": BOTH})
    )
    assert response.status_code == 201
    expires = datetime.strptime(response.json_body["expiresAt"], "%Y-%m-%dT%H:%M:%SZ")
    cap = datetime.now(UTC).replace(tzinfo=None) + timedelta(days=90)
    assert cap - timedelta(minutes=5) <= expires <= cap


def test_a_key_asked_to_live_past_the_cap_is_422_and_stores_nothing(client):
    too_late = datetime.now(UTC) + timedelta(days=90, hours=1)
    response = create(client, expiresAt=iso(too_late))
    assert response.status_code == 422
    assert "at most 90 days" in response.json_body["error"]["message"]
    assert response.json_body["error"]["errors"][0]["field"] == "body.expiresAt"
    assert client.http.get("/api-keys", headers=auth("alice")).json_body["apiKeys"] == []


def test_a_key_may_live_exactly_as_long_as_the_cap(client):
    at_cap = datetime.now(UTC) + timedelta(days=90) - timedelta(seconds=5)
    assert create(client, expiresAt=iso(at_cap)).json_body["expiresAt"] == iso(at_cap)


def test_the_cap_is_a_setting(client, container):
    container(api_key_max_days=1)
    assert create(client, expiresAt=iso(datetime.now(UTC) + timedelta(days=2))).status_code == 422
    expires = create(client).json_body["expiresAt"]
    day = datetime.now(UTC) + timedelta(days=1)
    assert iso(day - timedelta(minutes=5)) <= expires <= iso(day)


def test_a_keys_principal_carries_its_expiry_so_its_websockets_end_with_it(client):
    expiry = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    key = new_key(client, expiresAt=iso(expiry))
    principal = container().key_authentication.authenticate(key)
    assert principal.expires_at == int(expiry.timestamp())


def test_a_key_is_expired_from_the_instant_of_its_expiry():
    moment = datetime(2030, 1, 1, tzinfo=UTC)
    key = api_keys.ApiKey(
        id="ak_" + "0" * 32,
        owner="alice",
        name="ci",
        prefix="tsk_00000000",
        scopes=("jobs:read",),
        created_at=moment - timedelta(days=1),
        expires_at=moment,
        last_used_at=None,
        digest="0" * 64,
    )
    assert key.expired(moment) and not key.expired(moment - timedelta(seconds=1))


def test_an_expiry_exactly_at_the_cap_is_allowed_and_a_second_later_is_not():
    now = datetime(2030, 1, 1, 12, 0, 0, 500, tzinfo=UTC)
    cap = datetime(2030, 1, 4, 12, 0, 0, tzinfo=UTC)
    assert api_keys.key_expiry(cap, now, 3) == cap
    with pytest.raises(api_keys.TooLongLived):
        api_keys.key_expiry(cap + timedelta(seconds=1), now, 3)


def test_a_key_stored_before_keys_expired_still_authenticates(client, stack):
    """Keys created before API_KEY_MAX_DAYS have no expiry in the table."""
    store = ApiKeyStore(stack.outputs["RecordsTableName"])
    _, secret = store.create("alice", "old", ["jobs:read"], 20, datetime.now(UTC), None)
    principal = container().key_authentication.authenticate(secret)
    assert (principal.owner, principal.expires_at) == ("alice", None)
