"""Service keys: issued by the operator, acting for the owners they name. Each rule is
written as the attack on it."""

import json
from datetime import timedelta

import pytest

from chalicelib.edge.service_keys import BadServiceKey, ServiceKeys
from chalicelib.model import utcnow
from tests.conftest import auth
from tests.unit.helpers import get
from tests.unit.test_producers import deadline
from tools import service_key as tool

SCOPES = ["jobs:write", "jobs:report"]


@pytest.fixture
def service_key(service):
    def issue(owners, name="transcoder", scopes=SCOPES):
        keys = ServiceKeys(service.settings.records_table)
        return keys.create(name, owners, scopes, utcnow())[1]

    return issue


def headers(key):
    return {"X-API-Key": key, "Content-Type": "application/json"}


def submit_for(client, key, owner, **extra):
    body = {"type": "media/convert", "runner": "external", **extra}
    if owner is not None:
        body["owner"] = owner
    return client.http.post("/jobs", headers=headers(key), body=json.dumps(body))


def test_a_service_key_submits_a_job_its_owner_reads_as_their_own(client, service_key):
    key = service_key(["tenant-a*", "user-42"])
    job = submit_for(client, key, "tenant-a-7").json_body
    assert get(client, f"/jobs/{job['jobId']}", user="tenant-a-7").status_code == 200
    assert submit_for(client, key, "user-42").status_code == 202


def test_a_service_key_reports_on_its_owners_job(client, service_key):
    key = service_key(["tenant-a*"])
    job_id = submit_for(client, key, "tenant-a-7").json_body["jobId"]
    for path, body in (("report", {"status": "started"}), ("heartbeat", None)):
        response = client.http.post(
            f"/jobs/{job_id}/{path}", headers=headers(key), body=json.dumps(body) if body else ""
        )
        assert response.status_code == 200, response.json_body


def test_a_key_for_tenant_a_cannot_submit_for_tenant_b(client, stack, service_key):
    key = service_key(["tenant-a*"])
    response = submit_for(client, key, "tenant-b")
    assert response.status_code == 403
    assert stack.task_count() == 0


def test_an_exact_owner_is_not_a_prefix(client, stack, service_key):
    key = service_key(["user-42"])
    assert submit_for(client, key, "user-420").status_code == 403
    assert stack.task_count() == 0


def test_a_key_for_tenant_a_cannot_report_or_heartbeat_on_tenant_bs_job(client, service_key):
    job = client.http.post(
        "/jobs",
        headers={**auth("tenant-b"), "Content-Type": "application/json"},
        body=json.dumps({"type": "media/convert", "runner": "external"}),
    ).json_body
    key = service_key(["tenant-a*"])
    for path in ("report", "heartbeat"):
        response = client.http.post(
            f"/jobs/{job['jobId']}/{path}", headers=headers(key), body='{"status": "failed"}'
        )
        assert response.status_code == 404
    assert get(client, f"/jobs/{job['jobId']}", user="tenant-b").json_body["version"] == 1


def test_a_key_for_every_owner_submits_and_reports_for_any_owner(client, service_key):
    """`OWNERS='*'`: the operator's key for a worker or producer that serves all users."""
    key = service_key(["*"])
    for owner in ("tenant-b", "user-420"):
        job_id = submit_for(client, key, owner).json_body["jobId"]
        for path, body in (("report", '{"status": "started"}'), ("heartbeat", "")):
            response = client.http.post(f"/jobs/{job_id}/{path}", headers=headers(key), body=body)
            assert response.status_code == 200, response.json_body
        assert get(client, f"/jobs/{job_id}", user=owner).json_body["status"] == "started"


def test_a_key_for_every_owner_moves_the_deadline_of_any_owners_job(
    client, stack, service, service_key, monkeypatch
):
    key = service_key(["*"])
    job_id = submit_for(client, key, "tenant-b", heartbeatSeconds=60).json_body["jobId"]
    before = deadline(stack, job_id)
    later = utcnow() + timedelta(seconds=30)
    monkeypatch.setattr(service, "clock", lambda: later)
    response = client.http.post(f"/jobs/{job_id}/heartbeat", headers=headers(key), body="")
    assert response.status_code == 200, response.json_body
    assert deadline(stack, job_id) >= before + 29


def test_a_key_for_every_owner_still_reports_only_on_jobs_that_exist(client, service_key):
    key = service_key(["*"])
    response = client.http.post(
        "/jobs/no-such-job/report", headers=headers(key), body='{"status": "started"}'
    )
    assert response.status_code == 404


def test_a_service_key_must_name_the_owner(client, stack, service_key):
    response = submit_for(client, service_key(["tenant-a*"]), None)
    assert response.status_code == 422
    assert stack.task_count() == 0


def test_a_user_whose_id_is_the_keys_name_cannot_revoke_it(client, service, service_key):
    service_key(["tenant-a*"], name="transcoder")
    (key,) = ServiceKeys(service.settings.records_table).all()
    response = client.http.delete(f"/api-keys/{key.id}", headers=auth("service:transcoder"))
    assert response.status_code == 404
    assert ServiceKeys(service.settings.records_table).all() == [key]


# -- make service-key ------------------------------------------------------------------------


@pytest.fixture
def make_env(monkeypatch, service):
    monkeypatch.setenv("STAGE", "unit")
    monkeypatch.setenv("RECORDS_TABLE", service.settings.records_table)
    return monkeypatch


def test_make_service_key_prints_a_working_key_on_its_last_line(client, make_env, capsys):
    make_env.setenv("NAME", "transcoder")
    make_env.setenv("OWNERS", "tenant-a* user-42")
    assert tool.main(["create"]) == 0
    key = capsys.readouterr().out.strip().splitlines()[-1]
    assert submit_for(client, key, "tenant-a-1").status_code == 202


def test_make_service_key_lists_and_revokes(client, make_env, capsys):
    make_env.setenv("NAME", "transcoder")
    make_env.setenv("OWNERS", "tenant-a*")
    tool.main(["create"])
    key = capsys.readouterr().out.strip().splitlines()[-1]
    tool.main(["list"])
    key_id = capsys.readouterr().out.split()[0]
    make_env.setenv("ID", key_id)
    assert tool.main(["revoke"]) == 0
    from chalicelib.bootstrap import container

    container().key_cache.clear()
    assert submit_for(client, key, "tenant-a-1").status_code == 401


@pytest.mark.parametrize("owners", ["**", "*a", "tenant*a", "", "a b*c"])
def test_make_service_key_refuses_an_owner_pattern_that_is_not_exact_or_prefix(
    make_env, owners, capsys
):
    make_env.setenv("NAME", "transcoder")
    make_env.setenv("OWNERS", owners)
    assert tool.main(["create"]) == 2
    assert "owner" in capsys.readouterr().err.lower()


def test_make_service_key_refuses_a_scope_the_service_does_not_grant(make_env, capsys):
    make_env.setenv("NAME", "transcoder")
    make_env.setenv("OWNERS", "tenant-a*")
    make_env.setenv("SCOPES", "jobs:write admin")
    assert tool.main(["create"]) == 2
    assert "SCOPES" in capsys.readouterr().err


def test_a_service_key_with_no_scope_at_all_is_refused(service_key):
    with pytest.raises(BadServiceKey, match="SCOPES"):
        service_key(["tenant-a"], scopes=[])
