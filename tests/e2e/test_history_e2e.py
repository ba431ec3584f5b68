"""History, retry and redrive under the local stack (`make dev`), over real HTTP."""

import io
import json
import time

import requests
from PIL import Image

from taskstatus_client import TaskStatusClient
from taskstatus_client.cli import main
from tests.conftest import token_for
from tests.e2e import HTTP_TIMEOUT


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 40, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


def history(local_stack, job_id: str, until, user: str = "alice") -> list[dict]:
    """The job's events once `until(events)` holds: the stream writes them just after the job."""
    events: list[dict] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        events = requests.get(
            f"{local_stack.api}/jobs/{job_id}/events",
            headers=local_stack.headers(user),
            timeout=HTTP_TIMEOUT,
        ).json()["events"]
        if until(events):
            return events
        time.sleep(0.05)
    raise AssertionError(f"the history of {job_id} did not get there: {events}")


def cli(local_stack, *args, user: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(
        ["--url", local_stack.api, "--token", token_for(user), "--ws-url", local_stack.ws, *args],
        out,
    )
    return code, out.getvalue()


def test_a_job_fails_is_retried_completes_and_its_history_shows_every_version(local_stack):
    """The source is named before it is uploaded: the run fails; upload it, retry, done."""
    data = png()
    ticket = requests.post(
        f"{local_stack.api}/uploads",
        json={"filename": "late.png", "contentType": "image/png", "size": len(data)},
        headers=local_stack.headers(),
        timeout=HTTP_TIMEOUT,
    ).json()
    job = local_stack.submit(
        {
            "type": "image/watermark",
            "input": {"text": "again"},
            "source": {"bucket": ticket["bucket"], "key": ticket["key"]},
        }
    )
    first = local_stack.wait_until_finished(job["jobId"])[-1]
    assert first["status"] == "failed" and "does not exist" in first["error"]

    put = requests.put(ticket["url"], data=data, headers=ticket["headers"], timeout=HTTP_TIMEOUT)
    assert put.status_code == 200
    retry = requests.post(
        f"{local_stack.api}/jobs/{job['jobId']}/retry",
        headers=local_stack.headers(),
        timeout=HTTP_TIMEOUT,
    )
    assert retry.status_code == 202, retry.text
    final = local_stack.wait_until_finished(job["jobId"])[-1]
    assert (final["status"], final["retries"], final["error"]) == ("completed", 1, None)

    events = history(local_stack, job["jobId"], lambda e: e[-1]["status"] == "completed")
    assert [e["version"] for e in events] == list(range(1, len(events) + 1))
    story = [(e["status"], e["by"]) for e in events]
    assert story[0] == ("submitted", "api")
    assert ("failed", "worker") in story
    assert story.index(("submitted", "api"), 1) > story.index(("failed", "worker"))
    assert story[-1] == ("completed", "worker")


def test_the_cli_retries_a_failed_job_and_prints_its_history(local_stack):
    job = local_stack.submit(
        {"type": "demo/sleep", "input": {"seconds": 0, "steps": 1, "fail_at": 1}}, user="gus"
    )
    assert local_stack.wait_until_finished(job["jobId"], user="gus")[-1]["status"] == "failed"
    code, output = cli(local_stack, "retry", job["jobId"], "--watch", user="gus")
    assert code == 1 and "failed at step 1" in output  # the same input fails again
    twice_failed = lambda e: [x["status"] for x in e].count("failed") == 2  # noqa: E731
    history(local_stack, job["jobId"], twice_failed, "gus")
    code, output = cli(local_stack, "events", job["jobId"], user="gus")
    assert code == 0
    lines = output.splitlines()
    assert lines[0].startswith("v1 ") and "submitted" in lines[0] and "by api" in lines[0]
    assert sum("failed" in line for line in lines) == 2


def test_the_cli_redrive_dry_run_counts_and_the_client_redrives(local_stack):
    client = TaskStatusClient(local_stack.api, token_for("hal"), ws_url=None)
    failing = {"seconds": 0, "steps": 1, "fail_at": 1}
    ids = [client.submit("demo/sleep", failing).jobId for _ in range(3)]
    for job_id in ids:
        local_stack.wait_until_finished(job_id, user="hal")
    code, output = cli(local_stack, "--json", "redrive", "--dry-run", user="hal")
    assert code == 0
    dry = json.loads(output)
    assert (dry["dryRun"], dry["count"], sorted(dry["jobIds"])) == (True, 3, sorted(ids))
    assert {client.get(job_id).status.value for job_id in ids} == {"failed"}
    result = client.redrive("failed")
    assert sorted(result.jobIds) == sorted(ids)
    assert all(client.get(job_id).retries == 1 for job_id in ids)
    history(local_stack, ids[0], lambda e: e[-1]["status"] == "failed" and len(e) > 3, "hal")
    assert [e.by for e in client.events(ids[0])].count("redrive") == 1
