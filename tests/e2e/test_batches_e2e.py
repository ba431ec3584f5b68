"""`POST /jobs/batch` under the local stack: through the client and the CLI, each job on its own."""

import io
import json

from taskstatus_client import TaskStatusClient
from taskstatus_client.cli import EXIT_REFUSED, main
from tests.conftest import token_for


def test_a_batch_runs_its_good_jobs_and_refuses_its_bad_one(local_stack):
    client = TaskStatusClient(local_stack.api, token_for("kim"), ws_url=None)
    jobs = [
        {"type": "demo/sleep", "input": {"seconds": 0}, "metadata": {"n": 0}},
        {"type": "demo/sleep", "input": {"seconds": -1}},
        {"type": "demo/sleep", "input": {"seconds": 0}, "delaySeconds": 2},
    ]
    results = client.submit_batch(jobs)
    assert [r.status for r in results] == [202, 422, 202]
    assert results[1].error.errors[0].field == "input.seconds"
    assert results[2].job.status.value == "scheduled"
    for result in (results[0], results[2]):
        final = local_stack.wait_until_finished(result.job.jobId, timeout=30, user="kim")[-1]
        assert final["status"] == "completed"


def test_a_retried_client_batch_replays_instead_of_duplicating(local_stack):
    client = TaskStatusClient(local_stack.api, token_for("kim"), ws_url=None)
    jobs = [{"type": "demo/sleep", "idempotencyKey": f"order-{n}"} for n in range(3)]
    first = client.submit_batch(jobs)
    again = client.submit_batch(jobs)
    assert [r.job.jobId for r in again] == [r.job.jobId for r in first]
    assert [r.replayed for r in again] == [True, True, True]


def test_the_cli_submits_a_file_of_jobs_one_line_each(local_stack, tmp_path):
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps([{"type": "demo/sleep"}, {"type": "no/such"}]))
    out = io.StringIO()
    base = ["--url", local_stack.api, "--token", token_for("kim"), "--ws-url", local_stack.ws]
    code = main([*base, "batch", str(path)], out)
    lines = out.getvalue().splitlines()
    assert code == EXIT_REFUSED
    assert "demo/sleep" in lines[0] and "submitted" in lines[0]
    assert lines[1].startswith("#1  refused (422)")
