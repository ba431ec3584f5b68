"""Seed 003's StatusLambdaClient, in Python: the `status` Lambda through boto3's `invoke`.

client = StatusLambdaClient("taskstatus-prod-status", region="us-east-1")
result = client.get_status("5b0c...", "alice")
if result.success:
    print(result.status.ok, result.status.message)
else:
    print(result.status_code, result.error)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from taskstatus_client.models import AssemblyStatus


@dataclass(frozen=True)
class StatusResult:
    success: bool
    status_code: int
    status: AssemblyStatus | None
    error: str | None


class StatusLambdaClient:
    def __init__(
        self, function_name: str, *, region: str | None = None, lambda_client: Any = None
    ) -> None:
        self.function_name = function_name
        if lambda_client is None:
            import boto3

            lambda_client = boto3.client("lambda", region_name=region)
        self.lambda_client = lambda_client

    def get_status(self, assembly_id: str, user_id: str | None = None) -> StatusResult:
        return self._invoke({"assemblyId": assembly_id, "userId": user_id, "triggerWebhook": False})

    def get_status_with_webhook(self, assembly_id: str, user_id: str | None = None) -> StatusResult:
        return self._invoke({"assemblyId": assembly_id, "userId": user_id, "triggerWebhook": True})

    def _invoke(self, event: dict[str, Any]) -> StatusResult:
        if event["userId"] is None:
            del event["userId"]
        response = self.lambda_client.invoke(
            FunctionName=self.function_name,
            InvocationType="RequestResponse",
            Payload=json.dumps(event),
        )
        if response.get("FunctionError"):
            return StatusResult(
                False, 500, None, f"the status Lambda failed: {response['Payload'].read()!r}"
            )
        answer = json.loads(response["Payload"].read())
        body = json.loads(answer["body"])
        if answer["statusCode"] == 200:
            return StatusResult(True, 200, AssemblyStatus.model_validate(body), None)
        return StatusResult(
            False, answer["statusCode"], None, body.get("message") or body.get("error")
        )
