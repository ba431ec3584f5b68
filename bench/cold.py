"""Cold start as Lambda runs it: a fresh process, the unpacked deployment package, one event.

Each function kind (REST GET by id with a valid token, the status Lambda, the worker with
one record, the stream handler with one record) starts a fresh interpreter whose path is
the unpacked `make package` zip plus the runtime's boto3 (nothing else of the dev venv:
`python -S`), writes no bytecode (Lambda's /var/task is read-only), imports app.py and
serves its first event against a moto server. The baseline is the same kind of process
importing boto3 and making the same main AWS call from a plain handler. Runs are
interleaved; figures are medians. A third column runs the package with its bytecode
stripped, to show what shipping it buys. BENCH_COLD_RUNS sets the repetitions (default 7).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import zipfile
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RUNTIME_PACKAGES = ["boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six.py"]
STREAM_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/taskstatus-local-tasks/stream/bench"
TARGETS = {"REST GET /jobs/{id}": 1.3, "status Lambda": 1.2, "worker": 1.2, "stream": 1.2}

RUNNER = """
import json, sys, time
event = json.loads(sys.argv[3])
class Context:
    function_name = "bench"; memory_limit_in_mb = 256; aws_request_id = "bench-request"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    log_group_name = log_stream_name = "bench"; identity = client_context = None
    def get_remaining_time_in_millis(self): return 30000
started = time.perf_counter()
handler = getattr(__import__(sys.argv[1]), sys.argv[2])
result = handler(event, Context())
elapsed = time.perf_counter() - started
status = result.get("statusCode", 200) if isinstance(result, dict) else 200
if isinstance(result, dict) and result.get("batchItemFailures"):
    status = 500
print(json.dumps({"seconds": elapsed, "status": status}))
"""

BASELINE = """
import os
import boto3


def get_item(event, context):
    ddb = boto3.client("dynamodb")
    item = ddb.get_item(TableName=os.environ["TASKS_TABLE"], Key={"id": {"S": event["id"]}})
    return {"statusCode": 200, "body": str(item.get("Item", {}).get("status"))}


def update_item(event, context):
    ddb = boto3.client("dynamodb")
    ddb.update_item(
        TableName=os.environ["TASKS_TABLE"],
        Key={"id": {"S": event["id"]}},
        UpdateExpression="SET bench = :v",
        ExpressionAttributeValues={":v": {"S": "x"}},
    )
    return {}


def send_message(event, context):
    boto3.client("sqs").send_message(QueueUrl=os.environ["TASKS_QUEUE_URL"], MessageBody="{}")
    return {}
"""


@contextmanager
def layout(package: Path) -> Iterator[dict[str, Path]]:
    """The package unpacked (as shipped and without bytecode), the runtime's boto3, baseline."""
    import boto3

    site = Path(boto3.__file__).parent.parent
    with tempfile.TemporaryDirectory(prefix="taskstatus-cold-") as scratch:
        root = Path(scratch)
        paths = {"shipped": root / "task", "no bytecode": root / "task-source", "runtime": root}
        with zipfile.ZipFile(package) as archive:
            archive.extractall(paths["shipped"])
            archive.extractall(paths["no bytecode"])
        for cache in list(paths["no bytecode"].rglob("__pycache__")):
            shutil.rmtree(cache)
        paths["runtime"] = root / "runtime"
        paths["runtime"].mkdir()
        for name in RUNTIME_PACKAGES:
            (paths["runtime"] / name).symlink_to(site / name)
        paths["baseline"] = root / "baseline"
        paths["baseline"].mkdir()
        (paths["baseline"] / "baseline.py").write_text(BASELINE)
        for path in (paths["shipped"], paths["no bytecode"]):
            subprocess.run(["chmod", "-R", "a-w", str(path)], check=True)
        try:
            yield paths
        finally:
            for path in (paths["shipped"], paths["no bytecode"]):
                subprocess.run(["chmod", "-R", "u+w", str(path)], check=True)


def run(code: Path, runtime: Path, env: dict[str, str], target: tuple[str, str, Any]) -> float:
    module, handler, event = target
    process = subprocess.run(
        [sys.executable, "-S", "-c", RUNNER, module, handler, json.dumps(event)],
        cwd=code,
        env={**env, "PYTHONPATH": f"{code}:{runtime}", "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    if process.returncode:
        raise RuntimeError(f"{module}.{handler} failed:\n{process.stderr[-3000:]}")
    result = json.loads(process.stdout.strip().splitlines()[-1])
    if result["status"] != 200:
        raise RuntimeError(f"{module}.{handler} answered {result}: {process.stderr[-2000:]}")
    return float(result["seconds"])


def import_breakdown(code: Path, runtime: Path, env: dict[str, str], target: tuple) -> list:
    """Self import time by top-level package on one cold run (`-X importtime`)."""
    module, handler, event = target
    process = subprocess.run(
        [
            sys.executable,
            "-S",
            "-X",
            "importtime",
            "-c",
            RUNNER,
            module,
            handler,
            json.dumps(event),
        ],
        cwd=code,
        env={**env, "PYTHONPATH": f"{code}:{runtime}", "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    totals: dict[str, int] = defaultdict(int)
    for line in process.stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "self" not in line:
            own, _, name = line.removeprefix("import time:").split("|")
            totals[name.strip().split(".")[0]] += int(own)
    return sorted(totals.items(), key=lambda item: -item[1])[:6]


def cold_start(env: dict[str, str], events: dict[str, Callable[[], tuple]], package: Path) -> None:
    """`events`: per kind, a fresh (app's (module, handler, event), baseline's) each run."""
    runs = int(os.environ.get("BENCH_COLD_RUNS", "7"))
    samples: dict[tuple[str, str], list[float]] = defaultdict(list)
    with layout(package) as paths:
        for _ in range(runs):
            for kind, fresh in events.items():
                app_target, baseline_target = fresh()
                base = run(paths["baseline"], paths["runtime"], env, baseline_target)
                samples[(kind, "baseline")].append(base)
                for variant in ("shipped", "no bytecode"):
                    seconds = run(paths[variant], paths["runtime"], env, app_target)
                    samples[(kind, variant)].append(seconds)
        breakdown = {
            kind: import_breakdown(paths["shipped"], paths["runtime"], env, fresh()[0])
            for kind, fresh in events.items()
        }
    print(f"\nCold start: fresh process to first response, Lambda layout (median of {runs})")
    print(
        f"  {'function':22} {'baseline':>9} {'package':>9} {'ratio':>6} {'target':>7}"
        f" {'no .pyc':>9} {'ratio':>6}"
    )
    for kind, target in TARGETS.items():
        base, app, source = (
            statistics.median(samples[(kind, v)]) * 1000
            for v in ("baseline", "shipped", "no bytecode")
        )
        print(
            f"  {kind:22} {base:7.0f}ms {app:7.0f}ms {app / base:6.2f} {'<= ' + str(target):>7}"
            f" {source:7.0f}ms {source / base:6.2f}"
        )
    print("  where the package's cold start goes (-X importtime, self ms by top-level package):")
    for kind, rows in breakdown.items():
        print(f"    {kind:20} " + ", ".join(f"{name} {us / 1000:.0f}" for name, us in rows))


# -- the events, against a moto server ----------------------------------------------------------


def rest_get_event(job_id: str, token: str) -> dict[str, Any]:
    headers = {"authorization": f"Bearer {token}", "host": "bench.example", "accept": "*/*"}
    return {
        "resource": "/jobs/{jobId}",
        "path": f"/jobs/{job_id}",
        "httpMethod": "GET",
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": {"jobId": job_id},
        "stageVariables": None,
        "requestContext": {
            "resourcePath": "/jobs/{jobId}",
            "httpMethod": "GET",
            "path": f"/api/jobs/{job_id}",
            "stage": "api",
            "requestId": "bench-request",
            "identity": {"sourceIp": "127.0.0.1"},
        },
        "body": None,
        "isBase64Encoded": False,
    }


def measure(package: Path) -> None:
    """Start a moto server, create the stack, and time each function kind's first event."""
    import boto3

    import tests.conftest as fixtures
    from infra.rehearsal import emulator
    from local.events import sqs_event, stream_event
    from local.resources import create_stack

    with tempfile.TemporaryDirectory() as scratch, emulator(Path(scratch) / "moto.log") as url:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            **fixtures.LOCAL_STAGE["environment_variables"],
            "AWS_ENDPOINT_URL": url,
        }
        saved = dict(os.environ)
        os.environ.update(env)
        try:
            create_stack(boto3.client("cloudformation", endpoint_url=url))
            fixtures.reset_caches()
            events = _events(env, fixtures.token_for("bench-cold"), sqs_event, stream_event)
            cold_start(env, events, package)
        finally:
            os.environ.clear()
            os.environ.update(saved)
            fixtures.reset_caches()


def _events(env: dict[str, str], token: str, sqs_event: Any, stream_event: Any) -> dict:
    from chalicelib.bootstrap import container
    from chalicelib.model import Task

    service = container().service

    def new_task(**fields: Any) -> Task:
        task = Task.new(owner="bench-cold", type="demo/sleep", ttl_seconds=3600, **fields)
        service.store.create(task)
        return task

    def rest() -> tuple:
        task = new_task()
        return ("app", "app", rest_get_event(task.id, token)), (
            "baseline",
            "get_item",
            {"id": task.id},
        )

    def status() -> tuple:
        task = new_task()
        event = {"assemblyId": task.id, "userId": "bench-cold"}
        return ("app", "status", event), ("baseline", "get_item", {"id": task.id})

    def worker() -> tuple:
        task = new_task(input={"seconds": 0})
        message = {
            "MessageId": task.id,
            "ReceiptHandle": "bench",
            "Body": json.dumps({"taskId": task.id, "type": task.type}),
            "Attributes": {"ApproximateReceiveCount": "1"},
        }
        event = sqs_event([message], env["TASKS_QUEUE_URL"])
        return ("app", "worker", event), ("baseline", "update_item", {"id": task.id})

    def stream() -> tuple:
        task = Task.new(owner="bench-cold", type="demo/sleep", ttl_seconds=3600)
        image = service.store.attributes(task)
        record = {
            "eventName": "INSERT",
            "dynamodb": {"Keys": {"id": image["id"]}, "NewImage": image},
        }
        event = stream_event([record], env.get("TASKS_STREAM_ARN", STREAM_ARN))
        return ("app", "stream", event), ("baseline", "send_message", {})

    return {
        "REST GET /jobs/{id}": rest,
        "status Lambda": status,
        "worker": worker,
        "stream": stream,
    }
