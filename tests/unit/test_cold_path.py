"""What a function loads for its first event: no pydantic on the read, worker and stream paths.

pydantic's import and a model's schema cost more CPU than boto3's own import (bench/cold.py),
so the canonical Task is plain dataclasses and pydantic validates only what comes from
outside. Each test runs a fresh interpreter, so what earlier tests imported cannot hide a
regression.
"""

import io
import json
import pickle
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

READ_WORKER_AND_STREAM = """
import json, sys
import app  # the handlers' module, as Lambda imports it
from chalicelib import history, stream, webhooks, worker
from chalicelib.contracts import assembly, autovid, jobs, payloads, task_processor, task_status
from chalicelib.queues import DeliveryMessage, TaskMessage
from chalicelib.model import Progress, Status, Task, Webhook
from chalicelib.objects import Link
from chalicelib.processors import get_processor
from chalicelib.store import task_attributes, task_from_item

task = Task.new(owner="alice", type="demo/sleep", ttl_seconds=60, input={"seconds": 0},
                webhook=Webhook("https://example.com/hook"))
task = task.replace(status=Status.PROCESSING, progress=Progress(1, 2, "half"))
read = task_from_item(task_attributes(task, 60))  # the read path: an item to a task
for body in (jobs.job_document(read, with_input=True), autovid.job_document(read),
             task_status.view(read), task_processor.view(read, Link(60)), assembly.view(read)):
    json.dumps(body)
history.entry_item(read)  # the stream's history write
from chalicelib.edge import middleware as edge
edge.error_body("not_found", "no such job", "rid", errors=[{"field": "f", "message": "m"}])
for style in ("standard", "autovid", "transflow"):  # the stream's webhook event
    json.dumps(payloads.webhook_payload(read.replace(webhook=Webhook("https://e.com", style)), "x"))
TaskMessage.from_json(TaskMessage(read.id, read.type, read.owner).to_json())  # the worker's message
DeliveryMessage.from_json(DeliveryMessage(read.id, 1, 1).to_json())
get_processor("demo/sleep").read_input(read.input)  # the worker's input for demo/sleep
print(json.dumps(sorted(name for name in sys.modules if name.split(".")[0] in
                        ("pydantic", "pydantic_core", "annotated_types"))))
"""

LOAD_ONLY = """
import json, sys
import app
print(json.dumps(sorted(name for name in sys.modules if name.startswith("chalicelib."))))
"""

ONE_PROCESSOR = """
import json, sys
from chalicelib.processors import get_processor, registered_types
get_processor("demo/sleep")
loaded = sorted(name for name in sys.modules if name.startswith("chalicelib.processors."))
print(json.dumps({"loaded": loaded, "types": registered_types()}))
"""


# The stack's tables and queues in a fresh interpreter's own moto: only DynamoDB's and SQS's
# state, loaded, since moto's CloudFormation (which created them) imports pydantic itself.
ON_THE_STACK = """
import json, sys
from pathlib import Path
from moto import mock_aws
from local.emulator import load_state

aws = mock_aws()
aws.start()
load_state(Path(sys.argv[1]).read_bytes())
import app
from chalicelib.bootstrap import container
from chalicelib.model import Status, Task, utcnow
from datetime import timedelta

_, API_KEY = container().api_key_store.create(
    "alice", "ci", ["jobs:read"], 20, utcnow(), utcnow() + timedelta(days=1)
)
TASK = Task.new(owner="alice", type="demo/sleep", ttl_seconds=60, input={"seconds": 0})
container().store.create(TASK)
"""

PYDANTIC_LOADED = """
print(json.dumps(sorted(name for name in sys.modules if name.split(".")[0] in
                        ("pydantic", "pydantic_core", "annotated_types"))))
"""

A_REST_REQUEST_WITH_AN_API_KEY = (
    ON_THE_STACK
    + """
from chalice.test import Client
with Client(app.app, stage_name="prod", project_dir=".") as client:
    response = client.http.get(f"/jobs/{TASK.id}", headers={"X-API-Key": API_KEY})
assert response.status_code == 200, response.body
"""
    + PYDANTIC_LOADED
)

A_PUSH_TO_A_CONNECTION_OPENED_WITH_AN_API_KEY = (
    ON_THE_STACK
    + """
from local.events import LambdaContext, ws_event
connect = ws_event("$connect", "key-conn", 8001, queryStringParameters={"token": API_KEY})
assert app.ws_connect(connect, LambdaContext("ws_connect"))["statusCode"] == 200
changed = TASK.replace(status=Status.PROCESSING, version=TASK.version + 1)
assert container().realtime.on_task_change(changed) == 1  # the stream's fan-out
"""
    + PYDANTIC_LOADED
)


def stack_state(path: Path) -> Path:
    """The current moto's DynamoDB and SQS state (the stack as created), to a file."""
    from moto.backends import get_backend

    from local.emulator import _StatePickler

    state = {
        name: {account: dict(regions) for account, regions in get_backend(name).items()}
        for name in ("dynamodb", "sqs")
    }
    buffer = io.BytesIO()
    _StatePickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(state)
    path.write_bytes(buffer.getvalue())
    return path


def fresh_python(code: str, *args: str, env: dict[str, str] | None = None) -> object:
    env = {
        **(env or {}),
        "PATH": "/usr/bin:/bin",
        "AWS_DEFAULT_REGION": "us-east-1",
        "PYTHONPATH": str(ROOT),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    process = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert process.returncode == 0, process.stderr[-3000:]
    return json.loads(process.stdout.strip().splitlines()[-1])


def test_reads_the_worker_the_stream_and_webhooks_never_import_pydantic():
    assert fresh_python(READ_WORKER_AND_STREAM) == []


def test_a_rest_request_with_an_api_key_never_imports_pydantic(stack, tmp_path):
    from tests.conftest import UNIT_ENV

    state = stack_state(tmp_path / "state.pickle")
    assert fresh_python(A_REST_REQUEST_WITH_AN_API_KEY, str(state), env=UNIT_ENV) == []


def test_a_push_to_a_connection_opened_with_an_api_key_never_imports_pydantic(stack, tmp_path):
    from tests.conftest import UNIT_ENV

    state = stack_state(tmp_path / "state.pickle")
    assert (
        fresh_python(A_PUSH_TO_A_CONNECTION_OPENED_WITH_AN_API_KEY, str(state), env=UNIT_ENV) == []
    )


def test_loading_the_app_loads_no_rest_edge_and_no_aws_client():
    # Every function loads app.py; the worker, stream and status Lambda never use the edge.
    assert fresh_python(LOAD_ONLY) == [
        "chalicelib.bootstrap",
        "chalicelib.edge",  # the package's docstring only
        "chalicelib.edge.cors",
        "chalicelib.edge.http",
        "chalicelib.edge.http_errors",
        "chalicelib.edge.overload",
        "chalicelib.errors",  # the domain errors http_errors answers: plain classes
        "chalicelib.jsonsafe",
        "chalicelib.observability",
        "chalicelib.settings",
    ]


BUILT_IN_TYPES = {
    "demo/auto-vid",
    "demo/sleep",
    "image/blindwatermark",
    "image/deblindwatermark",
    "image/watermark",
}


def test_the_worker_imports_only_the_processor_it_runs():
    found = fresh_python(ONE_PROCESSOR)
    assert "chalicelib.processors.demo" in found["loaded"]
    others = {"chalicelib.processors.image", "chalicelib.processors.autovid_demo"}
    assert others.isdisjoint(found["loaded"])
    assert set(found["types"]) >= BUILT_IN_TYPES  # and yours, named in load_on_demand
