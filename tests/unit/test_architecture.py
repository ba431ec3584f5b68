"""What import-linter cannot see: which module reads the settings, which wraps the handlers."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _calls(path: Path, name: str) -> list[int]:
    tree = ast.parse(path.read_text())
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", getattr(node.func, "attr", None)) == name
    ]


def test_only_the_composition_root_reads_the_settings():
    callers = {
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "chalicelib").rglob("*.py"))
        if _calls(path, "get_settings")
    }
    assert callers == {"chalicelib/bootstrap.py"}


# One event of each kind, for every function of the app that is not a REST route.
def _events(stack):
    from local.events import scheduled_event, sqs_event, stream_event, ws_event
    from tests.conftest import token_for

    connect = {"queryStringParameters": {"token": token_for("alice")}}
    return {
        "worker": sqs_event([], stack.queue_url),
        "dead_letters": sqs_event([], stack.dlq_url),
        "webhooks": sqs_event([], stack.webhooks_url),
        "stream_failures": sqs_event([], stack.stream_failures_url),
        "stream": stream_event([], "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/s"),
        "pushes": stream_event([], "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/s"),
        "reaper": scheduled_event("reaper"),
        "status": {"assemblyId": "0" * 32},
        "ws_connect": ws_event("$connect", "logged", 8001, **connect),
        "ws_message": ws_event("$default", "logged", 8001, body='{"action": "ping"}'),
        "ws_disconnect": ws_event("$disconnect", "logged", 8001),
    }


def _functions_that_are_not_rest_routes(app) -> set[str]:
    configs = [*app.event_sources, *app.pure_lambda_functions, *app.websocket_handlers.values()]
    return {config.handler_string.removeprefix("app.") for config in configs}


def test_every_function_that_is_not_a_rest_route_logs_with_its_lambda_request_id(
    stack, monkeypatch, capsys
):
    """Each handler's lines carry the id of the invocation that ran it: the logging wrapper
    is Chalice middleware for every event type, so no handler can be left without it."""
    import json
    import logging

    from chalicelib import bootstrap
    from local.events import LambdaContext

    events = _events(stack)
    assert set(events) == _functions_that_are_not_rest_routes(stack.app.app)
    real = bootstrap.container

    def logging_container():
        logging.getLogger("taskstatus_svc.test").info("handler started")
        return real()

    monkeypatch.setattr(bootstrap, "container", logging_container)
    for name, event in events.items():
        context = LambdaContext(name)
        capsys.readouterr()
        getattr(stack.app, name)(event, context)
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
        started = [line for line in lines if line.get("message") == "handler started"]
        assert started, name
        assert {line["request_id"] for line in started} == {context.aws_request_id}, name


def test_chalice_package_s_policy_analyzer_reads_app_py():
    """`chalice package` analyses app.py to write the IAM policy and stops on what it cannot
    read (an annotated local such as `x: list[str] = []`): found here in a second, not minutes
    into the package build."""
    from chalice.analyzer import get_client_calls_for_app

    from tests.conftest import ROOT

    get_client_calls_for_app((ROOT / "app.py").read_text())
