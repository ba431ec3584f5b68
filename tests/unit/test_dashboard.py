"""GET /dashboard: an HTML shell anyone may load, whose every data call needs the token."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.contracts.dashboard.links import LINK_SECONDS, SignInLinks
from chalicelib.settings import get_settings
from tests.conftest import auth, token_for
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


def test_make_dev_prints_a_one_time_sign_in_link_never_the_token_in_an_address():
    from local.dev import DevSettings, DevStack, banner

    link = "http://127.0.0.1:8123/dashboard#code=" + "c" * 43
    text = banner(DevStack(DevSettings(port=8123)), "tok.en.value", link)
    assert f"Dashboard  {link}" in text
    assert "#token=" not in text and "dashboard?" not in text


# -- one-time sign-in links -----------------------------------------------------------------


def new_link(client, headers):
    response = client.http.post("/dashboard/links", headers=headers)
    assert response.status_code == 201, response.json_body
    return response.json_body


def redeem(client, code):
    return client.http.post(
        "/dashboard/sign-in",
        headers={"Content-Type": "application/json"},
        body=json.dumps({"code": code}),
    )


def code_of(link):
    return link["fragment"].removeprefix("#code=")


def test_a_sign_in_link_gives_its_credential_once(client):
    token = token_for("alice")
    link = new_link(client, {"Authorization": f"Bearer {token}"})
    assert link["fragment"].startswith("#code=") and token not in link["fragment"]
    first = redeem(client, code_of(link))
    assert (first.status_code, first.json_body) == (200, {"token": token})
    again = redeem(client, code_of(link))
    assert again.status_code == 404
    assert "used already or has expired" in again.json_body["error"]["message"]


def test_a_link_found_in_a_browsers_history_after_ten_minutes_opens_nothing(client, stack):
    link = new_link(client, auth("alice"))
    later = datetime.now(UTC) + timedelta(seconds=LINK_SECONDS + 1)
    links = SignInLinks(stack.outputs["RecordsTableName"])
    assert links.redeem(code_of(link), later) is None
    assert links.redeem(code_of(link), datetime.now(UTC)) is not None  # refused, not consumed


def test_a_link_expires_with_its_credential(client):
    link = new_link(client, {"Authorization": f"Bearer {token_for('alice', ttl=60)}"})
    expires = datetime.strptime(link["expiresAt"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert expires <= datetime.now(UTC) + timedelta(seconds=60)


def test_the_stored_link_does_not_hold_the_credential_in_the_clear(client, stack):
    token = token_for("alice")
    new_link(client, {"Authorization": f"Bearer {token}"})
    items = stack.ddb.scan(TableName=stack.outputs["RecordsTableName"])["Items"]
    assert token not in json.dumps(items)


def test_a_guessed_code_opens_nothing(client):
    assert redeem(client, "A" * 43).status_code == 404


@pytest.mark.parametrize("body", [{}, {"code": 7}, {"code": "short"}, {"code": "x" * 44}])
def test_a_malformed_code_is_422(client, body):
    response = client.http.post(
        "/dashboard/sign-in", headers={"Content-Type": "application/json"}, body=json.dumps(body)
    )
    assert response.status_code == 422


def test_making_a_link_needs_credentials(client):
    assert client.http.post("/dashboard/links").status_code == 401
