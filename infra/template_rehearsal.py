"""`make package`'s template on the emulator's CloudFormation, as far as the emulator goes.

moto's CloudFormation has no SAM transform (and AWS's own translator, aws-sam-translator,
pins another pydantic than the app), so the AWS::Serverless resources (functions, their
event sources, the REST API) cannot be created there. Everything else of the packaged
template is: the tables, the queues with their redrive policies, the bucket, the
least-privilege role, the WebSocket API, the alarms, with the template's own parameters,
references and outputs. What was left out is reported, by logical id and type.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "build" / "package" / "sam.json"


def _references(value: Any) -> set[str]:
    if isinstance(value, list):
        return set().union(*(_references(v) for v in value)) if value else set()
    if not isinstance(value, dict):
        return set()
    found: set[str] = set()
    for key, inner in value.items():
        if key == "Ref" and isinstance(inner, str):
            found.add(inner)
        elif key == "Fn::GetAtt":
            found.add(inner[0] if isinstance(inner, list) else inner.split(".")[0])
        elif key == "Fn::Sub":
            text = inner[0] if isinstance(inner, list) else inner
            found |= {part.split("}")[0].split(".")[0] for part in text.split("${")[1:]}
        found |= _references(inner)
    return found


def deployable_part(template: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The template without SAM resources and whatever refers to them; and what was dropped."""
    resources = dict(template["Resources"])
    dropped = {
        k: r["Type"] for k, r in resources.items() if r["Type"].startswith("AWS::Serverless")
    }
    changed = True
    while changed:
        changed = False
        for name, resource in list(resources.items()):
            if name not in dropped and _references(resource) & set(dropped):
                dropped[name] = resource["Type"]
                changed = True
    kept = {k: v for k, v in resources.items() if k not in dropped}
    outputs = {
        k: v for k, v in template.get("Outputs", {}).items() if not _references(v) & set(dropped)
    }
    part = {k: v for k, v in template.items() if k not in {"Transform", "Resources", "Outputs"}}
    return {**part, "Resources": kept, "Outputs": outputs}, dropped


def deploy_packaged_template(cloudformation: Any, work: Path, template: Path = TEMPLATE) -> list:
    """Create the deployable part as a stack; return lines saying what was and was not done."""
    if not template.exists():
        raise SystemExit(f"{template} is missing: run `make package` first")
    part, dropped = deployable_part(json.loads(template.read_text()))
    (work / "packaged-part.json").write_text(json.dumps(part, indent=2))
    cloudformation.create_stack(
        StackName="taskstatus-packaged",
        TemplateBody=json.dumps(part),
        Capabilities=["CAPABILITY_IAM"],
        Parameters=[
            {"ParameterKey": "JwtSecret", "ParameterValue": "rehearsal"},
            {"ParameterKey": "WebhookSecret", "ParameterValue": "whsec_cmVoZWFyc2Fs"},
        ],
    )
    for _ in range(100):
        stack = cloudformation.describe_stacks(StackName="taskstatus-packaged")["Stacks"][0]
        if not stack["StackStatus"].endswith("_IN_PROGRESS"):
            break
        time.sleep(0.1)
    if stack["StackStatus"] != "CREATE_COMPLETE":
        raise SystemExit(f"the packaged template's stack is {stack['StackStatus']}")
    created = cloudformation.describe_stack_resources(StackName="taskstatus-packaged")
    kinds = sorted({r.get("ResourceType", "?") for r in created["StackResources"]})
    return [
        f"created {len(created['StackResources'])} resources: {', '.join(kinds)}",
        f"outputs: {len(stack.get('Outputs', []))}",
        "not exercised (no SAM transform in the emulator): "
        + ", ".join(f"{k} ({v})" for k, v in sorted(dropped.items())),
    ]
