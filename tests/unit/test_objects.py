"""Objects are their owner's alone: prefixes, uploads, and presigned URLs."""

import io
import json

import pytest
import requests
from PIL import Image

from chalicelib.model import Status
from chalicelib.objects import owner_prefix
from tests.conftest import auth
from tests.unit.helpers import get, submit
from tests.unit.tasks import BUCKET, stored_task, with_objects

ALICE, BOB = owner_prefix("alice"), owner_prefix("bob")


def watermark_job(source_key: str, target_key: str | None = None) -> dict:
    job = {
        "type": "image/watermark",
        "input": {"text": "mine"},
        "source": {"bucket": BUCKET, "key": source_key},
    }
    if target_key is not None:
        job["target"] = {"bucket": BUCKET, "key": target_key}
    return job


def png() -> bytes:
    data = io.BytesIO()
    Image.new("RGB", (40, 30), (0, 90, 200)).save(data, format="PNG")
    return data.getvalue()


def assert_refused(response, stack, field: str) -> None:
    assert response.status_code == 422, response.body
    assert field in [e["field"] for e in response.json_body["error"]["errors"]]
    assert "prefix" in json.dumps(response.json_body) or ".." in json.dumps(response.json_body)
    stack.run_stream()
    assert stack.task_count() == 0
    assert stack.queued_messages() == 0


# -- the attacks -----------------------------------------------------------------------------


def test_naming_another_users_object_as_target_is_422_and_stores_nothing(client, stack):
    stack.s3.put_object(Bucket=BUCKET, Key=f"{ALICE}in/a.png", Body=png())
    job = watermark_job(f"{BOB}in/mine.png", target_key=f"{ALICE}in/a.png")
    assert_refused(submit(client, job, user="bob"), stack, "target.key")


def test_naming_another_users_object_as_source_is_422_and_stores_nothing(client, stack):
    job = watermark_job(f"{ALICE}in/secret.png", target_key=f"{BOB}out/copy.png")
    assert_refused(submit(client, job, user="bob"), stack, "source.key")


@pytest.mark.parametrize(
    "suffix", ["../" + BOB[len("users/") :] + "x.png", "a/../../x.png", "a//x.png", "./x.png"]
)
def test_a_key_that_climbs_out_of_the_prefix_is_422(client, stack, suffix):
    job = watermark_job(f"{ALICE}{suffix}", target_key=f"{ALICE}out/x.png")
    assert_refused(submit(client, job), stack, "source.key")


@pytest.mark.parametrize(
    ("one", "other"),
    [("a#b", "a"), ("users/x", "x"), ("../bob", "bob"), ("bob/", "bob"), ("", " ")],
)
def test_no_owner_value_spells_or_contains_another_owners_prefix(one, other):
    first, second = owner_prefix(one), owner_prefix(other)
    assert first != second
    assert not first.startswith(second) and not second.startswith(first)
    assert len(first) == len(second) and first.count("/") == 2


def test_no_url_is_presigned_for_a_target_outside_the_owners_prefix(client, service):
    # A task whose objects are not its owner's (as stored before prefixes were enforced).
    task = stored_task(service, Status.COMPLETED, owner="bob", **with_objects(owner="alice"))
    task_processor = get(client, f"/task/{task.id}", user="bob").json_body
    assert "TargetObjectURL" not in task_processor
    assembly = get(client, f"/assemblies/{task.id}", user="bob").json_body
    assert "ssl_url" not in json.dumps(assembly)


def test_the_owner_gets_a_presigned_url_for_a_target_under_their_prefix(client, service):
    task = stored_task(service, Status.COMPLETED, **with_objects())
    body = get(client, f"/task/{task.id}").json_body
    assert f"{ALICE}processed/document.png" in body["TargetObjectURL"]
    assert "X-Amz-Signature=" in body["TargetObjectURL"]


# -- uploads ----------------------------------------------------------------------------------


def upload(client, body, user="alice"):
    return client.http.post("/uploads", headers=auth(user), body=json.dumps(body))


def test_an_upload_is_a_201_presigned_put_under_the_callers_prefix(client):
    response = upload(client, {"filename": "photo.png", "contentType": "image/png", "size": 100})
    assert response.status_code == 201
    ticket = response.json_body
    assert ticket["bucket"] == BUCKET and ticket["method"] == "PUT"
    assert ticket["key"].startswith(f"{ALICE}uploads/") and ticket["key"].endswith("/photo.png")
    assert ticket["headers"] == {"Content-Type": "image/png", "Content-Length": "100"}
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in ticket["url"]
    assert "content-length%3Bcontent-type%3Bhost" in ticket["url"]
    assert ticket["expiresAt"].endswith("Z")


def test_two_uploads_of_the_same_filename_get_different_keys(client):
    body = {"filename": "a.png", "contentType": "image/png", "size": 10}
    first = upload(client, body).json_body["key"]
    second = upload(client, body).json_body["key"]
    assert first != second


def test_a_filename_cannot_steer_the_key_out_of_the_prefix(client):
    ticket = upload(
        client, {"filename": "../../users/x/evil.png", "contentType": "image/png", "size": 10}
    )
    key = ticket.json_body["key"]
    assert key.startswith(f"{ALICE}uploads/") and ".." not in key
    assert key.endswith("/evil.png")


def test_upload_then_submit_then_download_works_without_aws_credentials(client, stack):
    data = png()
    ticket = upload(
        client, {"filename": "in.png", "contentType": "image/png", "size": len(data)}
    ).json_body
    put = requests.put(ticket["url"], data=data, headers=ticket["headers"], timeout=10)
    assert put.status_code == 200, put.text
    job_id = submit(client, watermark_job(ticket["key"])).json_body["jobId"]
    stack.settle()
    job = get(client, f"/jobs/{job_id}").json_body
    assert job["status"] == "completed", job
    assert job["output"]["s3Uri"] == f"s3://{BUCKET}/{ALICE}outputs/{job_id}/output"
    downloaded = requests.get(job["output"]["url"], timeout=10)
    assert downloaded.status_code == 200
    assert Image.open(io.BytesIO(downloaded.content)).size == (40, 30)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"contentType": "image/png", "size": 10}, "filename"),
        ({"filename": "a.png", "size": 10}, "contentType"),
        ({"filename": "a.png", "contentType": "image/png"}, "size"),
        ({"filename": "a.png", "contentType": "not a type"}, "contentType"),
        ({"filename": "a.png", "contentType": "image/png", "size": 0}, "size"),
        ({"filename": "a.png", "contentType": "image/png", "size": 6 * 1024**3}, "size"),
        ({"filename": "", "contentType": "image/png", "size": 10}, "filename"),
        ({"filename": "a.png", "contentType": "image/png", "size": 10, "bucket": "x"}, "bucket"),
    ],
)
def test_a_bad_upload_request_is_422_naming_the_field(client, stack, body, field):
    response = upload(client, body)
    assert response.status_code == 422
    assert field in response.json_body["error"]["message"]


def test_an_upload_without_a_token_is_401(client):
    response = client.http.post("/uploads", headers={"Content-Type": "application/json"}, body="{}")
    assert response.status_code == 401


def test_a_presigned_download_lasts_the_hour_it_says(service):
    from datetime import timedelta

    from chalicelib.model import utcnow
    from chalicelib.objects import PRESIGN_SECONDS, presign

    now = utcnow()
    url, expires = presign("alice", BUCKET, f"{ALICE}out/x.png", now)
    assert expires == now + timedelta(seconds=PRESIGN_SECONDS)
    assert f"X-Amz-Expires={PRESIGN_SECONDS}" in url


def test_a_presigned_upload_lasts_the_minutes_it_says(service):
    from datetime import timedelta

    from chalicelib.model import utcnow
    from chalicelib.objects import UPLOAD_SECONDS, presign_upload

    now = utcnow()
    url, _, expires = presign_upload(BUCKET, f"{ALICE}uploads/x.png", "image/png", 10, now)
    assert expires == now + timedelta(seconds=UPLOAD_SECONDS)
    assert f"X-Amz-Expires={UPLOAD_SECONDS}" in url


def test_the_key_problem_names_the_prefix_to_use():
    from chalicelib.objects import key_problem

    assert ALICE in key_problem("alice", f"{BOB}x.png")
    assert "'..'" in key_problem("alice", f"{ALICE}a/../x.png")
    assert key_problem("alice", f"{ALICE}a/b.png") is None


# -- what the service writes, and what a job may read ------------------------------------------


def test_a_job_cannot_name_the_folder_the_service_writes_into(client, stack):
    """outputs/ holds results and webhook payloads the service signs: no job may target it."""
    job = watermark_job(f"{ALICE}in/a.png", target_key=f"{ALICE}outputs/some-task/webhook-2.json")
    assert_refused(submit(client, job), stack, "target.key")


def test_a_decompression_bomb_fails_its_task_with_a_reason(client, stack):
    bomb = io.BytesIO()
    Image.new("1", (8000, 6000)).save(bomb, format="PNG")  # 48 Mpx in a few KB
    stack.s3.put_object(Bucket=BUCKET, Key=f"{ALICE}in/bomb.png", Body=bomb.getvalue())
    job_id = submit(client, watermark_job(f"{ALICE}in/bomb.png")).json_body["jobId"]
    stack.settle()
    job = get(client, f"/jobs/{job_id}").json_body
    assert job["status"] == "failed" and "pixels" in job["error"]


def test_a_source_over_the_read_limit_fails_its_task_without_reading_it(client, stack, monkeypatch):
    from chalicelib import worker

    monkeypatch.setattr(worker, "MAX_SOURCE_BYTES", 1000)
    stack.s3.put_object(Bucket=BUCKET, Key=f"{ALICE}in/big.png", Body=png() + b"\0" * 2000)
    job_id = submit(client, watermark_job(f"{ALICE}in/big.png")).json_body["jobId"]
    stack.settle()
    job = get(client, f"/jobs/{job_id}").json_body
    assert job["status"] == "failed" and "at most 1000 bytes" in job["error"]
