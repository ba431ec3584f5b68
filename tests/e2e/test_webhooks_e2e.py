"""Webhooks under `make dev`: delivered to a real receiver on 127.0.0.1, quickly, and signed."""

import json
import time

import requests
from standardwebhooks import Webhook

from tests.receiver import Receiver


def test_a_job_with_a_webhook_delivers_within_two_seconds_of_completion(local_stack):
    receiver = Receiver([200])
    try:
        job = local_stack.submit(
            {
                "type": "demo/sleep",
                "input": {"seconds": 0.5, "steps": 1},
                "webhook": {"url": receiver.url},
            }
        )
        completed_seen = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and completed_seen is None:
            if local_stack.get(job["jobId"])["status"] == "completed":
                completed_seen = time.time()
            time.sleep(0.02)
        assert completed_seen is not None
        assert receiver.arrived.wait(30), "no delivery arrived"
        delivery = receiver.deliveries[0]
        assert delivery.at - completed_seen < 2.0
        secret = requests.get(
            f"{local_stack.api}/webhooks/secret", headers=local_stack.headers(), timeout=5
        ).json()["secret"]
        payload = Webhook(secret).verify(delivery.body, delivery.headers)
        assert payload["jobId"] == job["jobId"] and payload["event"] == "job.completed"
        log = requests.get(
            f"{local_stack.api}/jobs/{job['jobId']}/deliveries",
            headers=local_stack.headers(),
            timeout=5,
        ).json()["deliveries"]
        assert [d["state"] for d in log] == ["delivered"]
        assert json.loads(delivery.body)["status"] == "completed"
    finally:
        receiver.close()
