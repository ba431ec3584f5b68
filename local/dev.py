"""`make dev`: the whole service on this machine, on the moto server.

One process runs what AWS would run around the app:
  - the moto server (the embedded AWS emulator) on 127.0.0.1:$EMULATOR_PORT, as a child process;
  - the resources of infra/resources.json, created in it through CloudFormation;
  - the REST API on 127.0.0.1:$PORT, served by Chalice's own local server (`chalice local`);
  - event source mappings: the task queue, the dead-letter queue and the table's stream,
    polled and handed to the same handler functions Lambda would call;
  - the reaper's schedule, once a minute.
Ctrl-C stops everything.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import boto3

ROOT = Path(__file__).resolve().parent.parent
STAGE = "local"


def _wait_for(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def start_emulator(port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_for(f"http://127.0.0.1:{port}/moto-api/data.json")
    return process


def load_app(emulator_port: int, ws_management_port: int) -> tuple[Any, Any]:
    """Load the app exactly as `chalice local --stage local` does, then point it at our ports."""
    from chalice.cli.factory import CLIFactory

    config = CLIFactory(str(ROOT), environ=os.environ).create_config_obj(chalice_stage_name=STAGE)
    config.chalice_app  # noqa: B018  (loads the stage's environment variables, then the app)
    os.environ["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{emulator_port}"
    os.environ["WS_ENDPOINT_URL"] = f"http://127.0.0.1:{ws_management_port}"
    import app as app_module

    return app_module, config


def _gateway_like_handler() -> type:
    """Chalice's local handler, but a method it does not know is a 405, as behind API Gateway.

    BaseHTTPRequestHandler answers 501 to TRACE, CONNECT, QUERY...; API Gateway never
    sends those to the app.
    """
    import json
    import uuid

    from chalice.local import ChaliceRequestHandler

    class Handler(ChaliceRequestHandler):  # type: ignore[misc]
        def _unsupported(self) -> None:
            rid = uuid.uuid4().hex
            body = json.dumps(
                {
                    "error": {
                        "code": "method_not_allowed",
                        "message": f"{self.command} is not allowed",
                    },
                    "requestId": rid,
                    "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                }
            ).encode()
            self.send_response(405)
            self.send_header("Content-Type", "application/json")
            self.send_header("X-Request-Id", rid)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def __getattr__(self, name: str) -> Any:
            if name.startswith("do_"):  # TRACE, CONNECT, QUERY, ...
                return self._unsupported
            raise AttributeError(name)

    return Handler


GatewayLikeHandler = _gateway_like_handler()


def streams_client() -> Any:
    return boto3.client("dynamodbstreams", endpoint_url=os.environ["AWS_ENDPOINT_URL"])


class DevStack:
    def __init__(
        self,
        port: int,
        emulator_port: int,
        ws_port: int,
        ws_management_port: int,
        lambda_port: int = 8003,
    ) -> None:
        self.port = port
        self.lambda_port = lambda_port
        self.lambda_api: Any = None
        self.emulator_port = emulator_port
        self.ws_port = ws_port
        self.ws_management_port = ws_management_port
        self.gateway: Any = None
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.emulator: subprocess.Popen[bytes] | None = None
        self.server: Any = None

    def start(self) -> None:
        from chalice.local import LocalDevServer

        from local.pumps import SqsPump, StreamPump
        from local.resources import create_stack

        self.emulator = start_emulator(self.emulator_port)
        from local.ws_gateway import WebSocketGateway

        app_module, config = load_app(self.emulator_port, self.ws_management_port)
        outputs = create_stack(boto3.client("cloudformation"))
        sqs = boto3.client("sqs")
        pumps: list[Any] = [
            StreamPump(streams_client(), outputs["TasksStreamArn"], app_module.stream, "stream"),
            SqsPump(sqs, outputs["TasksQueueUrl"], app_module.worker, "worker"),
            SqsPump(
                sqs, outputs["TasksDeadLetterQueueUrl"], app_module.dead_letters, "dead_letters"
            ),
            SqsPump(sqs, outputs["WebhooksQueueUrl"], app_module.webhooks, "webhooks"),
        ]
        for pump in pumps:
            self._spawn(pump.run_forever, pump.name)
        self._spawn(lambda stop: self._every(60, app_module.reaper, stop), "reaper")
        self.gateway = WebSocketGateway(app_module, self.ws_port, self.ws_management_port)
        self.gateway.start()
        from local.lambda_api import LambdaApi, functions

        self.lambda_api = LambdaApi(functions(app_module, config.app_name, STAGE), self.lambda_port)
        self.lambda_api.start()
        self.server = LocalDevServer(
            app_module.app, config, "127.0.0.1", self.port, handler_cls=GatewayLikeHandler
        )
        self._spawn(lambda stop: self.server.serve_forever(), "api")
        _wait_for(f"http://127.0.0.1:{self.port}/health")

    def _spawn(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=target, args=(self.stop,), name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def _every(self, seconds: float, handler: Any, stop: threading.Event) -> None:
        from local.events import LambdaContext

        while not stop.wait(seconds):
            try:
                handler(
                    {"detail-type": "Scheduled Event", "source": "aws.events"},
                    LambdaContext("reaper"),
                )
            except Exception:
                logging.getLogger("taskstatus_svc.local").exception("reaper failed")

    def shutdown(self) -> None:
        self.stop.set()
        if self.gateway is not None:
            self.gateway.stop()
        if self.lambda_api is not None:
            self.lambda_api.stop()
        if self.server is not None:
            self.server.shutdown()
        if self.emulator is not None:
            self.emulator.terminate()
            try:
                self.emulator.wait(5)
            except subprocess.TimeoutExpired:
                self.emulator.kill()


def banner(stack: DevStack) -> str:
    from chalicelib.auth import mint_token
    from local.token import local_secret

    token = mint_token("dev-user", local_secret(), 7 * 86400)
    api = f"http://127.0.0.1:{stack.port}"
    return f"""
taskstatus is running (stage: local)
  REST API   {api}
  WebSocket  ws://127.0.0.1:{stack.ws_port}/?token=$TOKEN
  (the management API the app pushes through: http://127.0.0.1:{stack.ws_management_port})
  Lambda     http://127.0.0.1:{stack.lambda_port} (the Invoke API for every function of the app)
             aws lambda invoke --endpoint-url http://127.0.0.1:{stack.lambda_port} \\
               --function-name taskstatus-local-status --payload '{{"assemblyId":"..."}}' out.json
             (AWS CLI v2: add --cli-binary-format raw-in-base64-out)
  emulator   http://127.0.0.1:{stack.emulator_port} (moto server)

A token for user `dev-user` (7 days; mint others with `make token NAME=alice`):
  export TOKEN={token}

Try:
  curl -s -X POST {api}/jobs -H "Authorization: Bearer $TOKEN" \\
       -d '{{"type":"demo/sleep","input":{{"seconds":3,"steps":3}}}}'
  curl -s {api}/jobs -H "Authorization: Bearer $TOKEN"

Ctrl-C stops everything.
"""


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("botocore").setLevel(logging.WARNING)
    stack = DevStack(
        port=int(os.environ.get("PORT", "8000")),
        emulator_port=int(os.environ.get("EMULATOR_PORT", "5000")),
        ws_port=int(os.environ.get("WS_PORT", "8001")),
        ws_management_port=int(os.environ.get("WS_MANAGEMENT_PORT", "8002")),
        lambda_port=int(os.environ.get("LAMBDA_PORT", "8003")),
    )
    stopped = threading.Event()
    # Set explicitly: a process started in the background may inherit SIGINT as ignored.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.set())
    try:
        stack.start()
        print(banner(stack), flush=True)
        while not stopped.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        print("stopping taskstatus...", flush=True)
        stack.shutdown()


if __name__ == "__main__":
    main()
