"""CORS: every route answers its preflight, every answer (errors too) carries the grant,
and only to the origins of CORS_ALLOW_ORIGINS (the unit tests run the local stage's list)."""

import pytest

from chalicelib.edge.cors import ALLOWED_HEADERS, EXPOSED_HEADERS, allowed_origin
from chalicelib.settings import get_settings
from tests.conftest import auth
from tests.unit.helpers import get, submit

ORIGIN = "http://localhost:5173"
REQUESTED_HEADERS = "authorization, content-type, idempotency-key, x-api-key, if-none-match"
EXPOSED = {"ETag", "Location", "Retry-After", "X-Request-Id", "X-Next-Cursor", "Link"}


def preflight(client, path, origin=ORIGIN, method="GET"):
    return client.http.request(
        "OPTIONS",
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": REQUESTED_HEADERS,
        },
    )


def concrete(path):
    return (
        path.replace("{jobId}", "0f8b7d8e-0000-4000-8000-000000000000")
        .replace("{task_id}", "0f8b7d8e-0000-4000-8000-000000000000")
        .replace("{assemblyId}", "0f8b7d8e-0000-4000-8000-000000000000")
        .replace("{keyId}", "ak_" + "0" * 32)
    )


def assert_granted(response, origin=ORIGIN):
    assert response.headers["Access-Control-Allow-Origin"] == origin
    exposed = {h.strip() for h in response.headers["Access-Control-Expose-Headers"].split(",")}
    assert EXPOSED | {"Idempotent-Replayed"} <= exposed
    assert "Origin" in response.headers["Vary"]


def assert_no_grant(response):
    assert not any(name.lower().startswith("access-control-") for name in response.headers)


def test_every_route_answers_its_preflight_for_an_allowed_origin(client, stack):
    for path, views in stack.app.app.routes.items():
        methods = sorted(set(views) - {"OPTIONS"})
        response = preflight(client, concrete(path), method=methods[0])
        assert response.status_code == 204, path
        assert response.headers["Access-Control-Allow-Origin"] == ORIGIN, path
        allowed_methods = {
            m.strip() for m in response.headers["Access-Control-Allow-Methods"].split(",")
        }
        assert set(methods) <= allowed_methods, path
        allowed_headers = {
            h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")
        }
        assert set(REQUESTED_HEADERS.split(", ")) <= allowed_headers, path
        assert int(response.headers["Access-Control-Max-Age"]) > 0, path


def test_a_preflight_from_a_disallowed_origin_gets_no_cors_headers(client):
    response = preflight(client, "/jobs", origin="https://evil.example", method="POST")
    assert response.status_code == 204
    assert_no_grant(response)
    assert response.headers["Allow"] == "GET, POST, OPTIONS"
    assert response.headers["Vary"] == "Origin"  # the answer depends on it: caches must know


def test_a_preflight_grants_exactly_the_routes_methods_headers_and_max_age(client):
    response = preflight(client, "/jobs", method="POST")
    assert response.headers["Allow"] == "GET, POST, OPTIONS"
    assert response.headers["Access-Control-Allow-Methods"] == "GET, POST, OPTIONS"
    assert response.headers["Access-Control-Allow-Headers"] == ", ".join(ALLOWED_HEADERS)
    assert response.headers["Access-Control-Max-Age"] == str(get_settings().cors_max_age_seconds)
    assert response.headers["Vary"] == "Origin"
    assert not response.body


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "http://localhost.evil.example:5173",
        "https://localhost:5173",  # another scheme than the pattern's
        "null",
        "http://127.0.0.1.nip.io:8080",
    ],
)
def test_a_disallowed_origin_gets_no_cors_headers(client, origin):
    response = client.http.get("/jobs", headers={**auth("alice"), "Origin": origin})
    assert response.status_code == 200
    assert_no_grant(response)


def test_a_response_to_an_allowed_origin_exposes_the_headers_clients_read(client):
    response = submit(client, headers={"Origin": ORIGIN, "Idempotency-Key": "cors-1"})
    assert response.status_code == 202
    assert_granted(response)


def test_a_page_on_an_allowed_origin_can_read_its_submit_rate(client, stack, container):
    from chalicelib.flow import parse_submit_rate

    container(submit_rate=parse_submit_rate("5/min"))
    response = submit(client, headers={"Origin": ORIGIN})
    assert response.headers["RateLimit-Remaining"] == "4"
    exposed = {h.strip() for h in response.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Policy"} <= exposed


def test_a_not_modified_answer_carries_the_grant(client):
    job = submit(client).json_body
    first = get(client, f"/jobs/{job['jobId']}", headers={"Origin": ORIGIN})
    again = get(
        client,
        f"/jobs/{job['jobId']}",
        headers={"Origin": ORIGIN, "If-None-Match": first.headers["ETag"]},
    )
    assert again.status_code == 304
    assert_granted(again)


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/jobs", {}, 401),
        ("/jobs/0f8b7d8e-0000-4000-8000-000000000000", auth("alice"), 404),
        ("/jobs/not~a~uuid", auth("alice"), 400),
        ("/jobs?limit=0", auth("alice"), 400),
        ("/task/0f8b7d8e-0000-4000-8000-000000000000", {}, 401),
        ("/nowhere-at-all/x", auth("alice"), 403),
    ],
)
def test_errors_carry_the_grant(client, path, headers, status):
    response = client.http.get(path, headers={**headers, "Origin": ORIGIN})
    assert response.status_code == status
    if status == 403:
        # An unknown path never reaches the app: API Gateway (and chalice local) answer it.
        return
    assert_granted(response)


def test_a_validation_error_carries_the_grant(client):
    response = submit(client, body={"type": "no/such-type"}, headers={"Origin": ORIGIN})
    assert response.status_code == 422
    assert_granted(response)


def test_no_configured_origin_means_no_cors_headers(client, container):
    container(cors_allow_origins=())
    assert_no_grant(client.http.get("/jobs", headers={**auth("alice"), "Origin": ORIGIN}))
    assert_no_grant(preflight(client, "/jobs"))


def test_an_exact_origin_allows_that_origin_only():
    patterns = ["https://app.example.com"]
    assert allowed_origin("https://app.example.com", patterns) == "https://app.example.com"
    assert allowed_origin("https://app.example.com:8443", patterns) is None
    assert allowed_origin("https://other.example.com", patterns) is None


def test_a_port_pattern_allows_any_port_of_that_scheme_and_host():
    patterns = ["http://localhost:*"]
    assert allowed_origin("http://localhost:3000", patterns) == "http://localhost:3000"
    assert allowed_origin("http://localhost", patterns) == "http://localhost"
    assert allowed_origin("https://localhost:3000", patterns) is None
    assert allowed_origin("http://localhostx:3000", patterns) is None
    assert allowed_origin("http://evil.localhost:3000", patterns) is None


def test_a_star_allows_every_origin_without_credentials():
    assert allowed_origin("https://anyone.example", ["*"]) == "*"


def test_the_header_lists_name_what_browser_clients_send_and_read():
    assert {
        "Authorization",
        "Content-Type",
        "Idempotency-Key",
        "X-API-Key",
        "If-None-Match",
    } <= set(ALLOWED_HEADERS)
    assert EXPOSED | {"Idempotent-Replayed"} <= set(EXPOSED_HEADERS)
