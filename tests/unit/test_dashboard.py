"""GET /dashboard: an HTML shell anyone may load, whose every data call needs the token."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

from chalicelib.settings import get_settings
from tests.unit.helpers import submit


@pytest.fixture
def settings_env(monkeypatch):
    """Set environment variables of the app for one test, its settings read again."""

    def set_env(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()

    yield set_env
    monkeypatch.undo()
    get_settings.cache_clear()


def csp(response) -> dict[str, list[str]]:
    policy = response.headers["Content-Security-Policy"]
    return {
        name: values
        for name, *values in (part.split() for part in policy.split(";") if part.strip())
    }


def inline(body: str, tag: str) -> str:
    (text,) = re.findall(rf"<{tag}>(.*?)</{tag}>", body, re.S)
    return text


def sha256_source(text: str) -> str:
    return f"'sha256-{base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()}'"


def test_the_page_is_html_and_needs_no_credentials(client):
    response = client.http.get("/dashboard")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert response.body.decode().startswith("<!doctype html>")


def test_a_bad_token_does_not_stop_the_page_from_loading(client):
    response = client.http.get("/dashboard", headers={"Authorization": "Bearer not-a-token"})
    assert response.status_code == 200


def test_the_page_carries_no_task_of_anyone(client):
    job_id = submit(client).json_body["jobId"]
    assert job_id not in client.http.get("/dashboard").body.decode()


@pytest.mark.parametrize("path", ["/jobs", "/jobs/{id}", "/jobs/{id}/deliveries"])
def test_every_data_call_of_the_page_needs_the_token(client, path):
    job_id = submit(client).json_body["jobId"]
    response = client.http.get(path.format(id=job_id), headers={"Referer": "/dashboard"})
    assert response.status_code == 401


def test_only_the_pages_own_script_and_style_may_run(client):
    response = client.http.get("/dashboard")
    body = response.body.decode()
    policy = csp(response)
    assert policy["default-src"] == ["'none'"]
    assert policy["script-src"] == [sha256_source(inline(body, "script"))]
    assert policy["style-src"] == [sha256_source(inline(body, "style"))]
    assert "'unsafe-inline'" not in response.headers["Content-Security-Policy"]
    assert policy["frame-ancestors"] == ["'none'"] and policy["base-uri"] == ["'none'"]


def test_the_page_has_no_inline_event_handler_and_no_html_sink(client):
    body = client.http.get("/dashboard").body.decode()
    assert not re.search(r"\son[a-z]+\s*=", body.replace(inline(body, "script"), ""))
    script = inline(body, "script")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script


def test_the_page_keeps_the_token_out_of_referrers_and_caches(client):
    response = client.http.get("/dashboard")
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_the_websocket_url_is_the_management_endpoint_as_wss(client):
    # conftest: WS_ENDPOINT_URL=https://local.execute-api.us-east-1.amazonaws.com/local
    response = client.http.get("/dashboard")
    assert '{"wsUrl": "wss://local.execute-api.us-east-1.amazonaws.com/local"}' in (
        response.body.decode()
    )
    assert csp(response)["connect-src"] == [
        "'self'",
        "wss://local.execute-api.us-east-1.amazonaws.com",
    ]


def test_ws_public_url_wins_over_the_management_endpoint(client, settings_env):
    settings_env(WS_PUBLIC_URL="ws://127.0.0.1:9101/")
    response = client.http.get("/dashboard")
    assert '{"wsUrl": "ws://127.0.0.1:9101"}' in response.body.decode()
    assert csp(response)["connect-src"] == ["'self'", "ws://127.0.0.1:9101"]


def test_a_websocket_url_cannot_break_out_of_the_config_block(client, settings_env):
    settings_env(WS_PUBLIC_URL="wss://h.example/</script><script>alert(1)</script>")
    body = client.http.get("/dashboard").body.decode()
    assert body.count("</script>") == 2  # the config block's and the script's own
    assert "<script>alert(1)" not in body


def test_a_websocket_url_that_is_not_one_is_left_out(client, settings_env):
    settings_env(WS_PUBLIC_URL="javascript:alert(1)")
    response = client.http.get("/dashboard")
    assert '{"wsUrl": ""}' in response.body.decode()
    assert csp(response)["connect-src"] == ["'self'"]


def test_make_dev_prints_the_dashboard_with_the_token_in_the_fragment():
    from local.dev import DevSettings, DevStack, banner

    text = banner(DevStack(DevSettings(port=8123)), "tok.en.value")
    assert "http://127.0.0.1:8123/dashboard#token=tok.en.value" in text
    assert "dashboard?" not in text
