"""`make deploy STAGE=dev` after `make infra`: `chalice deploy`, the WebSocket pass, the
event source settings Chalice cannot set, then the retired index's drop.

`chalice deploy` creates every SQS and stream event source mapping without
`ReportBatchItemFailures` (so Lambda would ignore the `batchItemFailures` the handlers
return) and without the stream's failure handling. This step applies
infra.package.EVENT_SOURCES, the same settings `make package` writes into its template, to
the mappings Chalice recorded in `.chalice/deployed/<stage>.json`. It is idempotent and
runs after every `chalice deploy`, since Chalice may replace a mapping.

A stack made before 2026-12-08 has the index by_owner_type, which its functions read and this
release's do not. `make infra` keeps it (infra.stage.deploy_stack); once this release's
functions are in place, this step drops it with one more update of the data stack, so no
function ever queries an index that is gone. Each later run finds nothing to retire.

    python -m infra.deploy dev
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3

from infra.bytecode import add_bytecode, bytecode_problems
from infra.package import EVENT_SOURCES
from infra.stage import (
    deploy_stack,
    keeps_retired_index,
    resolve,
    set_websocket_endpoint,
    stack_outputs,
    websocket_endpoint,
)
from infra.target import check_target

ROOT = Path(__file__).resolve().parent.parent
MAPPING_TYPES = {"sqs_event", "dynamodb_event"}
SETTLED = {"Enabled", "Disabled"}


def deployed_mappings(stage: str, root: Path = ROOT) -> list[dict[str, Any]]:
    """The event source mappings Chalice created for a stage, each with its function's name."""
    deployed = json.loads((root / ".chalice" / "deployed" / f"{stage}.json").read_text())
    mappings = []
    for resource in deployed["resources"]:
        if resource.get("resource_type") in MAPPING_TYPES:
            function = resource["name"].rsplit("-", 3)[0]  # "<function>-sqs-event-source"
            mappings.append({"function": function, "uuid": resource["event_uuid"]})
    return mappings


def mapping_settings(function: str, outputs: dict[str, str]) -> dict[str, Any]:
    """EVENT_SOURCES' settings for one function, with this stack's ARNs filled in."""
    if function not in EVENT_SOURCES:
        raise SystemExit(
            f"the event source of {function!r} has no settings: add it to"
            " infra.package.EVENT_SOURCES (ReportBatchItemFailures at least)"
        )
    _, partition, _, region, account, _ = outputs["TasksTableArn"].split(":", 5)
    return resolve(EVENT_SOURCES[function].settings, outputs, partition, region, account)


def _wait_until_settled(lambda_client: Any, uuid: str, timeout: float = 300) -> None:
    """A mapping cannot be updated while it is Creating or Updating."""
    deadline = time.monotonic() + timeout
    while lambda_client.get_event_source_mapping(UUID=uuid)["State"] not in SETTLED:
        if time.monotonic() > deadline:
            raise SystemExit(f"event source mapping {uuid} did not settle in {timeout} s")
        time.sleep(2)


def apply_mapping_settings(
    lambda_client: Any, stage: str, outputs: dict[str, str], root: Path = ROOT
) -> list[str]:
    done = []
    for mapping in deployed_mappings(stage, root):
        settings = mapping_settings(mapping["function"], outputs)
        _wait_until_settled(lambda_client, mapping["uuid"])
        lambda_client.update_event_source_mapping(UUID=mapping["uuid"], **settings)
        done.append(f"{mapping['function']}: {', '.join(sorted(settings))}")
    return done


def build_package(stage: str, root: Path = ROOT) -> Path:
    """Chalice's deployment package, built as `chalice deploy` builds it, with bytecode added.

    Chalice names the package after a hash of requirements.txt and the app's files and reuses
    a package of that name, so the `chalice deploy` that follows uploads this one.
    """
    from chalice.cli.factory import CLIFactory
    from chalice.deploy.packager import (
        DependencyBuilder,
        LambdaDeploymentPackager,
        PipRunner,
        SubprocessPip,
    )
    from chalice.utils import UI, OSUtils

    config = CLIFactory(str(root)).create_config_obj(chalice_stage_name=stage)
    if config.automatic_layer:
        raise SystemExit("automatic_layer splits the package: add the bytecode to the layer too")
    osutils = OSUtils()
    pip = PipRunner(pip=SubprocessPip(osutils=osutils), osutils=osutils)
    architecture = config.lambda_architecture
    packager = LambdaDeploymentPackager(
        osutils=osutils,
        dependency_builder=DependencyBuilder(osutils, pip, architecture=architecture),
        ui=UI(),
        architecture=architecture,
    )
    package = Path(packager.create_deployment_package(str(root), config.lambda_python_version))
    add_bytecode(package, config.lambda_python_version)
    if found := bytecode_problems(package):
        raise SystemExit("the package lacks bytecode:\n  " + "\n  ".join(found[:20]))
    return package


def chalice_deploy(stage: str, root: Path = ROOT) -> None:
    build_package(stage, root)
    chalice = str(Path(sys.executable).parent / "chalice")
    subprocess.run([chalice, "deploy", "--stage", stage], cwd=root, check=True)


def main(stage: str, root: Path = ROOT) -> None:
    check_target(stage)
    chalice_deploy(stage, root)
    # The WebSocket API's endpoint exists only now: write it into the stage and deploy again.
    config = root / ".chalice" / "config.json"
    if set_websocket_endpoint(stage, websocket_endpoint(stage, root), config):
        print("WS_ENDPOINT_URL set in the stage; deploying again")
        chalice_deploy(stage, root)
    cloudformation = boto3.client("cloudformation")
    outputs = stack_outputs(cloudformation, f"taskstatus-{stage}")
    for line in apply_mapping_settings(boto3.client("lambda"), stage, outputs, root):
        print(f"event source of {line}")
    if retire_index(cloudformation, f"taskstatus-{stage}"):
        print(f"retired the index by_owner_type of taskstatus-{stage} (no function reads it)")


def retire_index(cloudformation: Any, stack_name: str) -> bool:
    """Drop by_owner_type from a stack made before 2026-12-08, now that the functions that read
    it are replaced: one more update of the data stack (infra.stage.KEEP_RETIRED_INDEX).
    False where there is nothing to retire."""
    if not keeps_retired_index(cloudformation, stack_name):
        return False
    deploy_stack(cloudformation, stack_name, keep_retired_index=False)
    return True


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "dev")
