"""Cold start as Lambda runs it: a fresh process, the unpacked deployment package, one event.

Each function kind (REST GET by id with a valid token, the status Lambda, the worker with
one record, the stream handler with one record) starts a fresh interpreter whose path is
the unpacked `make package` zip plus the runtime's boto3 (nothing else of the dev venv:
`python -S`), writes no bytecode (Lambda's /var/task is read-only), imports app.py and
serves its first event against a moto server. The baseline is the same kind of process
importing boto3 and making the same AWS calls from a plain handler: one GetItem for a
read; the worker's two UpdateItems; the stream's PutItem, SendMessage and BatchGetItem for
a new task (`bench.py` counts each operation's calls). The ratio is then what the package
costs beyond the AWS work it must do. Runs are
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

from bench import scale

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
started, started_cpu = time.perf_counter(), time.process_time()
handler = getattr(__import__(sys.argv[1]), sys.argv[2])
result = handler(event, Context())
elapsed, cpu = time.perf_counter() - started, time.process_time() - started_cpu
status = result.get("statusCode", 200) if isinstance(result, dict) else 200
if isinstance(result, dict) and result.get("batchItemFailures"):
    status = 500
print(json.dumps({"seconds": elapsed, "cpu": cpu, "status": status}))
"""

BASELINE = """
import os
import boto3


def get_item(event, context):
    ddb = boto3.client("dynamodb")
    item = ddb.get_item(TableName=os.environ["TASKS_TABLE"], Key={"id": {"S": event["id"]}})
    return {"statusCode": 200, "body": str(item.get("Item", {}).get("status"))}


def update_item_twice(event, context):
    # The worker's calls: the claim and the outcome, two UpdateItems.
    ddb = boto3.client("dynamodb")
    for value in ("claimed", "done"):
        ddb.update_item(
            TableName=os.environ["TASKS_TABLE"],
            Key={"id": {"S": event["id"]}},
            UpdateExpression="SET bench = :v",
            ExpressionAttributeValues={":v": {"S": value}},
        )
    return {}


def put_send_get(event, context):
    # The stream's calls on a new task: its history entry (PutItem), its queue message
    # (SendMessage) and the subscriber markers (BatchGetItem).
    ddb = boto3.client("dynamodb")
    records = os.environ["RECORDS_TABLE"]
    ddb.put_item(TableName=records, Item={"pk": {"S": event["id"]}, "sk": {"S": "bench"}})
    boto3.client("sqs").send_message(QueueUrl=os.environ["TASKS_QUEUE_URL"], MessageBody="{}")
    keys = [{"pk": {"S": "subscribers#bench"}, "sk": {"S": "marker"}}]
    ddb.batch_get_item(RequestItems={records: {"Keys": keys, "ConsistentRead": True}})
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


def run(
    code: Path, runtime: Path, env: dict[str, str], target: tuple[str, str, Any]
) -> tuple[float, float]:
    """Wall and CPU seconds from the start of the import to the first event's answer."""
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
    return float(result["seconds"]), float(result["cpu"])


def import_times(code: Path, runtime: Path, env: dict[str, str], target: tuple) -> dict:
    """Self import time (us) per module on one cold run (`-X importtime`)."""
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
    times: dict[str, int] = {}
    for line in process.stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "self" not in line:
            own, _, name = line.removeprefix("import time:").split("|")
            times[name.strip()] = int(own)
    return times


def added_imports(app: dict[str, int], baseline: dict[str, int]) -> list[tuple[str, int]]:
    """What the app imports that the baseline does not, by top-level package, largest first."""
    totals: dict[str, int] = defaultdict(int)
    for name, own in app.items():
        if name not in baseline:
            totals[name.split(".")[0]] += own
    return sorted(totals.items(), key=lambda item: -item[1])


def cold_start(
    env: dict[str, str], events: dict[str, Callable[[], tuple]], package: Path
) -> dict[str, float]:
    """`events`: per kind, a fresh (app's (module, handler, event), baseline's) each run.

    Returns the package's median cold CPU ms per kind."""
    runs = int(os.environ.get("BENCH_COLD_RUNS", str(scale.chosen().cold_runs)))
    samples: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    with layout(package) as paths:
        for round_number in range(1, runs + 1):
            scale.step(f"cold start: round {round_number} of {runs} ({len(events)} functions)")
            for kind, fresh in events.items():
                app_target, baseline_target = fresh()
                base = run(paths["baseline"], paths["runtime"], env, baseline_target)
                samples[(kind, "baseline")].append(base)
                for variant in ("shipped", "no bytecode"):
                    seconds = run(paths[variant], paths["runtime"], env, app_target)
                    samples[(kind, variant)].append(seconds)
        breakdown = {}
        scale.step("cold start: what each function imports (-X importtime)")
        for kind, fresh in events.items():
            app_target, baseline_target = fresh()
            breakdown[kind] = added_imports(
                import_times(paths["shipped"], paths["runtime"], env, app_target),
                import_times(paths["baseline"], paths["runtime"], env, baseline_target),
            )
    print(f"\nCold start: fresh process to first response, Lambda layout (median of {runs})")
    print(
        "  wall: time to the answer; CPU: the process's own CPU time (steadier on a busy machine)"
    )
    print(
        f"  {'function':22} {'baseline':>15} {'package':>15} {'ratio':>11} {'target':>7}"
        f" {'no .pyc':>9} {'ratio':>6}"
    )
    print(f"  {'':22} {'wall':>7} {'CPU':>7} {'wall':>7} {'CPU':>7} {'wall':>5} {'CPU':>5}")
    cold_cpu: dict[str, float] = {}
    for kind, target in TARGETS.items():
        (base, base_cpu), (app, app_cpu), (source, _) = (
            (
                statistics.median(s[0] for s in samples[(kind, v)]) * 1000,
                statistics.median(s[1] for s in samples[(kind, v)]) * 1000,
            )
            for v in ("baseline", "shipped", "no bytecode")
        )
        print(
            f"  {kind:22} {base:5.0f}ms {base_cpu:5.0f}ms {app:5.0f}ms {app_cpu:5.0f}ms"
            f" {app / base:5.2f} {app_cpu / base_cpu:5.2f} {'<= ' + str(target):>7}"
            f" {source:7.0f}ms {source / base:6.2f}"
        )
        cold_cpu[kind] = app_cpu
    print("  what the package imports beyond the baseline (-X importtime, self ms, one run):")
    for kind, rows in breakdown.items():
        total = sum(us for _, us in rows) / 1000
        top = ", ".join(f"{name} {us / 1000:.0f}" for name, us in rows[:7])
        print(f"    {kind:20} {total:.0f} ms: {top}")
    return cold_cpu


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


def measure(package: Path) -> tuple[dict[str, float], float]:
    """Start a moto server, create the stack, and time each function kind's first event."""
    import boto3

    import local.stack as fixtures
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
            scale.step("cold start: the stack on a moto server")
            create_stack(boto3.client("cloudformation", endpoint_url=url))
            fixtures.reset_caches()
            events = _events(env, fixtures.token_for("bench-cold"), sqs_event, stream_event)
            cold_cpu = cold_start(env, events, package)
            size = scale.chosen()
            scale.step(f"warm GET /jobs/{{id}}: {size.warm_rounds} rounds of {size.warm_requests}")
            warm = warm_get_cpu(
                fixtures.token_for("bench-cold"), size.warm_requests, size.warm_rounds
            )
            return cold_cpu, warm
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
            "Body": json.dumps({"taskId": task.id, "type": task.type, "owner": task.owner}),
            "Attributes": {"ApproximateReceiveCount": "1"},
        }
        event = sqs_event([message], env["TASKS_QUEUE_URL"])
        return ("app", "worker", event), ("baseline", "update_item_twice", {"id": task.id})

    def stream() -> tuple:
        task = Task.new(owner="bench-cold", type="demo/sleep", ttl_seconds=3600)
        image = service.store.attributes(task)
        record = {
            "eventName": "INSERT",
            "dynamodb": {
                "Keys": {"id": image["id"]},
                "NewImage": image,
                "SequenceNumber": "100000000000000000001",  # every stream record has one
                "StreamViewType": "NEW_AND_OLD_IMAGES",
            },
        }
        event = stream_event([record], env.get("TASKS_STREAM_ARN", STREAM_ARN))
        return ("app", "stream", event), ("baseline", "put_send_get", {"id": task.id})

    return {
        "REST GET /jobs/{id}": rest,
        "status Lambda": status,
        "worker": worker,
        "stream": stream,
    }


# -- warm: CPU per GET by id, the app against a minimal Chalice app ------------------------------


def minimal_app(table: str) -> Any:
    """A Chalice app that serves GET /jobs/{jobId} with the same GetItem and nothing else."""
    import boto3
    from chalice import Chalice

    minimal = Chalice(app_name="minimal")
    ddb = boto3.client("dynamodb")

    @minimal.route("/jobs/{jobId}", methods=["GET"])
    def get_job(jobId: str) -> dict[str, Any]:
        item = ddb.get_item(TableName=table, Key={"id": {"S": jobId}})["Item"]
        return {"jobId": jobId, "status": item["status"]["S"]}

    return minimal


def warm_get_cpu(token: str, requests: int = 100, rounds: int = 15) -> float:
    """CPU time of this process per warm GET /jobs/{id} (the emulator runs in its own process)."""
    import time

    import app as app_module
    from chalicelib.bootstrap import container
    from chalicelib.model import Task
    from local.events import LambdaContext

    service = container().service
    task = Task.new(owner="bench-cold", type="demo/sleep", ttl_seconds=3600)
    service.store.create(task)
    event = rest_get_event(task.id, token)
    handlers = {
        "app": app_module.app,
        "minimal": minimal_app(service.settings.tasks_table),
    }
    samples: dict[str, list[float]] = defaultdict(list)
    for handler in handlers.values():  # warm both up
        for _ in range(5):
            assert handler(event, LambdaContext("api_handler"))["statusCode"] == 200
    for _ in range(rounds):
        for name, handler in handlers.items():
            context = LambdaContext("api_handler")
            start = time.process_time()
            for _ in range(requests):
                handler(event, context)
            samples[name].append((time.process_time() - start) / requests)
    app_cpu, minimal_cpu = (statistics.median(samples[n]) * 1000 for n in ("app", "minimal"))
    ratios = [a / m for a, m in zip(samples["app"], samples["minimal"], strict=True)]
    print(
        f"\nWarm GET /jobs/{{id}}: CPU per request in the handler's process ({rounds} interleaved"
        f" rounds of {requests}, emulator in another process)"
    )
    print(
        f"  app {app_cpu:.2f} ms, minimal Chalice app with the same GetItem {minimal_cpu:.2f} ms;"
        f" ratio per round: median {statistics.median(ratios):.2f}"
        f" ({min(ratios):.2f}-{max(ratios):.2f}), target <= 1.15"
    )
    return app_cpu


# -- sizing: what the measured CPU projects to at Lambda's memory sizes ---------------------------

FULL_VCPU_MB = 1769  # Lambda gives one full vCPU at 1,769 MB, a share in proportion below
GB_SECOND = 0.0000166667  # x86, us-east-1
PER_REQUEST = 0.20 / 1e6
API_GATEWAY_REST = 3.50 / 1e6
READ_REQUEST_UNIT = 0.125 / 1e6  # DynamoDB on demand; an eventually consistent GetItem <= 4 KB: 0.5
DYNAMODB_LATENCY_MS = 4.0  # an assumption: a GetItem's round trip inside a region


def sizing(cold_cpu_ms: dict[str, float], warm_cpu_ms: float) -> None:
    """Projected first-response time and warm cost per 1M status checks for each memory size,
    assuming a Lambda vCPU does the work of one core of this machine."""
    print(
        "\nSizing (projection: CPU ms here x 1769 / memory MB; warm adds "
        f"{DYNAMODB_LATENCY_MS:g} ms for the GetItem)"
    )
    print(
        f"  {'memory':>7} {'cold REST':>10} {'cold status':>12} {'warm':>7}"
        f" {'Lambda/1M':>10} {'+DynamoDB':>10} {'via REST API':>13}"
    )
    dynamodb = 0.5 * READ_REQUEST_UNIT * 1e6
    for memory in (128, 256, 512, 1024, 1769):
        scale = FULL_VCPU_MB / memory
        warm_ms = warm_cpu_ms * scale + DYNAMODB_LATENCY_MS
        lam = (PER_REQUEST + memory / 1024 * warm_ms / 1000 * GB_SECOND) * 1e6
        print(
            f"  {memory:5d}MB {cold_cpu_ms['REST GET /jobs/{id}'] * scale / 1000:9.1f}s"
            f" {cold_cpu_ms['status Lambda'] * scale / 1000:11.1f}s {warm_ms:5.0f}ms"
            f" {'$' + format(lam, '.3f'):>10} {'$' + format(lam + dynamodb, '.3f'):>10}"
            f" {'$' + format(lam + dynamodb + API_GATEWAY_REST * 1e6, '.2f'):>13}"
        )
    print("  seed 003's estimate: $0.45 per 1M status checks (512 MB, 30 ms)")
