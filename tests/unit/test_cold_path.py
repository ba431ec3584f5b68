"""What a function loads for its first event: no pydantic on the read, worker and stream paths.

pydantic's import and a model's schema cost more CPU than boto3's own import (bench/cold.py),
so the canonical Task is plain dataclasses and pydantic validates only what comes from
outside. Each test runs a fresh interpreter, so what earlier tests imported cannot hide a
regression.
"""

import json
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


def fresh_python(code: str) -> object:
    env = {
        "PATH": "/usr/bin:/bin",
        "AWS_DEFAULT_REGION": "us-east-1",
        "PYTHONPATH": str(ROOT),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    process = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert process.returncode == 0, process.stderr[-3000:]
    return json.loads(process.stdout.strip().splitlines()[-1])


def test_reads_the_worker_the_stream_and_webhooks_never_import_pydantic():
    assert fresh_python(READ_WORKER_AND_STREAM) == []


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
