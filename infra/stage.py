"""`make infra STAGE=dev`: the data resources for `chalice deploy`, and the stage's config.

`chalice deploy` creates functions and APIs but no tables or queues. This
deploys infra/resources.json as the stack `taskstatus-<stage>`, then writes the
resource names into `.chalice/config.json` (stage `environment_variables`) and
a least-privilege `.chalice/policy-<stage>.json`, made from the same statements
as `make package`'s role with the ARNs filled in. Secrets are not written: set
JWT_SECRET, CURSOR_SECRET and WEBHOOK_SECRET in the stage yourself (see README).

    python -m infra.stage dev
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import boto3

from infra.package import RESOURCE_VARIABLES, policy
from infra.resources import create_stack, template_body
from infra.target import check_target

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / ".chalice" / "config.json"


# Outputs of infra/resources.json that are not named `<Resource><Attribute>`.
OUTPUT_OF = {("TasksTable", "StreamArn"): "TasksStreamArn"}


# The index the functions of releases before 2026-12-08 read and this release's do not: kept by
# an update until `make deploy` has put this release's functions in place (infra/deploy.py
# retires it then), so no deployed function ever queries an index that is gone.
KEEP_RETIRED_INDEX = "KeepIndexByOwnerType"


def keeps_retired_index(cloudformation: Any, stack_name: str) -> bool:
    """Whether the stack's template still declares by_owner_type: a stack made before the
    parameter existed declared it unconditionally."""
    stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    values = {p["ParameterKey"]: p["ParameterValue"] for p in stack.get("Parameters", [])}
    return values.get(KEEP_RETIRED_INDEX, "true") == "true"


def deploy_stack(
    cloudformation: Any, stack_name: str, keep_retired_index: bool | None = None
) -> dict[str, str]:
    """Create the stack, or update it if it exists; return its outputs.

    A new stack never has the retired index. An update keeps it where the stack has it,
    unless told otherwise (`keep_retired_index=False`: infra.deploy.retire_index).
    """
    try:
        cloudformation.describe_stacks(StackName=stack_name)
    except cloudformation.exceptions.ClientError:
        return create_stack(cloudformation, stack_name)
    if keep_retired_index is None:
        keep_retired_index = keeps_retired_index(cloudformation, stack_name)
    keep = {"ParameterKey": KEEP_RETIRED_INDEX, "ParameterValue": str(keep_retired_index).lower()}
    try:
        cloudformation.update_stack(
            StackName=stack_name, TemplateBody=template_body(), Parameters=[keep]
        )
        cloudformation.get_waiter("stack_update_complete").wait(StackName=stack_name)
    except cloudformation.exceptions.ClientError as exc:
        if "No updates are to be performed" not in str(exc):
            raise
    return stack_outputs(cloudformation, stack_name)


def stack_outputs(cloudformation: Any, stack_name: str) -> dict[str, str]:
    stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    return {out["OutputKey"]: out["OutputValue"] for out in stack.get("Outputs", [])}


def resolve(value: Any, outputs: dict[str, str], partition: str, region: str, account: str) -> Any:
    """Replace the intrinsic functions of infra.package.policy() with this stack's values."""
    if isinstance(value, list):
        return [resolve(v, outputs, partition, region, account) for v in value]
    if not isinstance(value, dict):
        return value
    if "Fn::GetAtt" in value:
        resource, attribute = value["Fn::GetAtt"]
        return outputs[OUTPUT_OF.get((resource, attribute), resource + attribute)]
    if "Fn::Sub" in value:
        pseudo = {"AWS::Partition": partition, "AWS::Region": region, "AWS::AccountId": account}

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in pseudo:
                return pseudo[name]
            resource, _, attribute = name.partition(".")
            return outputs[resource + attribute]

        return re.sub(r"\$\{([^}]+)\}", substitute, value["Fn::Sub"])
    return {k: resolve(v, outputs, partition, region, account) for k, v in value.items()}


def stage_policy(outputs: dict[str, str]) -> dict[str, Any]:
    _, partition, _, region, account, _ = outputs["TasksTableArn"].split(":", 5)
    # The WebSocket API's id exists only after `chalice deploy`: any API of this account.
    connections = f"arn:{partition}:execute-api:{region}:{account}:*/*/*/@connections/*"
    return resolve(policy(connections)["PolicyDocument"], outputs, partition, region, account)


def websocket_endpoint(stage: str, root: Path = ROOT) -> str:
    """The management endpoint of the WebSocket API `chalice deploy` created for a stage."""
    deployed = json.loads((root / ".chalice" / "deployed" / f"{stage}.json").read_text())
    for resource in deployed["resources"]:
        if resource.get("resource_type") == "websocket_api":
            # wss://<id>.execute-api.<region>.<dns suffix>/<stage>/ -> https://.../<stage>
            return "https://" + resource["websocket_api_url"].removeprefix("wss://").rstrip("/")
    raise SystemExit(
        f"no WebSocket API in .chalice/deployed/{stage}.json: run chalice deploy first"
    )


def set_websocket_endpoint(stage: str, endpoint: str, config_path: Path = CONFIG) -> bool:
    """Write WS_ENDPOINT_URL into the stage; True if it changed (deploy again)."""
    config = json.loads(config_path.read_text())
    variables = config["stages"][stage].setdefault("environment_variables", {})
    if variables.get("WS_ENDPOINT_URL") == endpoint:
        return False
    variables["WS_ENDPOINT_URL"] = endpoint
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    return True


def write_stage_config(stage: str, outputs: dict[str, str], config_path: Path = CONFIG) -> Path:
    config = json.loads(config_path.read_text())
    settings = config["stages"].setdefault(stage, {})
    variables = settings.setdefault("environment_variables", {})
    variables.update({name: outputs[key] for name, key in RESOURCE_VARIABLES.items()})
    settings["autogen_policy"] = False
    settings["iam_policy_file"] = f"policy-{stage}.json"
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    policy_path = config_path.parent / f"policy-{stage}.json"
    policy_path.write_text(json.dumps(stage_policy(outputs), indent=2) + "\n")
    return policy_path


def main(stage: str) -> None:
    if stage == "local":
        raise SystemExit("the local stage runs on the emulator: use `make dev`")
    check_target(stage)
    outputs = deploy_stack(boto3.client("cloudformation"), f"taskstatus-{stage}")
    policy_path = write_stage_config(stage, outputs)
    print(f"stack taskstatus-{stage} is ready; wrote stage {stage!r} in {CONFIG} and {policy_path}")
    missing = [
        name
        for name in ("JWT_SECRET", "CURSOR_SECRET", "WEBHOOK_SECRET")
        if name not in json.loads(CONFIG.read_text())["stages"][stage]["environment_variables"]
    ]
    if missing:
        print(f"before `make deploy STAGE={stage}`, set {', '.join(missing)} in that stage")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "dev")
