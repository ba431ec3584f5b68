"""A real browser on another origin uses the API: CORS as Chromium enforces it, under `make dev`.

Debian's Chromium (installed by `make install-browser`), driven by Playwright's
Python package; Playwright's own browser builds are never downloaded.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import token_for

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PAGE = b"<!doctype html><html><head><title>front end</title></head><body>app</body></html>"


class StaticSite:
    """The front end's origin: one page on its own address and port."""

    def __init__(self, host: str) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(PAGE)))
                self.end_headers()
                self.wfile.write(PAGE)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.origin = f"http://{host}:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), "Chromium is missing: run `make install-browser`"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS
        )
        yield launched
        launched.close()


@pytest.fixture
def page_on(browser: Any) -> Iterator[Any]:
    sites: list[StaticSite] = []
    contexts: list[Any] = []

    def open_page(host: str) -> Any:
        site = StaticSite(host)
        sites.append(site)
        context = browser.new_context()
        contexts.append(context)
        page = context.new_page()
        page.goto(site.origin + "/")
        return page

    yield open_page
    for context in contexts:
        context.close()
    for site in sites:
        site.close()


# Runs in the page: everything a front end does with a job, through fetch and a WebSocket.
FRONT_END = """
async ({api, ws, token}) => {
  const auth = {"Authorization": `Bearer ${token}`};
  const json = {...auth, "Content-Type": "application/json"};
  const job = {"type": "demo/sleep", "input": {"seconds": 0.6, "steps": 2}};
  const out = {};

  const socket = new WebSocket(`${ws}/?token=${encodeURIComponent(token)}`);
  const pushes = [];
  const finished = new Promise((resolve, reject) => {
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      pushes.push(message);
      if (message.type === "task_status" && message.payload.task_id === out.jobId
          && message.payload.status === "completed") resolve();
    };
    socket.onerror = () => reject(new Error("websocket error"));
    setTimeout(() => reject(new Error("no completed push in 60 s")), 60000);
  });
  await new Promise((resolve, reject) => { socket.onopen = resolve; socket.onclose = reject; });
  const subscribed = new Promise((resolve) => {
    const previous = socket.onmessage;
    socket.onmessage = (event) => { previous(event); resolve(); socket.onmessage = previous; };
  });
  socket.send(JSON.stringify({"action": "subscribe", "operation": "demo/sleep"}));
  await subscribed;

  const submitted = await fetch(`${api}/jobs`, {
    method: "POST", headers: {...json, "Idempotency-Key": "browser-1"}, body: JSON.stringify(job),
  });
  const body = await submitted.json();
  out.jobId = body.jobId;
  out.submit = {
    status: submitted.status, location: submitted.headers.get("Location"),
    etag: submitted.headers.get("ETag"), retryAfter: submitted.headers.get("Retry-After"),
    requestId: submitted.headers.get("X-Request-Id"),
    replayed: submitted.headers.get("Idempotent-Replayed"),
  };

  await finished;
  socket.close();
  out.pushes = pushes.filter((m) => m.type === "task_status" && m.payload.task_id === out.jobId)
                     .map((m) => m.payload.status);

  // Finished, so its ETag is stable: the same read again with If-None-Match is a 304.
  const read = await fetch(`${api}${out.submit.location}`, {headers: auth, cache: "no-store"});
  const etag = read.headers.get("ETag");
  const again = await fetch(`${api}${out.submit.location}`,
                            {headers: {...auth, "If-None-Match": etag}, cache: "no-store"});
  out.read = {status: read.status, etag, conditional: again.status};


  for (let n = 0; n < 2; n++) {
    await fetch(`${api}/jobs`, {method: "POST", headers: json, body: JSON.stringify(job)});
  }
  const first = await fetch(`${api}/task-status?limit=2`, {headers: auth, cache: "no-store"});
  const cursor = first.headers.get("X-Next-Cursor");
  const second = await fetch(`${api}/task-status?limit=2&cursor=${encodeURIComponent(cursor)}`,
                             {headers: auth, cache: "no-store"});
  out.list = {
    first: (await first.json()).map((t) => t.task_id), cursor, link: first.headers.get("Link"),
    second: (await second.json()).map((t) => t.task_id),
  };

  const denied = await fetch(`${api}/jobs`, {cache: "no-store"});
  out.unauthorized = {status: denied.status, body: await denied.json()};
  return out;
}
"""


def test_a_page_on_another_origin_submits_reads_lists_and_follows_a_job(local_stack, page_on):
    page = page_on("127.0.0.1")
    ws = local_stack.ws
    out = page.evaluate(FRONT_END, {"api": local_stack.api, "ws": ws, "token": token_for("pat")})

    submit = out["submit"]
    assert submit["status"] == 202
    assert submit["location"] == f"/jobs/{out['jobId']}"
    assert submit["etag"] and submit["retryAfter"] == "1" and submit["requestId"]
    assert submit["replayed"] == "false"
    assert out["read"]["status"] == 200 and out["read"]["conditional"] == 304
    assert out["pushes"][0] in {"started", "processing"} and out["pushes"][-1] == "completed"
    listed = out["list"]
    assert len(listed["first"]) == 2 and listed["cursor"] and 'rel="next"' in listed["link"]
    assert listed["second"] and not set(listed["first"]) & set(listed["second"])
    # Even an error is readable by the page: the 401 carries the CORS grant too.
    assert out["unauthorized"]["status"] == 401
    assert out["unauthorized"]["body"]["error"]["code"] == "unauthorized"


def test_a_page_on_an_origin_not_allowed_cannot_read_the_api(local_stack, page_on):
    page = page_on("127.0.0.2")  # loopback too, but not in the local stage's CORS_ALLOW_ORIGINS
    outcome = page.evaluate(
        """async ({api, token}) => {
             try {
               await fetch(`${api}/jobs`, {headers: {"Authorization": `Bearer ${token}`}});
               return "read";
             } catch (error) { return "blocked"; }
           }""",
        {"api": local_stack.api, "token": token_for("pat")},
    )
    assert outcome == "blocked"
