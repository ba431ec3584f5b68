"""Small helpers for API tests."""

import json
from typing import Any

from tests.conftest import auth


def submit(
    client,
    body: Any = None,
    user: str = "alice",
    headers: dict | None = None,
    raw: str | None = None,
):
    payload = raw if raw is not None else json.dumps(body if body is not None else sleep_job())
    return client.http.post("/jobs", headers={**auth(user), **(headers or {})}, body=payload)


def sleep_job(seconds: float = 0, steps: int = 1, **extra: Any) -> dict:
    return {"type": "demo/sleep", "input": {"seconds": seconds, "steps": steps, **extra}}


def get(client, path: str, user: str = "alice", headers: dict | None = None):
    return client.http.get(path, headers={**auth(user), **(headers or {})})


def webhook_secret(client, user: str = "alice") -> str:
    """The user's own signing secret, as their receiver gets it: from the API."""
    response = get(client, "/webhooks/secret", user=user)
    assert response.status_code == 200, response.json_body
    return response.json_body["secret"]


def hold_slot(stack, gate, task_id: str) -> None:
    """Put `task_id` among the gate's slot holders directly, as a release that was lost
    leaves it (chalicelib/fairness.py's `holders` set)."""
    stack.ddb.update_item(
        TableName=stack.outputs["RecordsTableName"],
        Key=gate.slots_key,
        UpdateExpression="ADD holders :id",
        ExpressionAttributeValues={":id": {"SS": [task_id]}},
    )
