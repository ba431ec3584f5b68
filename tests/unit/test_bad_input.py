"""Bad input: a clear 4xx, and nothing stored or queued."""

import json

import pytest

from tests.conftest import auth
from tests.unit.helpers import get, sleep_job, submit


@pytest.fixture
def rejected(client, stack):
    """Assert a response is the expected 4xx with our error shape, and nothing was written."""

    def check(response, status, *phrases):
        assert response.status_code == status, response.body
        body = response.json_body
        assert body["error"]["code"] and body["error"]["message"]
        assert body["requestId"] == response.headers["X-Request-Id"]
        for phrase in phrases:
            assert phrase in body["error"]["message"]
        stack.run_stream()
        assert stack.task_count() == 0
        assert stack.queued_messages() == 0
        return body

    return check


def test_non_json_body_is_400(client, rejected):
    rejected(submit(client, raw="{not json"), 400, "not valid JSON")


def test_empty_body_is_400(client, rejected):
    rejected(submit(client, raw=""), 400, "empty")


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "multipart/form-data"])
def test_wrong_content_type_is_415(client, rejected, content_type):
    response = client.http.post(
        "/jobs", headers={**auth(), "Content-Type": content_type}, body=json.dumps(sleep_job())
    )
    rejected(response, 415, "application/json")


def test_form_encoded_body_that_is_not_json_is_415(client, rejected):
    response = client.http.post(
        "/jobs",
        headers={**auth(), "Content-Type": "application/x-www-form-urlencoded"},
        body="type=demo",
    )
    rejected(response, 415)


def test_a_json_array_body_is_422(client, rejected):
    rejected(submit(client, raw="[1, 2]"), 422, "JSON object")


def test_unknown_fields_are_422(client, rejected):
    body = rejected(submit(client, {**sleep_job(), "urgency": 5}), 422, "urgency")
    assert body["error"]["errors"][0]["field"] == "body.urgency"


def test_wrong_types_are_422(client, rejected):
    rejected(submit(client, {"type": "demo/sleep", "input": "fast"}), 422, "input")


def test_missing_type_is_422(client, rejected):
    rejected(submit(client, {"input": {"seconds": 1}}), 422, "type")


def test_unregistered_type_is_422_and_names_the_known_types(client, rejected):
    rejected(
        submit(client, {"type": "video/transcode"}), 422, "not a registered processor", "demo/sleep"
    )


@pytest.mark.parametrize("seconds", [-1, 100000, "soon"])
def test_input_the_processor_refuses_is_422_with_field_errors(client, rejected, seconds):
    body = rejected(submit(client, {"type": "demo/sleep", "input": {"seconds": seconds}}), 422)
    assert body["error"]["errors"][0]["field"] == "input.seconds"


def test_an_object_outside_the_service_bucket_is_422(client, rejected):
    job = {
        "type": "image/watermark",
        "input": {"text": "x"},
        "source": {"bucket": "someone-else", "key": "a.png"},
        "target": {"bucket": "someone-else", "key": "b.png"},
    }
    rejected(submit(client, job), 422, "cannot run with these objects")


def test_a_processor_needing_objects_without_them_is_422(client, rejected):
    rejected(submit(client, {"type": "image/watermark", "input": {"text": "x"}}), 422)


def test_oversized_body_is_413(client, rejected):
    huge = {**sleep_job(), "metadata": {"blob": "x" * (300 * 1024)}}
    rejected(submit(client, huge), 413, "limit")


def test_a_bad_idempotency_key_is_400(client, rejected):
    rejected(
        submit(client, headers={"Idempotency-Key": "has spaces in it"}), 400, "Idempotency-Key"
    )


@pytest.mark.parametrize(
    "job_id", ["not~a~uuid", "x" * 300, "x" * 129, "00000000-0000-4000-8000-00000000000!"]
)
def test_malformed_or_over_long_ids_are_400(client, job_id):
    response = get(client, f"/jobs/{job_id}")
    assert response.status_code == 400
    assert "UUID" in response.json_body["error"]["message"]


def test_malformed_id_on_delete_is_400(client):
    assert client.http.delete("/jobs/no~pe", headers=auth()).status_code == 400


@pytest.mark.parametrize("limit", ["0", "-1", "abc", "1000", "2.5", "%C2%B2", "%D9%A3"])
def test_bad_limit_is_400(client, limit):
    response = get(client, f"/jobs?limit={limit}")
    assert response.status_code == 400
    assert "limit" in response.json_body["error"]["message"]


def test_bad_status_filter_is_400(client):
    response = get(client, "/jobs?status=done")
    assert response.status_code == 400
    assert "status must be one of" in response.json_body["error"]["message"]


def test_unknown_query_parameter_is_400(client):
    assert get(client, "/jobs?sort=asc").status_code == 400


@pytest.mark.parametrize("cursor", ["garbage", "eyJhIjoxfQ.AAAA", "a" * 600])
def test_a_bad_cursor_is_400(client, cursor):
    response = get(client, f"/jobs?cursor={cursor}")
    assert response.status_code == 400
    assert "cursor" in response.json_body["error"]["message"]


def test_a_tampered_cursor_is_400(client):
    for _ in range(3):
        submit(client)
    cursor = get(client, "/jobs?limit=1").json_body["nextCursor"]
    payload, _, mac = cursor.partition(".")
    tampered = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1] + "." + mac
    assert get(client, f"/jobs?cursor={tampered}").status_code == 400


def test_a_cursor_is_bound_to_its_user(client):
    for _ in range(3):
        submit(client)
    cursor = get(client, "/jobs?limit=1").json_body["nextCursor"]
    assert get(client, f"/jobs?cursor={cursor}", user="bob").status_code == 400


def test_a_cursor_is_bound_to_its_filters(client):
    for _ in range(3):
        submit(client)
    cursor = get(client, "/jobs?limit=1").json_body["nextCursor"]
    assert get(client, f"/jobs?cursor={cursor}&type=demo/sleep").status_code == 400


def test_an_unsupported_method_is_405_with_our_error_shape(client):
    response = client.http.put("/jobs", headers=auth(), body="{}")
    assert response.status_code == 405
    assert response.json_body["error"]["code"] == "method_not_allowed"


DEEPLY_NESTED = "[" * 2000 + "]" * 2000


@pytest.mark.parametrize(
    ("raw", "phrase"),
    [
        (DEEPLY_NESTED, "nested too deeply"),
        (
            '{"type": "demo/sleep", "metadata": ' + '{"a": ' * 100 + "1" + "}" * 100 + "}",
            "nested too deeply",
        ),
        ('{"type": "demo/sleep", "input": {"seconds": NaN}}', "NaN"),
        ('{"type": "demo/sleep", "input": {"seconds": Infinity}}', "Infinity"),
        ('{"type": "demo/sleep", "input": {"seconds": -Infinity}}', "Infinity"),
    ],
    ids=["2000-levels", "100-levels-in-metadata", "nan", "infinity", "minus-infinity"],
)
def test_hostile_json_is_400(client, rejected, raw, phrase):
    rejected(submit(client, raw=raw), 400, phrase)


# -- text a cursor or a store cannot take, times outside the calendar ------------------

NON_ASCII_CURSOR = "ü.ü"


@pytest.mark.parametrize("path", ["/jobs", "/task-status"])
def test_a_non_ascii_cursor_on_a_list_is_400(client, path):
    response = get(client, f"{path}?cursor={NON_ASCII_CURSOR}")
    assert response.status_code == 400, response.body
    assert "cursor" in str(response.json_body["error"])


def test_a_non_ascii_cursor_on_a_jobs_history_is_400(client):
    job_id = submit(client).json_body["jobId"]
    response = get(client, f"/jobs/{job_id}/events?cursor={NON_ASCII_CURSOR}")
    assert response.status_code == 400, response.body
    assert "cursor" in response.json_body["error"]["message"]


@pytest.mark.parametrize(
    ("path", "body"),
    [("/jobs/redrive", {"status": "failed"}), ("/jobs/cancel", {})],
    ids=["redrive", "bulk-cancel"],
)
def test_a_non_ascii_cursor_on_a_bulk_operation_is_400_and_changes_nothing(
    client, stack, path, body
):
    job_id = submit(client).json_body["jobId"]
    payload = json.dumps({**body, "cursor": NON_ASCII_CURSOR})
    response = client.http.post(path, headers=auth(), body=payload)
    assert response.status_code == 400, response.body
    assert "cursor" in response.json_body["error"]["message"]
    assert get(client, f"/jobs/{job_id}").json_body["status"] == "submitted"


# Valid ISO-8601, but outside the years 1 to 9999 once converted to UTC.
EDGE_OF_THE_CALENDAR = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"]


@pytest.mark.parametrize("when", EDGE_OF_THE_CALENDAR)
@pytest.mark.parametrize("field", ["since", "until"])
@pytest.mark.parametrize(
    ("path", "body"),
    [("/jobs/redrive", {"status": "failed"}), ("/jobs/cancel", {})],
    ids=["redrive", "bulk-cancel"],
)
def test_a_bulk_filter_time_outside_the_calendar_in_utc_is_422_naming_it(
    client, path, body, field, when
):
    response = client.http.post(path, headers=auth(), body=json.dumps({**body, field: when}))
    assert response.status_code == 422, response.body
    error = response.json_body["error"]
    assert error["errors"][0]["field"] == f"body.{field}"
    assert error["errors"][0]["message"].startswith(f"{when} is outside the years 0001 to 9999")


def test_an_api_key_expiring_after_year_9999_in_utc_is_422_and_creates_no_key(client):
    body = {"name": "far", "scopes": ["jobs:read"], "expiresAt": "9999-12-31T23:59:59-01:00"}
    response = client.http.post("/api-keys", headers=auth(), body=json.dumps(body))
    assert response.status_code == 422, response.body
    assert response.json_body["error"]["errors"][0]["field"] == "body.expiresAt"
    assert client.http.get("/api-keys", headers=auth()).json_body["apiKeys"] == []


# json.dumps writes a lone surrogate as the escape "\ud800", which json.loads reads back
# as a str that no UTF-8 writer (DynamoDB, SQS, the response) can encode.
LONE_SURROGATE = "\ud800"


def test_a_lone_surrogate_in_a_job_is_400_and_stores_nothing(client, rejected):
    job = {**sleep_job(), "metadata": {"note": LONE_SURROGATE}}
    rejected(submit(client, job), 400, "lone surrogate", "\\ud800")


def test_a_lone_surrogate_in_an_object_key_is_400_and_stores_nothing(client, rejected):
    job = {**sleep_job(), "metadata": {LONE_SURROGATE: "x"}}
    rejected(submit(client, job), 400, "lone surrogate")


def test_a_lone_surrogate_in_an_auto_vid_submit_is_400_and_stores_nothing(client, stack):
    job = {**sleep_job(), "metadata": {"note": LONE_SURROGATE}}
    response = client.http.post("/submit", headers=auth(), body=json.dumps(job))
    assert response.status_code == 400, response.body
    assert response.json_body["error"]  # the origin's shape: {"error": "...", "timestamp"}
    stack.run_stream()
    assert stack.task_count() == 0


def test_a_batch_with_one_lone_surrogate_stores_not_even_its_good_jobs(client, rejected):
    bad = {**sleep_job(), "metadata": {"note": LONE_SURROGATE}}
    response = client.http.post(
        "/jobs/batch", headers=auth(), body=json.dumps({"jobs": [sleep_job(), bad]})
    )
    rejected(response, 400, "lone surrogate")


def test_a_lone_surrogate_in_a_list_filter_with_a_cursor_is_400(client):
    response = get(client, f"/jobs?type={LONE_SURROGATE}&cursor=x.y")
    assert response.status_code == 400, response.body
    assert "cursor" in response.json_body["error"]["message"]
