"""The local API under concurrent load: every request is served as its own user, as in Lambda."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from uuid import uuid4

import requests

from tests.e2e import HTTP_TIMEOUT

USERS = [f"load-user-{n}" for n in range(4)]
SUBMITS = 200
THREADS = 8


def test_concurrent_submits_are_each_stored_under_their_submitter(local_stack):
    headers = {user: local_stack.headers(user) for user in USERS}

    def submit(n: int) -> tuple[str, int, requests.Response]:
        user = USERS[n % len(USERS)]
        job = {"type": "demo/sleep", "input": {"seconds": 0}, "metadata": {"n": str(n)}}
        # Every other submit is keyed: the emulator's transactions hold up under load too.
        keyed = {"Idempotency-Key": f"load-{uuid4().hex}"} if n % 2 else {}
        with requests.Session() as session:
            response = session.post(
                f"{local_stack.api}/jobs", json=job, headers={**headers[user], **keyed}, timeout=30
            )
        return user, n, response

    with ThreadPoolExecutor(THREADS) as pool:
        answers = list(pool.map(submit, range(SUBMITS)))

    statuses = [response.status_code for _, _, response in answers]
    assert statuses == [202] * SUBMITS, {s: statuses.count(s) for s in set(statuses)}
    # The answer to each submit is the job that submit made, not another request's.
    mixed = [n for _, n, r in answers if r.json()["metadata"] != {"n": str(n)}]
    assert mixed == []
    # Each job is readable by its submitter, and by nobody else.
    for user, n, response in answers:
        job_id = response.json()["jobId"]
        mine = requests.get(
            f"{local_stack.api}/jobs/{job_id}", headers=headers[user], timeout=HTTP_TIMEOUT
        )
        assert mine.status_code == 200, (n, user, mine.text)
        assert mine.json()["metadata"] == {"n": str(n)}
    other = USERS[1]
    foreign = [r.json()["jobId"] for user, _, r in answers if user != other][:20]
    for job_id in foreign:
        response = requests.get(
            f"{local_stack.api}/jobs/{job_id}", headers=headers[other], timeout=HTTP_TIMEOUT
        )
        assert response.status_code == 404
