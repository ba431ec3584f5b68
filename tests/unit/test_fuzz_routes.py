"""Every REST route, fed the kinds of text that once answered 500: never a 5xx, and a refusal
stores nothing.

The routes are read from the Chalice app itself, so a new route is fuzzed without editing
this file. For each one, every path parameter, every query parameter the OpenAPI document
declares for it (and `cursor`), and every string field of its request body (walked from the
body's JSON schema, nested objects and arrays included) is given each hostile value in turn,
the rest of the request being valid.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

import app as app_module
from chalicelib.contracts.openapi import OPERATIONS, document
from tests.conftest import auth
from tests.unit.helpers import sleep_job, submit

HOSTILE = {
    "non-ascii": "ü.ü中",  # cursor-shaped: a payload and a MAC, neither ASCII
    "lone-surrogate": "\ud800",
    "year-1-east": "0001-01-01T00:00:00+01:00",  # year 0 in UTC
    "year-9999-west": "9999-12-31T23:59:59-01:00",  # year 10000 in UTC
    "year-1-utc": "0001-01-01T00:00:00Z",
    "year-9999-utc": "9999-12-31T23:59:59.999999Z",
}

# A valid body for each route that takes one, so a hostile field is read past the others.
VALID_BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/jobs"): sleep_job(),
    ("POST", "/jobs/batch"): {"jobs": [sleep_job()]},
    ("POST", "/submit"): {**sleep_job(), "metadata": {"note": "x"}},  # no one schema
    ("POST", "/uploads"): {"filename": "a.png", "contentType": "image/png", "size": 1},
    ("POST", "/jobs/redrive"): {"status": "failed"},
    ("POST", "/jobs/cancel"): {},
    ("POST", "/api-keys"): {"name": "fuzz", "scopes": ["jobs:read"]},
}
FREE_KEY = "fuzzed"
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
MAX_SCHEMA_DEPTH = 4
Path = tuple[str | int, ...]


def routes() -> list[tuple[str, str, list[str]]]:
    """(method, path, path parameter names) of every REST route but the CORS preflights."""
    return sorted(
        (method, path, list(entry.view_args))
        for path, methods in app_module.app.routes.items()
        for method, entry in methods.items()
        if method != "OPTIONS"
    )


def _operation(method: str, path: str) -> Any:
    return next((op for op in OPERATIONS if (op.method, op.path) == (method, path)), None)


def query_names(method: str, path: str) -> list[str]:
    operation = _operation(method, path)
    declared = [p.name for p in operation.params if p.where == "query"] if operation else []
    return sorted({*declared, "cursor"})


def _resolve(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = defs[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _schema_paths(schema: dict[str, Any], defs: dict[str, Any], at: Path) -> Iterator[Path]:
    """Where a value may go in a body of this schema: every property, at every depth."""
    schema = _resolve(schema, defs)
    if len(at) > MAX_SCHEMA_DEPTH:
        return
    for option in schema.get("anyOf", []) + schema.get("oneOf", []) + schema.get("allOf", []):
        yield from _schema_paths(option, defs, at)
    for name, child in schema.get("properties", {}).items():
        yield (*at, name)
        yield from _schema_paths(child, defs, (*at, name))
    if schema.get("additionalProperties") not in (None, False):
        yield (*at, FREE_KEY)  # an object of any keys (metadata): the text is stored as sent
    if isinstance(schema.get("items"), dict):
        yield from _schema_paths(schema["items"], defs, (*at, 0))


def _leaf_paths(value: Any, at: Path = ()) -> Iterator[Path]:
    """Every string already in a valid body (for routes whose body has no one schema)."""
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _leaf_paths(child, (*at, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from _leaf_paths(child, (*at, i))
    elif isinstance(value, str):
        yield at


def body_paths(method: str, path: str) -> list[Path]:
    base = VALID_BODIES.get((method, path), {})
    found = set(_leaf_paths(base))
    operation = _operation(method, path)
    if operation is not None and operation.request is not None:
        spec = document()
        schema = spec["paths"][path][method.lower()]["requestBody"]["content"]
        found |= set(_schema_paths(schema["application/json"]["schema"], _defs(spec), ()))
    return sorted(found, key=lambda p: [str(part) for part in p])


def _defs(spec: dict[str, Any]) -> dict[str, Any]:
    return spec["components"]["schemas"]


def with_value(body: Any, at: Path, value: str) -> Any:
    """`body` with `value` at `at`, making the objects and arrays on the way."""
    body = copy.deepcopy(body)
    node = body
    for step, following in itertools.pairwise(at):
        child = node[step] if _has(node, step) else None
        if not isinstance(child, dict | list) or isinstance(following, int) != isinstance(
            child, list
        ):
            child = [{}] if isinstance(following, int) else {}
            _put(node, step, child)
        node = child
    _put(node, at[-1], value)
    return body


def _has(node: Any, step: str | int) -> bool:
    return step in node if isinstance(node, dict) else step < len(node)


def _put(node: Any, step: str | int, value: Any) -> None:
    if isinstance(node, list) and step >= len(node):
        node.append(value)
    else:
        node[step] = value


def in_url(value: str) -> str:
    """`value` as a URL part the test client passes through whole: ASCII percent-encoded,
    anything else as it is (a lone surrogate has no UTF-8 bytes to percent-encode)."""
    return "".join(quote(c, safe="") if c.isascii() else c for c in value)


def requests(method: str, path: str, params: list[str], hostile: str, job_id: str) -> Iterator:
    """(what is hostile, url, body) for every place of this route a value goes."""
    base_body = VALID_BODIES.get((method, path), {}) if method in BODY_METHODS else None

    def url(values: dict[str, str], query: str = "") -> str:
        concrete = path
        for name in params:
            concrete = concrete.replace("{" + name + "}", in_url(values.get(name, job_id)))
        return concrete + query

    for name in params:
        yield f"path {name}", url({name: hostile}), base_body
    for name in query_names(method, path):
        yield f"query {name}", url({}, f"?{name}={in_url(hostile)}"), base_body
    if base_body is not None:
        for at in body_paths(method, path):
            place = "body " + ".".join(str(step) for step in at)
            yield place, url({}), with_value(base_body, at, hostile)


@pytest.mark.parametrize("hostile", HOSTILE.values(), ids=HOSTILE.keys())
@pytest.mark.parametrize(
    ("method", "path", "params"), routes(), ids=[f"{m} {p}" for m, p, _ in routes()]
)
def test_no_route_answers_5xx_or_stores_a_refused_request(
    client, stack, method, path, params, hostile
):
    job_id = submit(client).json_body["jobId"]
    stack.run_stream()
    failures = []
    for place, url, body in requests(method, path, params, hostile, job_id):
        tasks = stack.task_count()
        payload = json.dumps(body) if body is not None else None
        response = client.http.request(method, url, headers=auth(), body=payload)
        if response.status_code >= 500:
            failures.append(f"{place}: {response.status_code} {response.body[:200]!r}")
        elif response.status_code >= 400 and stack.task_count() != tasks:
            failures.append(f"{place}: refused with {response.status_code} but stored a task")
    assert failures == []


def test_the_fuzz_reaches_every_route_and_nested_body_fields():
    """The walk above is what makes the fuzz worth having: it must find these."""
    assert {(m, p) for m, p, _ in routes()} >= {("GET", "/jobs"), ("POST", "/jobs/batch")}
    assert ("jobs", 0, "runAt") in body_paths("POST", "/jobs/batch")
    assert ("webhook", "url") in body_paths("POST", "/jobs")
    assert ("metadata", FREE_KEY) in body_paths("POST", "/jobs")
    assert ("metadata", "note") in body_paths("POST", "/submit")
    assert {("since",), ("until",), ("cursor",)} <= set(body_paths("POST", "/jobs/redrive"))
    assert ("expiresAt",) in body_paths("POST", "/api-keys")
