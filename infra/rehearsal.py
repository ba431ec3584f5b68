"""`make deploy-rehearsal`: the README's `chalice deploy` path, end to end, on the emulator.

In a scratch copy of the project (the checkout is left as it is) against a moto server on a
free port (infra/emulator.py): `make infra`'s step, the stage secrets, `make deploy`'s step
(`chalice deploy`, the WebSocket second pass, the event source settings). Then it reads
back what was deployed and checks it against what the code needs:
  - every function: memory, timeout and reserved concurrency as .chalice/config.json says,
    every environment
    variable the code reads, a role granting every action of the least-privilege policy;
  - every event source mapping: ReportBatchItemFailures, each queue's maximum concurrency,
    and the stream's bisect, bounded retries and on-failure queue
    (infra.package.EVENT_SOURCES);
  - the REST API has every route of app.py, the WebSocket API its three routes, and the
    functions know the WebSocket endpoint (the second pass ran);
  - the deployment package holds only wheels that run on Lambda's python3.11 (glibc 2.26),
    and unchecked-hash bytecode for every module (infra/bytecode.py).
The checker is proven on the real description too: each kind of damage must be reported.
Finally `make package`'s template goes to the emulator's CloudFormation as far as it can, and
so does the remote workers' Fargate template (infra/worker_rehearsal.py).
Functions are never invoked (moto would need Docker).

    python -m infra.rehearsal
"""

from __future__ import annotations

import ast
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3

ROOT = Path(__file__).resolve().parent.parent
STAGE = "dev"
PROJECT_FILES = [
    "app.py",
    "requirements.txt",
    "chalicelib",
    "infra",
    "local",
    ".chalice/config.json",
]
# Chalice's package cache, kept between runs: it is named after a hash of the requirements
# and the app's files, so a stale one is never used.
CACHE = ROOT / "build" / "rehearsal" / "deployments"
REHEARSAL_SECRETS = {
    "JWT_SECRET": "rehearsal-jwt-secret-not-for-production",
    "CURSOR_SECRET": "rehearsal-cursor-secret",
    "WEBHOOK_SECRET": "whsec_cmVoZWFyc2FsLW9ubHktd2ViaG9vay1zZWNyZXQ=",
}
# Variables the code reads that a deployment may leave unset: their default is the
# production behaviour (HS256 without issuer/audience checks, no rotation, https only,
# 15 s per webhook attempt, 256 KB inline results). Any other variable read by the code must be set.
OPTIONAL_VARIABLES = {
    "JWT_JWKS_URL",
    "JWT_ISSUER",
    "JWT_AUDIENCE",
    "WEBHOOK_PREVIOUS_SECRET",
    "WEBHOOK_ALLOW_HTTP",
    "WEBHOOK_ALLOW_PRIVATE",
    "WEBHOOK_TIMEOUT_SECONDS",
    "RESULT_INLINE_MAX_BYTES",
    "AWS_ENDPOINT_URL",
    # credentials and browsers: `sub` owns tasks, no public reads, documented defaults
    "OWNER_CLAIM",
    "PUBLIC_READ_BY_ID",
    "API_KEY_CACHE_SECONDS",
    "MAX_API_KEYS_PER_USER",
    "API_KEY_MAX_DAYS",
    "WS_MAX_CONNECTIONS_PER_OWNER",
    "WS_MAX_SUBSCRIPTIONS_PER_CONNECTION",
    "JWKS_CACHE_SECONDS",
    "CORS_MAX_AGE_SECONDS",
    # the dashboard: browsers connect to WS_ENDPOINT_URL as wss:// unless a custom domain is set
    "WS_PUBLIC_URL",
    # seed contracts: presigned links as long as each origin's (24 h, 24 h, 7 days), signed by
    # the role unless a dedicated signer is set; auto-vid specs refused until set
    "PRESIGN_EXPIRES_SECONDS",
    "AUTOVID_URL_EXPIRES_SECONDS",
    "ASSEMBLY_URL_EXPIRES_SECONDS",
    "PRESIGN_ACCESS_KEY_ID",
    "PRESIGN_SECRET_ACCESS_KEY",
    "AUTOVID_TASK_TYPE",
    # the operator's console: the scope, group or role of an operator's JWT (a documented default)
    "OPERATOR_SCOPE",
    # fair concurrency: DEFAULT_MAX_RUNNING_PER_OWNER unless set
    "MAX_RUNNING_PER_OWNER",
    # flow control: no limit per type, no rates, a priority level worth 60 s unless set
    "TYPE_CONCURRENCY",
    "POOL_CONCURRENCY",
    "TYPE_RATE",
    "SUBMIT_RATE",
    "PRIORITY_AGING_SECONDS",
    # producers: how long an external task may go without a report or heartbeat (900 s)
    "EXTERNAL_HEARTBEAT_SECONDS",
    # schedules: how many one owner may keep (100)
    "MAX_SCHEDULES_PER_OWNER",
    # workers anywhere: no pools and only the built-in processors unless set
    "WORKER_POOLS",
    "POOL_TYPES",
    "PROCESSOR_MODULES",
}
WEBSOCKET_ROUTES = {
    "$connect": "websocket_connect",
    "$disconnect": "websocket_disconnect",
    "$default": "websocket_message",
}
# Lambda's python3.11 runtime (Amazon Linux 2) has glibc 2.26.
LAMBDA_GLIBC = (2, 26)
LEGACY_MANYLINUX = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}


# -- what the code needs ---------------------------------------------------------------------


def variables_read(root: Path = ROOT) -> set[str]:
    """Every environment variable app.py and chalicelib read (literal names only)."""
    names: set[str] = set()
    files = [root / "app.py", *sorted((root / "chalicelib").rglob("*.py"))]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and node.args:
                func = ast.unparse(node.func)
                if func in {"env", "_flag", "os.environ.get", "os.getenv", "environ.get"}:
                    names.update(_literal(node.args[0]))
            elif isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ":
                names.update(_literal(node.slice))
    return names


def _literal(node: ast.AST) -> set[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    return set()


def required_variables(root: Path = ROOT) -> set[str]:
    return variables_read(root) - OPTIONAL_VARIABLES


def policy_grants(document: dict[str, Any]) -> set[tuple[str, str]]:
    """(action, resource) pairs an IAM policy document allows."""
    grants = set()
    for statement in document["Statement"]:
        if statement.get("Effect") != "Allow":
            continue
        actions = statement["Action"]
        resources = statement["Resource"]
        for action in [actions] if isinstance(actions, str) else actions:
            for resource in [resources] if isinstance(resources, str) else resources:
                grants.add((action, resource))
    return grants


def expectations(outputs: dict[str, str], root: Path = ROOT) -> dict[str, Any]:
    """What a correct deployment of the stage has, from the project's own sources."""
    from chalice.cli.factory import CLIFactory

    from infra.deploy import mapping_settings
    from infra.package import EVENT_SOURCES
    from infra.stage import stage_policy

    factory = CLIFactory(str(root), environ={})
    app = factory.load_chalice_app()
    functions = {}
    names = ["api_handler", *WEBSOCKET_ROUTES.values()]
    names += [getattr(handler, "name", "") for handler in app.pure_lambda_functions]
    names += [source.name for source in app.event_sources]
    stage_config = factory.create_config_obj(chalice_stage_name=STAGE)
    for name in names:
        config = stage_config.scope(chalice_stage=STAGE, function_name=name)
        functions[name] = {
            "memory": config.lambda_memory_size,
            "timeout": config.lambda_timeout,
            "reserved": config.reserved_concurrency,
        }
    sources = {
        source.function: outputs["TasksStreamArn" if source.is_stream else f"{source.source}Arn"]
        for source in EVENT_SOURCES.values()
    }
    return {
        "functions": functions,
        "variables": sorted(required_variables(root)),
        "grants": sorted(policy_grants(stage_policy(outputs))),
        "mappings": {
            function: {
                "source": sources[function],
                "settings": mapping_settings(function, outputs),
            }
            for function in EVENT_SOURCES
        },
        "rest_routes": sorted(
            f"{method} {path}" for path, methods in app.routes.items() for method in methods
        ),
        "websocket_routes": WEBSOCKET_ROUTES,
    }


# -- what was deployed ----------------------------------------------------------------------


def _chalice_name(function_name: str) -> str:
    prefix = f"taskstatus-{STAGE}"
    return "api_handler" if function_name == prefix else function_name.removeprefix(prefix + "-")


def describe(aws: Callable[[str], Any], project: Path) -> dict[str, Any]:
    """Read back every deployed function, mapping and API of the stage."""
    lam, iam = aws("lambda"), aws("iam")
    functions: dict[str, Any] = {}
    arns: dict[str, str] = {}
    for page in lam.get_paginator("list_functions").paginate():
        for function in page["Functions"]:
            if not function["FunctionName"].startswith(f"taskstatus-{STAGE}"):
                continue
            name = _chalice_name(function["FunctionName"])
            arns[function["FunctionArn"]] = name
            role = function["Role"].rsplit("/", 1)[-1]
            documents = [
                iam.get_role_policy(RoleName=role, PolicyName=policy)["PolicyDocument"]
                for policy in iam.list_role_policies(RoleName=role)["PolicyNames"]
            ]
            grants: set[tuple[str, str]] = set()
            for document in documents:
                grants |= policy_grants(document)
            concurrency = lam.get_function_concurrency(FunctionName=function["FunctionName"])
            functions[name] = {
                "memory": function["MemorySize"],
                "timeout": function["Timeout"],
                "reserved": concurrency.get("ReservedConcurrentExecutions"),
                "environment": function.get("Environment", {}).get("Variables", {}),
                "grants": sorted(grants),
            }
    mappings = []
    for mapping in lam.list_event_source_mappings()["EventSourceMappings"]:
        if mapping["FunctionArn"] not in arns:
            continue
        mappings.append(
            {
                "function": arns[mapping["FunctionArn"]],
                "source": mapping["EventSourceArn"],
                "settings": {
                    key: mapping[key]
                    for key in (
                        "FunctionResponseTypes",
                        "BisectBatchOnFunctionError",
                        "MaximumRetryAttempts",
                        "MaximumRecordAgeInSeconds",
                        "ParallelizationFactor",
                        "DestinationConfig",
                        "ScalingConfig",
                    )
                    if key in mapping
                },
            }
        )
    return {
        "functions": functions,
        "mappings": mappings,
        **_describe_apis(aws, project, arns),
        "wheels": package_wheels(project),
        "bytecode": package_bytecode(project),
    }


def _describe_apis(aws: Callable[[str], Any], project: Path, arns: dict[str, str]) -> dict:
    deployed = json.loads((project / ".chalice" / "deployed" / f"{STAGE}.json").read_text())
    ids = {r["resource_type"]: r for r in deployed["resources"]}
    rest_id = ids["rest_api"]["rest_api_id"]
    apigw = aws("apigateway")
    rest_routes = {}
    for resource in apigw.get_resources(restApiId=rest_id, limit=500)["items"]:
        for method in resource.get("resourceMethods", {}):
            integration = apigw.get_integration(
                restApiId=rest_id, resourceId=resource["id"], httpMethod=method
            )
            rest_routes[f"{method} {resource['path']}"] = _target(integration["uri"], arns)
    ws_id = ids["websocket_api"]["websocket_api_id"]
    v2 = aws("apigatewayv2")
    integrations = {
        i["IntegrationId"]: _target(i.get("IntegrationUri", ""), arns)
        for i in v2.get_integrations(ApiId=ws_id)["Items"]
    }
    websocket_routes = {
        route["RouteKey"]: integrations.get(route.get("Target", "").removeprefix("integrations/"))
        for route in v2.get_routes(ApiId=ws_id)["Items"]
    }
    return {
        "rest_routes": rest_routes,
        "rest_stages": [s["stageName"] for s in apigw.get_stages(restApiId=rest_id)["item"]],
        "websocket_routes": websocket_routes,
        "websocket_stages": [s["StageName"] for s in v2.get_stages(ApiId=ws_id)["Items"]],
        "websocket_endpoint": ids["websocket_api"]["websocket_api_url"],
    }


def _target(uri: str, arns: dict[str, str]) -> str | None:
    """The function an API integration invokes (.../functions/<arn>/invocations)."""
    function_arn = uri.split("/functions/", 1)[-1].removesuffix("/invocations")
    return arns.get(function_arn)


def package_wheels(project: Path) -> dict[str, list[str]]:
    """The platform tags of every wheel in Chalice's deployment package."""
    wheels: dict[str, list[str]] = {}
    for package in (project / ".chalice" / "deployments").glob("*.zip"):
        with zipfile.ZipFile(package) as archive:
            for name in archive.namelist():
                if name.endswith(".dist-info/WHEEL"):
                    lines = archive.read(name).decode().splitlines()
                    wheels[name.split("/")[0]] = [
                        line.split(":", 1)[1].strip() for line in lines if line.startswith("Tag:")
                    ]
    return wheels


def package_bytecode(project: Path) -> list[str]:
    """What the deployment package lacks for its modules to load without compiling."""
    from infra.bytecode import bytecode_problems

    found = []
    for package in sorted((project / ".chalice" / "deployments").glob("*.zip")):
        found += bytecode_problems(package)
    return found


# -- the check ------------------------------------------------------------------------------


def runs_on_lambda(tag: str) -> bool:
    platform = tag.rsplit("-", 1)[-1]
    if platform == "any":
        return True
    for legacy, glibc in LEGACY_MANYLINUX.items():
        if platform.startswith(legacy + "_"):
            return glibc <= LAMBDA_GLIBC
    if platform.startswith("manylinux_"):
        major, minor = platform.split("_")[1:3]
        return (int(major), int(minor)) <= LAMBDA_GLIBC and platform.endswith("x86_64")
    return False


def problems(deployed: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    found: list[str] = []
    found += _function_problems(deployed, expected)
    found += _mapping_problems(deployed, expected)
    found += _api_problems(deployed, expected)
    for wheel, tags in sorted(deployed["wheels"].items()):
        if not any(runs_on_lambda(tag) for tag in tags):
            found.append(f"{wheel} does not run on Lambda's python3.11 (tags {tags})")
    found += [f"the package: {problem}" for problem in deployed["bytecode"]]
    return found


def _function_problems(deployed: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    found = []
    endpoint = "https://" + deployed["websocket_endpoint"].removeprefix("wss://").rstrip("/")
    grants = {tuple(grant) for grant in expected["grants"]}
    for name, want in sorted(expected["functions"].items()):
        function = deployed["functions"].get(name)
        if function is None:
            found.append(f"function {name} was not deployed")
            continue
        for key in ("memory", "timeout", "reserved"):
            if function[key] != want[key]:
                found.append(f"{name}: {key} is {function[key]}, the config says {want[key]}")
        environment = function["environment"]
        for variable in expected["variables"]:
            if not environment.get(variable):
                found.append(f"{name}: environment variable {variable} is not set")
        if environment.get("WS_ENDPOINT_URL") != endpoint:
            found.append(f"{name}: WS_ENDPOINT_URL is not the WebSocket API's endpoint {endpoint}")
        missing = grants - {tuple(grant) for grant in function["grants"]}
        for action, resource in sorted(missing):
            found.append(f"{name}: its role does not grant {action} on {resource}")
    return found


def _mapping_problems(deployed: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    found = []
    for mapping in deployed["mappings"]:
        if "ReportBatchItemFailures" not in mapping["settings"].get("FunctionResponseTypes", []):
            found.append(f"the event source of {mapping['function']} lacks ReportBatchItemFailures")
    for function, want in sorted(expected["mappings"].items()):
        matches = [m for m in deployed["mappings"] if m["function"] == function]
        if len(matches) != 1 or matches[0]["source"] != want["source"]:
            found.append(f"{function} is not mapped once to {want['source']}")
            continue
        for key, value in want["settings"].items():
            actual = matches[0]["settings"].get(key)
            if actual != value:
                found.append(f"the event source of {function}: {key} is {actual}, not {value}")
    return found


def _api_problems(deployed: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    found = []
    for route in expected["rest_routes"]:
        target = deployed["rest_routes"].get(route)
        if target != "api_handler":
            found.append(f"REST route {route} does not reach api_handler (it reaches {target})")
    for route, function in expected["websocket_routes"].items():
        if deployed["websocket_routes"].get(route) != function:
            found.append(f"WebSocket route {route} does not reach {function}")
    for kind in ("rest_stages", "websocket_stages"):
        if "api" not in deployed[kind]:
            found.append(f"{kind}: no stage `api` ({deployed[kind]})")
    return found


# -- the checker must see each kind of damage ----------------------------------------------


def _without_report_failures(description: dict[str, Any]) -> dict[str, Any]:
    damaged = copy.deepcopy(description)
    damaged["mappings"][0]["settings"]["FunctionResponseTypes"] = []
    return damaged


def _without_variable(description: dict[str, Any]) -> dict[str, Any]:
    damaged = copy.deepcopy(description)
    next(iter(damaged["functions"].values()))["environment"].pop("TASKS_TABLE")
    return damaged


def _without_action(description: dict[str, Any]) -> dict[str, Any]:
    damaged = copy.deepcopy(description)
    for function in damaged["functions"].values():
        function["grants"] = [g for g in function["grants"] if g[0] != "dynamodb:BatchWriteItem"]
    return damaged


def _without_reservation(description: dict[str, Any]) -> dict[str, Any]:
    damaged = copy.deepcopy(description)
    next(iter(damaged["functions"].values()))["reserved"] = None
    return damaged


def _without_queue_scaling(description: dict[str, Any]) -> dict[str, Any]:
    damaged = copy.deepcopy(description)
    for mapping in damaged["mappings"]:
        mapping["settings"].pop("ScalingConfig", None)
    return damaged


def _without_parallel_stream(description: dict[str, Any]) -> dict[str, Any]:
    damaged = copy.deepcopy(description)
    for mapping in damaged["mappings"]:
        mapping["settings"].pop("ParallelizationFactor", None)
    return damaged


DAMAGES = {
    "stream mappings reading one batch per shard at a time": _without_parallel_stream,
    "a mapping without ReportBatchItemFailures": _without_report_failures,
    "a function without its reserved concurrency": _without_reservation,
    "queue mappings without their maximum concurrency": _without_queue_scaling,
    "a function without TASKS_TABLE": _without_variable,
    "a role without dynamodb:BatchWriteItem": _without_action,
}


def blind_spots(description: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    return [name for name, damage in DAMAGES.items() if not problems(damage(description), expected)]


# -- the run --------------------------------------------------------------------------------


@contextmanager
def emulator(log: Path) -> Iterator[str]:
    from infra.ports import free_port

    port = free_port()
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "infra.emulator", "-H", "127.0.0.1", "-p", str(port)],
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        from infra.ports import wait_for

        wait_for(f"http://127.0.0.1:{port}/moto-api/data.json")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def copy_project(target: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in PROJECT_FILES:
        source, destination = ROOT / name, target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, destination, ignore=ignore)
        else:
            shutil.copy2(source, destination)
    if CACHE.is_dir():
        shutil.copytree(CACHE, target / ".chalice" / "deployments")
    return target


def add_secrets(project: Path) -> None:
    """What the README asks the operator to do by hand between `make infra` and deploying."""
    path = project / ".chalice" / "config.json"
    config = json.loads(path.read_text())
    config["stages"][STAGE]["environment_variables"].update(REHEARSAL_SECRETS)
    path.write_text(json.dumps(config, indent=2) + "\n")


def step(title: str, command: list[str], project: Path, env: dict[str, str]) -> float:
    print(f"-- {title}: {' '.join(command)}", flush=True)
    started = time.monotonic()
    subprocess.run([sys.executable, *command], cwd=project, env=env, check=True)
    return time.monotonic() - started


def rehearse(work: Path) -> list[str]:
    timings: dict[str, float] = {}
    with emulator(work / "emulator.log") as endpoint:
        env = {
            **os.environ,
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "DEPLOY_TO_EMULATOR": "1",  # a stage other than `local`, on purpose
        }
        env.pop("AWS_PROFILE", None)
        project = copy_project(work / "project")
        timings["make infra"] = step("make infra", ["-m", "infra.stage", STAGE], project, env)
        add_secrets(project)
        timings["make deploy"] = step("make deploy", ["-m", "infra.deploy", STAGE], project, env)
        CACHE.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(CACHE, ignore_errors=True)
        shutil.copytree(project / ".chalice" / "deployments", CACHE)

        def aws(service: str) -> Any:
            return boto3.client(
                service,
                endpoint_url=endpoint,
                region_name="us-east-1",
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )

        from infra.stage import stack_outputs

        outputs = stack_outputs(aws("cloudformation"), f"taskstatus-{STAGE}")
        description = describe(aws, project)
        (work / "description.json").write_text(json.dumps(description, indent=2, default=str))
        expected = expectations(outputs, ROOT)
        found = problems(description, expected)
        found += [f"the checker misses {blind}" for blind in blind_spots(description, expected)]
        from infra.template_rehearsal import deploy_packaged_template

        started = time.monotonic()
        print("-- make package's template on the emulator's CloudFormation", flush=True)
        for line in deploy_packaged_template(aws("cloudformation"), work):
            print(f"   {line}")
        timings["template"] = time.monotonic() - started
        from infra import worker_rehearsal

        print("-- the remote workers' Fargate template on the emulator", flush=True)
        for line in worker_rehearsal.rehearse(aws, f"taskstatus-{STAGE}"):
            print(f"   {line}")
    print("timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    counts = (
        f"{len(description['functions'])} functions, {len(description['mappings'])} mappings,"
        f" {len(description['rest_routes'])} REST routes,"
        f" {len(description['websocket_routes'])} WebSocket routes"
    )
    print(f"checked {counts}")
    return found


def main() -> None:
    started = time.monotonic()
    scratch = Path(tempfile.mkdtemp(prefix="taskstatus-rehearsal-"))
    found = rehearse(scratch)
    if found:
        print("the deployment is not what the code needs:", *found, sep="\n  ")
        print(f"(what was deployed: {scratch / 'description.json'}; emulator log beside it)")
        raise SystemExit(1)
    shutil.rmtree(scratch, ignore_errors=True)
    print(f"deploy rehearsal passed in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
