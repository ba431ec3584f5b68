"""PUBLIC_READ_BY_ID: off by default; when on, a task id alone reads that task, nothing more.

Also: the edge's 401/403 on a seed contract's route keep that contract's error body."""

import pytest

from chalicelib.edge.http import PUBLIC_READ_ROUTES
from tests.conftest import auth
from tests.unit.helpers import submit

MISSING = "0f8b7d8e-0000-4000-8000-000000000000"


@pytest.fixture
def public_reads(container):
    container(public_read_by_id=True)


@pytest.fixture
def job_id(client):
    return submit(client, user="alice").json_body["jobId"]


def test_reads_by_id_need_credentials_by_default(client, job_id):
    assert client.http.get(f"/jobs/{job_id}").status_code == 401
    assert client.http.get(f"/task/{job_id}").status_code == 401


def test_a_public_native_read_by_id_answers_without_credentials(client, public_reads, job_id):
    response = client.http.get(f"/jobs/{job_id}")
    assert response.status_code == 200
    assert response.json_body["jobId"] == job_id


def test_a_public_task_processor_read_answers_without_credentials(client, public_reads, job_id):
    response = client.http.get(f"/task/{job_id}")
    assert response.status_code == 200
    assert response.json_body["TaskId"] == job_id


def test_a_public_read_of_an_unknown_id_is_404(client, public_reads):
    assert client.http.get(f"/jobs/{MISSING}").status_code == 404
    assert client.http.get(f"/task/{MISSING}").json_body == {"error": f"Task not found: {MISSING}"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/jobs"),
        ("DELETE", "/jobs/{id}"),
        ("GET", "/jobs/{id}/deliveries"),
        ("POST", "/jobs/{id}/webhook"),
        ("GET", "/task-status/{id}"),
        ("GET", "/task-status"),
        ("GET", "/assemblies/{id}"),
        ("GET", "/api-keys"),
    ],
)
def test_everything_else_still_needs_credentials(client, public_reads, job_id, method, path):
    response = client.http.request(method, path.replace("{id}", job_id))
    assert response.status_code == 401


def test_bad_credentials_on_a_public_route_are_still_refused(client, public_reads, job_id):
    response = client.http.get(f"/jobs/{job_id}", headers={"Authorization": "Bearer forged"})
    assert response.status_code == 401


def test_with_credentials_a_public_route_is_still_owner_only(client, public_reads, job_id):
    assert client.http.get(f"/jobs/{job_id}", headers=auth("bob")).status_code == 404
    assert client.http.get(f"/task/{job_id}", headers=auth("bob")).status_code == 404


def test_the_public_routes_are_the_reads_by_id_and_the_owner_scoped_list():
    assert all(method == "GET" for method, _ in PUBLIC_READ_ROUTES)
    assert {path for _, path in PUBLIC_READ_ROUTES} == {
        "/task/{task_id}",
        "/task/list",
        "/jobs/{jobId}",
        "/status/{jobId}",
    }


# -- contract-shaped auth errors --------------------------------------------------------


def test_a_401_on_the_task_processor_route_is_the_seeds_error_body(client):
    response = client.http.get(f"/task/{MISSING}")
    assert response.status_code == 401
    assert set(response.json_body) == {"error"}
    assert isinstance(response.json_body["error"], str)


def test_a_401_on_the_assembly_route_is_the_seeds_error_body(client):
    response = client.http.get(f"/assemblies/{MISSING}")
    assert response.status_code == 401
    assert response.json_body["error"] == "UNAUTHORIZED"
    assert response.json_body["message"]


def test_a_403_on_the_assembly_route_is_the_seeds_error_body(client):
    import json

    created = client.http.post(
        "/api-keys",
        headers=auth("alice"),
        body=json.dumps({"name": "ro", "scopes": ["jobs:read"]}),
    ).json_body
    response = client.http.get(
        f"/assemblies/{MISSING}?triggerWebhook=true", headers={"X-API-Key": created["key"]}
    )
    assert response.status_code == 403
    assert response.json_body["error"] == "FORBIDDEN"


def test_a_401_on_a_native_route_keeps_the_native_body(client):
    response = client.http.get("/jobs")
    assert response.json_body["error"]["code"] == "unauthorized"


def test_a_public_read_never_shows_the_jobs_input(client, public_reads):
    """The attack: anyone holding a task id reads what its owner submitted."""
    job = {"type": "demo/sleep", "input": {"seconds": 0.0123, "steps": 3}}
    job_id = submit(client, job, user="alice").json_body["jobId"]
    anonymous = client.http.get(f"/jobs/{job_id}")
    assert anonymous.status_code == 200 and anonymous.json_body["input"] is None
    assert b"0.0123" not in anonymous.body
    owners = client.http.get(f"/jobs/{job_id}", headers=auth("alice"))
    assert owners.json_body["input"] == job["input"]
