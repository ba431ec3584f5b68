"""`make dev`: the whole service on this machine, on the moto server.

One process runs what AWS would run around the app:
  - the moto server (the embedded AWS emulator) on 127.0.0.1:$EMULATOR_PORT, as a child process;
  - the resources of infra/resources.json, created in it through CloudFormation;
  - the REST API on 127.0.0.1:$PORT, served by Chalice's own local server (`chalice local`);
  - event source mappings: the task queue, the dead-letter queue and the table's stream,
    polled and handed to the same handler functions Lambda would call;
  - the reaper's schedule, once a minute (`REAPER_INTERVAL_SECONDS`).
Handlers run concurrently, as in Lambda: the REST API in a pool of app copies that each
serve one request at a time (`API_CONCURRENCY`, local/app_pool.py), the queues' handlers
in up to `WORKER_CONCURRENCY` invocations at once.

State (tables, queues, objects, the stream's checkpoint) is kept in `LOCAL_DATA_DIR`
(default `.taskstatus/` in the checkout) across restarts; `--reset` starts empty.
`.taskstatus/local.json` tells the CLI and the Python client where the stack is.
By default the stack runs in a child process that local/reloader.py restarts when the
app's code changes (the emulator stays in this one); `RELOAD=0` runs it here.
Ctrl-C stops everything.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from infra.ports import in_use, wait_for

ROOT = Path(__file__).resolve().parent.parent
STAGE = "local"
DATA_DIR = ROOT / ".taskstatus"
DEV_USER = "dev-user"
DEV_OPERATOR = "dev-operator"  # signs in to the operator's console (OPERATOR_SCOPE)
# Where each reader of the table's stream had got to (kept across restarts).
STREAM_POSITIONS = "stream-positions.json"
PUSH_POSITIONS = "push-positions.json"
# A reload lets the running invocations finish for this long before it stops them.
RELOAD_GRACE_SECONDS = float(os.environ.get("RELOAD_GRACE_SECONDS", "10"))


def start_emulator(port: int, state: Path | None) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "local.emulator", "--port", str(port)]
    if state is not None:
        command += ["--state", str(state)]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=None,
        # Its own session: Ctrl-C reaches only us, and we stop it last, after the messages
        # in flight are released, so that its saved state has them.
        start_new_session=True,
    )
    wait_for(f"http://127.0.0.1:{port}/moto-api/data.json")
    return process


# Settings of the app a developer may set for `make dev` (`WORKER_LEASE_SECONDS=10 make dev`);
# the stage's configuration would otherwise overwrite them.
TUNABLE = (
    "WORKER_LEASE_SECONDS",
    "WORKER_POOLS",
    "POOL_TYPES",
    "OPERATOR_SCOPE",
    "TASK_TIMEOUT_SECONDS",
    "MAX_ATTEMPTS",
    "WEBHOOK_TIMEOUT_SECONDS",
    "LOG_LEVEL",
)


def load_app(emulator_port: int, ws_management_port: int, ws_port: int = 8001) -> tuple[Any, Any]:
    """Load the app exactly as `chalice local --stage local` does, then point it at our ports."""
    from chalice.cli.factory import CLIFactory

    mine = {name: os.environ[name] for name in TUNABLE if name in os.environ}
    config = CLIFactory(str(ROOT), environ=os.environ).create_config_obj(chalice_stage_name=STAGE)
    config.chalice_app  # noqa: B018  (loads the stage's environment variables, then the app)
    os.environ.update(mine)
    os.environ["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{emulator_port}"
    os.environ["WS_ENDPOINT_URL"] = f"http://127.0.0.1:{ws_management_port}"
    # Browsers (the dashboard) connect to the gateway's client port, not to its management API.
    os.environ["WS_PUBLIC_URL"] = f"ws://127.0.0.1:{ws_port}"
    import app as app_module

    return app_module, config


def _gateway_like_handler() -> type:
    """Chalice's local handler, but a method it does not know is a 405, as behind API Gateway.

    BaseHTTPRequestHandler answers 501 to TRACE, CONNECT, QUERY...; API Gateway never
    sends those to the app.
    """
    import json
    import uuid
    from http.server import BaseHTTPRequestHandler

    from chalice.local import ChaliceRequestHandler, LocalGateway

    from chalicelib.edge.middleware import error_body

    class Handler(ChaliceRequestHandler):  # type: ignore[misc]
        def __init__(
            self,
            request: Any,
            client_address: Any,
            server: Any,
            app_object: Any,
            config: Any,
            gateway: Any = None,
        ) -> None:
            # Each request runs in a container of the pool (local/app_pool.py), never on an
            # app object another thread is using.
            self.local_gateway = gateway or LocalGateway(app_object, config)
            BaseHTTPRequestHandler.__init__(self, request, client_address, server)

        def _unsupported(self) -> None:
            rid = uuid.uuid4().hex
            message = f"{self.command} is not allowed"
            body = json.dumps(error_body("method_not_allowed", message, rid)).encode()
            self.send_response(405)
            self.send_header("Content-Type", "application/json")
            self.send_header("X-Request-Id", rid)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _send_http_response_with_body(
            self, code: int, headers: dict[str, Any], body: str | bytes
        ) -> None:
            """A HEAD answer is its headers only (RFC 9110, 9.3.2): a body after them would be
            read as the start of the next response on a kept-alive connection."""
            if self.command != "HEAD":
                super()._send_http_response_with_body(code, headers, body)
                return
            self.send_response(code)
            length = len(body.encode() if isinstance(body, str) else body)
            self.send_header("Content-Length", str(length))
            self.send_header("Content-Type", headers.pop("Content-Type", "application/json"))
            self._send_headers(headers)

        def __getattr__(self, name: str) -> Any:
            if name.startswith("do_"):  # TRACE, CONNECT, QUERY, ...
                return self._unsupported
            raise AttributeError(name)

    return Handler


GatewayLikeHandler = _gateway_like_handler()


def streams_client() -> Any:
    return boto3.client("dynamodbstreams", endpoint_url=os.environ["AWS_ENDPOINT_URL"])


def fire_schedule(handler: Any, name: str) -> Any:
    """Invoke the scheduled function `name` as its EventBridge rule would."""
    from local.events import LambdaContext, schedule_rule, scheduled_event

    return handler(scheduled_event(schedule_rule(name)), LambdaContext(name))


@dataclass(frozen=True)
class DevSettings:
    """`make dev`'s own settings, from the environment."""

    port: int = 8000
    emulator_port: int = 5000
    ws_port: int = 8001
    ws_management_port: int = 8002
    lambda_port: int = 8003
    api_concurrency: int = 8
    worker_concurrency: int = 4
    reaper_interval_seconds: float = 60
    data_dir: Path | None = DATA_DIR

    @classmethod
    def from_env(cls, environ: Any = os.environ) -> DevSettings:
        data_dir = environ.get("LOCAL_DATA_DIR", str(DATA_DIR))
        return cls(
            port=int(environ.get("PORT", "8000")),
            emulator_port=int(environ.get("EMULATOR_PORT", "5000")),
            ws_port=int(environ.get("WS_PORT", "8001")),
            ws_management_port=int(environ.get("WS_MANAGEMENT_PORT", "8002")),
            lambda_port=int(environ.get("LAMBDA_PORT", "8003")),
            api_concurrency=int(environ.get("API_CONCURRENCY", "8")),
            worker_concurrency=int(environ.get("WORKER_CONCURRENCY", "4")),
            reaper_interval_seconds=float(environ.get("REAPER_INTERVAL_SECONDS", "60")),
            data_dir=Path(data_dir).resolve() if data_dir else None,
        )

    def ports(self) -> dict[str, int]:
        return {
            "PORT": self.port,
            "WS_PORT": self.ws_port,
            "WS_MANAGEMENT_PORT": self.ws_management_port,
            "LAMBDA_PORT": self.lambda_port,
            "EMULATOR_PORT": self.emulator_port,
        }

    @property
    def state_dir(self) -> Path | None:
        return self.data_dir / "state" if self.data_dir else None

    @property
    def endpoints_file(self) -> Path | None:
        return self.data_dir / "local.json" if self.data_dir else None


def busy_ports(settings: DevSettings) -> list[str]:
    """The settings whose port something else is listening on."""
    return [name for name, port in settings.ports().items() if in_use(port)]


class DevStack:
    def __init__(self, settings: DevSettings, own_emulator: bool = True) -> None:
        """`own_emulator`: start the emulator and stop it last (else it is the reloader's)."""
        self.settings = settings
        self.own_emulator = own_emulator
        self.port = settings.port
        self.emulator_port = settings.emulator_port
        self.ws_port = settings.ws_port
        self.ws_management_port = settings.ws_management_port
        self.lambda_port = settings.lambda_port
        self.lambda_api: Any = None
        self.api_concurrency = settings.api_concurrency
        self.gateway: Any = None
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.emulator: subprocess.Popen[bytes] | None = None
        self.server: Any = None
        self.pumps: list[Any] = []
        self.stream_pump: Any = None
        self.push_pump: Any = None
        self.worker_lease_seconds = 120

    def start(self) -> None:
        from chalice.local import LocalDevServer

        from local import freeze
        from local.app_pool import PooledGateway
        from local.pumps import event_sources, every
        from local.resources import create_stack

        freeze.install()
        state = self.settings.state_dir
        if self.own_emulator:
            self.emulator = start_emulator(
                self.emulator_port, state / "emulator.pickle" if state else None
            )
        from local.ws_gateway import WebSocketGateway

        app_module, config = load_app(self.emulator_port, self.ws_management_port, self.ws_port)
        self.worker_lease_seconds = int(os.environ.get("WORKER_LEASE_SECONDS", "120"))
        outputs = create_stack(boto3.client("cloudformation"))
        self.resume_interrupted(app_module)
        sources = event_sources(
            app_module,
            outputs,
            boto3.client("sqs"),
            streams_client(),
            concurrency=self.settings.worker_concurrency,
            positions=self._load_positions(),
            push_positions=self._load_positions(PUSH_POSITIONS),
        )
        self.stream_pump = sources.stream
        self.push_pump = sources.pushes
        self.worker_pump = sources.worker
        self.pumps = sources.all()
        for pump in self.pumps:
            self._spawn(pump.run_forever, pump.name)

        self._spawn(
            lambda stop: every(
                self.settings.reaper_interval_seconds,
                lambda: fire_schedule(app_module.reaper, "reaper"),
                stop,
                "reaper",
            ),
            "reaper",
        )
        self.gateway = WebSocketGateway(app_module, self.ws_port, self.ws_management_port)
        self.gateway.start()
        from local.lambda_api import LambdaApi, functions

        self.lambda_api = LambdaApi(functions(app_module, config.app_name, STAGE), self.lambda_port)
        self.lambda_api.start()
        gateway = PooledGateway.of_copies(app_module, self.api_concurrency, config)
        self.server = LocalDevServer(
            app_module.app,
            config,
            "127.0.0.1",
            self.port,
            handler_cls=functools.partial(GatewayLikeHandler, gateway=gateway),
        )
        self._spawn(lambda stop: self.server.serve_forever(), "api")
        wait_for(f"http://127.0.0.1:{self.port}/health")

    @staticmethod
    def resume_interrupted(app_module: Any) -> list[str]:
        """Before any worker runs: the tasks the last run was running have no worker left
        (it stopped with that run, or crashed), so they run again now, each as a retry,
        rather than once their leases and the queue's visibility timeout run out. Their
        slots are given back, so the last run's work never holds up new work."""
        resumed: list[str] = app_module.bootstrap.container().service.resume_all_running(
            by="restart"
        )
        if resumed:
            print(f"{len(resumed)} task(s) the last run left running start again", flush=True)
        return resumed

    def _spawn(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=target, args=(self.stop,), name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    # -- state kept across restarts -----------------------------------------------------

    def _positions_file(self, name: str = STREAM_POSITIONS) -> Path | None:
        state = self.settings.state_dir
        return state / name if state else None

    def _load_positions(self, name: str = STREAM_POSITIONS) -> dict[str, str]:
        path = self._positions_file(name)
        if path is None or not path.exists():
            return {}
        return json.loads(path.read_text())

    def _save_positions(self) -> None:
        """Each stream reader's checkpoint, as Lambda keeps a mapping's."""
        for name, pump in ((STREAM_POSITIONS, self.stream_pump), (PUSH_POSITIONS, self.push_pump)):
            path = self._positions_file(name)
            if path is not None and self.pumps and pump is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(pump.positions))

    def _let_invocations_finish(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and any(
            getattr(pump, "in_flight", 0) for pump in self.pumps
        ):
            time.sleep(0.1)

    def write_endpoints(self, token: str) -> None:
        path = self.settings.endpoints_file
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        # It holds a token: this user's alone (the client ignores one others may write).
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text(json.dumps(endpoints(self, token), indent=2) + "\n")

    def shutdown(self, grace_seconds: float = 0) -> None:
        """In order: no new work, `grace_seconds` for the running invocations to finish (a
        reload's), the rest frozen (local/freeze.py) and their messages released, the
        servers stopped, and the emulator last."""
        from local import freeze

        self.stop.set()
        self._let_invocations_finish(grace_seconds)
        freeze.freeze_all_but_this_thread()
        released = 0
        for pump in self.pumps:
            if isinstance(pump, type(self.worker_pump)):
                # A task message comes back once the dead invocation's lease has run out,
                # so that its redelivery can take the task over (chalicelib/worker.py).
                wait = self.worker_lease_seconds + 2 if pump is self.worker_pump else 0
                try:
                    released += pump.release_in_flight(wait)
                except Exception:
                    logging.getLogger("taskstatus_svc.local").warning(
                        "could not release the messages of %s", pump.name
                    )
        if released:
            print(
                f"{released} message(s) in flight will be delivered again after the restart",
                flush=True,
            )
        self._save_positions()
        if self.gateway is not None:
            self.gateway.stop()
        if self.lambda_api is not None:
            self.lambda_api.stop()
        if self.server is not None:
            self.server.shutdown()
        if self.settings.endpoints_file is not None:
            self.settings.endpoints_file.unlink(missing_ok=True)
        if self.emulator is not None:
            stop_emulator(self.emulator)


def stop_emulator(emulator: subprocess.Popen[bytes]) -> None:
    """SIGTERM: the emulator writes its state back, then exits."""
    emulator.terminate()
    try:
        emulator.wait(30)
    except subprocess.TimeoutExpired:
        emulator.kill()


def endpoints(stack: DevStack, token: str) -> dict[str, Any]:
    """What the CLI and the Python client read from .taskstatus/local.json."""
    return {
        "api": f"http://127.0.0.1:{stack.port}",
        "ws": f"ws://127.0.0.1:{stack.ws_port}",
        "emulator": f"http://127.0.0.1:{stack.emulator_port}",
        "token": token,
        "user": DEV_USER,
        "pid": os.getpid(),
    }


def aws_env(stack: DevStack) -> dict[str, str]:
    """What the AWS CLI needs to talk to the emulator."""
    return {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{stack.emulator_port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }


def sign_in_link(stack: DevStack, token: str) -> str:
    """A one-time sign-in link to the dashboard (POST /dashboard/links), not `#token=`:
    browsers keep every address they open in their history database, and a used or expired
    code opens nothing."""
    import urllib.request

    request = urllib.request.Request(
        f"http://127.0.0.1:{stack.port}/dashboard/links",
        method="POST",
        headers={"Authorization": f"Bearer {token}"},
    )
    dashboard = f"http://127.0.0.1:{stack.port}/dashboard"
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return dashboard + json.loads(answer.read())["fragment"]
    except (OSError, ValueError, KeyError) as exc:  # the stack runs; the link is a nicety
        return f"{dashboard} (no sign-in link: {exc}; paste $TOKEN there)"


def banner(
    stack: DevStack, token: str, dashboard: str, reloading: bool = False, operator: str = ""
) -> str:
    api = f"http://127.0.0.1:{stack.port}"
    aws = " ".join(f"{k}={v}" for k, v in aws_env(stack).items())
    state = stack.settings.state_dir
    kept = (
        f"  state      {state} (kept across restarts; `make dev-reset` starts empty)\n"
        if state
        else "  state      not kept (LOCAL_DATA_DIR is empty)\n"
    )
    found = (
        f"  (written to {stack.settings.endpoints_file}: `./taskstatus` and the Python\n"
        "   client find the stack and the token there when run in this checkout)\n"
        if stack.settings.endpoints_file
        else ""
    )
    reload_line = (
        "Saving app.py, chalicelib/ or .chalice/config.json reloads the app (RELOAD=0: off).\n"
        if reloading
        else ""
    )
    operator_line = (
        f"  Operator   {operator}\n"
        f"             (the operator's console, as `{DEV_OPERATOR}`: every owner's work)\n"
        if operator
        else ""
    )
    return f"""
taskstatus is running (stage: local)
  Dashboard  {dashboard}
             (signs you in once, within 10 minutes; then paste $TOKEN at /dashboard)
{operator_line}  REST API   {api}
  WebSocket  ws://127.0.0.1:{stack.ws_port}/?token=$TOKEN
  (the management API the app pushes through: http://127.0.0.1:{stack.ws_management_port})
  Lambda     http://127.0.0.1:{stack.lambda_port} (dev only: the Invoke API for 003's `status`)
             aws lambda invoke --endpoint-url http://127.0.0.1:{stack.lambda_port} \\
               --function-name taskstatus-local-status --payload '{{"assemblyId":"..."}}' out.json
             (AWS CLI v2: add --cli-binary-format raw-in-base64-out)
  emulator   http://127.0.0.1:{stack.emulator_port} (moto server)
{kept}{found}
A token for user `{DEV_USER}` (7 days; mint others with `make token NAME=alice`):
  export TOKEN={token}

The AWS CLI against the emulator:
  export {aws}

Try:
  curl -s -X POST {api}/jobs -H "Authorization: Bearer $TOKEN" \\
       -d '{{"type":"demo/sleep","input":{{"seconds":3,"steps":3}}}}'
  curl -s {api}/jobs -H "Authorization: Bearer $TOKEN"
  ./taskstatus submit demo/sleep --input '{{"seconds":3}}' --watch

{reload_line}Ctrl-C stops everything.
"""


def dev_token() -> str:
    from local.token import local_secret, mint_token

    return mint_token(DEV_USER, local_secret(), 7 * 86400)


def operator_token() -> str:
    """A token for the operator's console: OPERATOR_SCOPE (or its default) as its scope."""
    from local.token import local_secret, mint_token

    scope = os.environ.get("OPERATOR_SCOPE", "").strip() or "taskstatus:operator"
    return mint_token(DEV_OPERATOR, local_secret(), 7 * 86400, scope=scope)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("botocore").setLevel(logging.WARNING)
    # The app's boto3 clients are shared by concurrent invocations here (never in Lambda,
    # where a container runs one at a time); a full pool only means a connection is not kept.
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    settings = DevSettings.from_env()
    if "--serve" in argv:  # the reloader's child: its parent runs the emulator
        serve(DevStack(settings, own_emulator=False), reloaded="--reloaded" in argv)
        return
    busy = busy_ports(settings)
    if busy:
        for name in busy:
            port = settings.ports()[name]
            print(f"port {port} is in use: set {name}=... (e.g. {name}={port + 100} make dev)")
        sys.exit(2)
    if "--reset" in argv and settings.state_dir is not None:
        shutil.rmtree(settings.state_dir, ignore_errors=True)
        print(f"starting empty: removed {settings.state_dir}", flush=True)
    from local import reloader

    if not reloader.enabled(argv):
        serve(DevStack(settings))
        return
    supervise(settings)


def _stop_on_signals(stopped: threading.Event, reload: threading.Event | None = None) -> None:
    # Set explicitly: a process started in the background may inherit SIGINT as ignored.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.set())
    if reload is not None:
        signal.signal(signal.SIGUSR1, lambda *_: (reload.set(), stopped.set()))


def serve(stack: DevStack, reloaded: bool = False) -> None:
    """Run the stack until SIGINT or SIGTERM (or SIGUSR1: the reloader's, with a grace)."""
    stopped, reload = threading.Event(), threading.Event()
    _stop_on_signals(stopped, reload)
    try:
        stack.start()
        token = dev_token()
        stack.write_endpoints(token)
        if reloaded:
            print("reloaded: the app runs the new code", flush=True)
        else:
            link = sign_in_link(stack, token)
            operator = sign_in_link(stack, operator_token())
            print(
                banner(stack, token, link, reloading=not stack.own_emulator, operator=operator),
                flush=True,
            )
        while not stopped.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        if not reload.is_set():
            print("stopping taskstatus...", flush=True)
        stack.shutdown(grace_seconds=RELOAD_GRACE_SECONDS if reload.is_set() else 0)
        if not reload.is_set():
            print("stopped.", flush=True)


def supervise(settings: DevSettings) -> None:
    """The emulator here, the stack in a child process that a change of the code restarts."""
    from local.reloader import Supervisor

    stopped = threading.Event()
    _stop_on_signals(stopped)
    state = settings.state_dir
    emulator = start_emulator(settings.emulator_port, state / "emulator.pickle" if state else None)
    try:
        Supervisor(stopped).run()
    finally:
        stop_emulator(emulator)


if __name__ == "__main__":
    main()
