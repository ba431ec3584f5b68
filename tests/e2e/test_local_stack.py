"""The whole service under `make dev`, over real HTTP."""

import io
import socket
import subprocess
import sys
from urllib.parse import urlsplit

import requests
from PIL import Image

from tests.e2e import HTTP_TIMEOUT
from tests.e2e.conftest import ROOT


def test_health_answers_without_a_token(local_stack):
    response = requests.get(f"{local_stack.api}/health", timeout=5)
    assert response.status_code == 200
    assert response.headers["X-Request-Id"]


def test_head_is_answered_with_headers_and_no_body(local_stack):
    """A body after a HEAD's headers is read as the start of the next response on a
    kept-alive connection (curl: "Excess found in a read"); HEAD is raw here, since
    http.client drops what follows a HEAD's headers instead of showing it."""
    address = urlsplit(local_stack.api)
    with socket.create_connection((address.hostname, address.port), timeout=HTTP_TIMEOUT) as raw:
        raw.sendall(b"HEAD /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := raw.recv(65536):  # until the server closes the connection
            answer += chunk
    head, _, after = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 405")  # as API Gateway: the route has no HEAD method
    assert b"Content-Length:" in head
    assert after == b""


def test_the_readme_curl_submits_a_job_readable_at_its_location(local_stack):
    # Exactly the README's command: curl -d sends application/x-www-form-urlencoded.
    token = local_stack.headers()["Authorization"]
    result = subprocess.run(
        [
            "curl",
            "-s",
            "-i",
            "-H",
            f"Authorization: {token}",
            "-X",
            "POST",
            f"{local_stack.api}/jobs",
            "-d",
            '{"type":"demo/sleep","input":{"seconds":1}}',
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    status_line, *lines = result.stdout.splitlines()
    assert " 202 " in status_line
    location = next(
        line.split(": ", 1)[1] for line in lines if line.lower().startswith("location:")
    )
    response = requests.get(
        f"{local_stack.api}{location}", headers=local_stack.headers(), timeout=5
    )
    assert response.status_code == 200


def test_a_sleep_job_goes_through_started_and_rising_progress_to_completed(local_stack):
    job = local_stack.submit({"type": "demo/sleep", "input": {"seconds": 2, "steps": 4}})
    states = local_stack.wait_until_finished(job["jobId"])
    statuses = [s["status"] for s in states]
    assert statuses[-1] == "completed"
    assert "processing" in statuses
    progress = [s["progress"]["current"] for s in states if s["progress"]]
    assert progress == sorted(progress) and len(set(progress)) >= 2
    assert states[-1]["result"] == {"slept": 2.0, "steps": 4}


def test_a_sleep_job_with_fail_at_ends_failed_with_its_error(local_stack):
    job = local_stack.submit(
        {"type": "demo/sleep", "input": {"seconds": 0.2, "steps": 3, "fail_at": 2}}
    )
    final = local_stack.wait_until_finished(job["jobId"])[-1]
    assert final["status"] == "failed"
    assert "failed at step 2" in final["error"]


def test_upload_submit_and_download_as_the_readme_shows(local_stack):
    """The README's object flow, over real HTTP: presigned PUT, a job, a presigned GET."""
    source = io.BytesIO()
    Image.new("RGB", (120, 80), (10, 120, 200)).save(source, format="PNG")
    data = source.getvalue()
    ticket = requests.post(
        f"{local_stack.api}/uploads",
        json={"filename": "photo.png", "contentType": "image/png", "size": len(data)},
        headers=local_stack.headers(),
        timeout=HTTP_TIMEOUT,
    )
    assert ticket.status_code == 201, ticket.text
    upload = ticket.json()
    put = requests.put(upload["url"], data=data, headers=upload["headers"], timeout=HTTP_TIMEOUT)
    assert put.status_code == 200, put.text
    job = local_stack.submit(
        {
            "type": "image/watermark",
            "input": {"text": "taskstatus"},
            "source": {"bucket": upload["bucket"], "key": upload["key"]},
        }
    )
    final = local_stack.wait_until_finished(job["jobId"])[-1]
    assert final["status"] == "completed", final
    assert final["output"]["url"].startswith(local_stack.emulator)
    downloaded = requests.get(final["output"]["url"], timeout=HTTP_TIMEOUT)
    assert downloaded.status_code == 200
    assert Image.open(io.BytesIO(downloaded.content)).size == (120, 80)


def test_another_users_object_cannot_be_named_as_a_target(local_stack):
    mine = local_stack.submit({"type": "demo/sleep", "input": {"seconds": 0}})
    assert mine["jobId"]
    response = requests.post(
        f"{local_stack.api}/jobs",
        json={
            "type": "image/watermark",
            "input": {"text": "x"},
            "source": {"bucket": "taskstatus-local-objects-123456789012", "key": "a.png"},
            "target": {"bucket": "taskstatus-local-objects-123456789012", "key": "b.png"},
        },
        headers=local_stack.headers("mallory"),
        timeout=HTTP_TIMEOUT,
    )
    assert response.status_code == 422
    assert "prefix" in response.text


def test_make_token_mints_a_token_the_stack_accepts(local_stack):
    token = subprocess.run(
        [sys.executable, "-m", "local.token", "carol"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    response = requests.get(
        f"{local_stack.api}/jobs", headers={"Authorization": f"Bearer {token}"}, timeout=5
    )
    assert response.status_code == 200
