"""The dashboard in a real browser (Debian's Chromium, driven by Playwright) under `make dev`.

Screenshots go to build/test-artifacts/dashboard/ (ignored by git, like all of build/).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import token_for
from tests.e2e import HTTP_TIMEOUT
from tests.e2e.test_browser_e2e import CHROMIUM, LAUNCH_ARGS
from tests.receiver import Receiver

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "build" / "test-artifacts" / "dashboard"
# How long a wait for something that must happen may take: it returns as soon as it happens,
# and `make test` runs these beside the CPU-bound unit tests on 2 cores (a push took over
# 20 s at load 17).
WAIT_MS = 60000

# Runs before the page's own script: keeps every WebSocket the page opens, and can make the
# newest one deaf (its pushes are dropped), as a connection that silently died would be, or
# hold its pushes back (`__hold`) until `__release()` hands them over, in order, as a slow
# network would.
SOCKET_SPY = """
(() => {
  const Real = window.WebSocket;
  window.__sockets = [];
  window.__deaf = false;
  window.__hold = false;
  window.__held = [];
  window.__release = () => {
    window.__hold = false;
    for (const [handler, event] of window.__held.splice(0)) handler(event);
  };
  window.WebSocket = class extends Real {
    constructor(...args) {
      super(...args);
      window.__sockets.push(this);
      this.addEventListener("message", (event) => {
        if (window.__deaf) event.stopImmediatePropagation();
      });
    }
    set onmessage(handler) {
      this.addEventListener("message", (event) => {
        if (window.__deaf) return;
        if (window.__hold) window.__held.push([handler, event]);
        else handler(event);
      });
    }
  };
})();
"""


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), "Chromium is missing: run `make install-browser`"
    with sync_playwright() as running:
        yield running


@pytest.fixture(scope="module")
def browser(playwright) -> Iterator[Any]:
    launched = playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS
    )
    yield launched
    launched.close()


class Dashboard:
    """A signed-in dashboard page, and every console error and page error it had."""

    def __init__(self, browser: Any, stack: Any, user: str) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.context.add_init_script(SOCKET_SPY)
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.page.on(
            "console",
            lambda m: self.problems.append(f"console: {m.text}") if m.type == "error" else None,
        )
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.open_requests: set[Any] = set()
        self.page.on("request", lambda r: self.open_requests.add(r))
        self.page.on("requestfinished", lambda r: self.open_requests.discard(r))
        self.page.on("requestfailed", lambda r: self.open_requests.discard(r))
        self.stack = stack
        self.user = user
        self.token = token_for(user)
        self.asked: list[str] = []
        self.page.once("dialog", self._accept)  # "This link signs you in (...). Continue?"
        self.page.goto(f"{stack.api}/dashboard#token={self.token}")
        self.connection().wait_for(state="visible")
        self.expect_text(self.connection(), "Live")

    def _accept(self, dialog: Any) -> None:
        self.asked.append(dialog.message)
        dialog.accept()

    def connection(self) -> Any:
        return self.page.locator("#connection")

    def row(self, job_id: str) -> Any:
        return self.page.locator(f'#task-rows tr[data-id="{job_id}"]')

    def expect_text(self, locator: Any, text: str) -> None:
        from playwright.sync_api import expect

        expect(locator).to_have_text(text, timeout=WAIT_MS)

    def expect_status(self, job_id: str, status: str) -> None:
        self.expect_text(self.row(job_id).locator(".badge"), status)

    def submit(self, job: dict) -> str:
        return self.stack.submit(job, user=self.user)["jobId"]

    def settle(self) -> None:
        """Until every request the page has made is answered: a deaf page then learns nothing
        more (a push heard before it went deaf may have started a read)."""
        _wait_for(self.page, lambda: not self.open_requests, "the page's requests to end")

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=False)
        return path

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def dashboard(browser, local_stack, request) -> Iterator[Dashboard]:
    board = Dashboard(browser, local_stack, f"dash-{request.node.name[-40:]}")
    yield board
    board.close()


def test_the_token_leaves_the_address_bar_for_session_storage(dashboard):
    page = dashboard.page
    assert "token" not in page.url
    assert page.evaluate("sessionStorage.getItem('taskstatus.token')") == dashboard.token
    assert dashboard.problems == []


def history_database_urls(profile: Path) -> list[str]:
    """Every address in Chromium's history database (`History`, SQLite) of a closed profile."""
    connection = sqlite3.connect(profile / "Default" / "History")
    try:
        return [row[0] for row in connection.execute("SELECT url FROM urls")]
    finally:
        connection.close()


def test_a_sign_in_link_leaves_no_working_credential_in_the_browsers_history(
    playwright, local_stack, tmp_path
):
    """The attack: someone who reads the browser's history database later (a shared machine,
    a synced profile, a backup) opens the sign-in link they find there. `#token=` links put
    the token itself there, whatever the page does once it runs; `make dev` prints a
    one-time `#code=` link instead."""
    token = token_for("history-reader-victim")
    fragment = requests.post(
        f"{local_stack.api}/dashboard/links",
        headers={"Authorization": f"Bearer {token}"},
        timeout=HTTP_TIMEOUT,
    ).json()["fragment"]
    profile = tmp_path / "profile"
    context = playwright.chromium.launch_persistent_context(
        str(profile), executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS
    )
    try:
        page = context.new_page()
        page.once("dialog", lambda dialog: dialog.accept())
        page.goto(f"{local_stack.api}/dashboard{fragment}")
        page.locator("#connection").wait_for(state="visible", timeout=WAIT_MS)
        assert page.evaluate("location.hash") == ""
        # the code is redeemed by a request of the page's: wait for its answer to be kept
        page.wait_for_function(
            "token => sessionStorage.getItem('taskstatus.token') === token",
            arg=token,
            timeout=WAIT_MS,
        )
    finally:
        context.close()  # Chromium writes its history database out
    recorded = history_database_urls(profile)
    assert any(fragment in url for url in recorded)  # the browser did record the link
    assert not any(token in url for url in recorded)
    found = next(url for url in recorded if fragment in url).split("#code=", 1)[1]
    replay = requests.post(
        f"{local_stack.api}/dashboard/sign-in", json={"code": found}, timeout=HTTP_TIMEOUT
    )
    assert replay.status_code == 404
    assert "token" not in replay.json()


def test_a_used_sign_in_link_says_so_on_the_sign_in_form(browser, local_stack):
    fragment = requests.post(
        f"{local_stack.api}/dashboard/links",
        headers=local_stack.headers("used-link"),
        timeout=HTTP_TIMEOUT,
    ).json()["fragment"]
    code = fragment.split("#code=", 1)[1]
    assert (
        requests.post(
            f"{local_stack.api}/dashboard/sign-in", json={"code": code}, timeout=HTTP_TIMEOUT
        )
    ).status_code == 200
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{local_stack.api}/dashboard{fragment}")
        page.locator("#signin").wait_for(state="visible", timeout=WAIT_MS)
        expect_error = page.locator("#signin-error")
        from playwright.sync_api import expect

        expect(expect_error).to_contain_text("used already or has expired", timeout=WAIT_MS)
        assert page.evaluate("location.hash") == ""
    finally:
        context.close()


def test_a_job_submitted_from_the_page_progresses_live_to_completed(dashboard):
    page = dashboard.page
    # Company for the screenshot (README's): a finished job and a failed one.
    done = dashboard.submit({"type": "demo/sleep", "input": {"seconds": 0.2, "steps": 2}})
    failed = dashboard.submit({"type": "demo/sleep", "input": {"seconds": 0.2, "fail_at": 1}})
    dashboard.expect_status(done, "completed")
    dashboard.expect_status(failed, "failed")
    page.fill("#new-type", "demo/sleep")
    # Long enough to be seen running: the page shows the job as of its last read, and on a
    # busy machine pushes can trail a short run's end (seen: submitted, then completed).
    page.fill("#new-input", '{"seconds": 15, "steps": 5}')
    page.click("#new-form button[type=submit]")
    dashboard.expect_text(page.locator("#new-outcome"), _starts_with("Submitted "))
    job_id = page.locator("#new-outcome").inner_text().removeprefix("Submitted ").strip()
    row = dashboard.row(job_id)
    dashboard.expect_status(job_id, "processing")
    assert float(row.locator("progress").get_attribute("max") or 0) == 5
    dashboard.expect_text(row.locator(".progress-text"), _starts_with(""))
    dashboard.expect_text(dashboard.row(job_id).locator(".badge"), "processing")
    dashboard.screenshot("dashboard")  # docs/dashboard.png is a copy of this one
    dashboard.expect_status(job_id, "completed")
    assert row.locator("progress").evaluate("p => p.value === p.max")
    assert "step 5 of 5" in row.locator(".progress-text").inner_text()
    assert dashboard.problems == []


def test_a_job_is_cancelled_from_its_detail_view_after_a_confirmation(dashboard):
    page = dashboard.page
    job_id = dashboard.submit({"type": "demo/sleep", "input": {"seconds": 60, "steps": 60}})
    dashboard.expect_status(job_id, "processing")  # appeared without a reload, pushed
    dashboard.row(job_id).get_by_role("button").click()
    detail = page.locator("#detail")
    dashboard.expect_text(detail.locator("#d-id"), job_id)
    page.click("#act-cancel")
    page.locator("#confirm").wait_for(state="visible")
    page.click("#confirm-no")  # said no: nothing happens
    assert dashboard.stack.get(job_id, user=dashboard.user)["status"] == "processing"
    page.click("#act-cancel")
    page.click("#confirm-yes")
    dashboard.expect_text(detail.locator("#d-outcome"), "Cancelled: the task is cancelled.")
    dashboard.expect_text(detail.locator("#d-status"), "cancelled")
    assert dashboard.stack.get(job_id, user=dashboard.user)["status"] == "cancelled"
    timeline = detail.locator("#d-timeline li .badge")
    dashboard.expect_text(timeline.last, "cancelled")
    assert timeline.count() >= 2
    assert page.locator("#act-cancel").is_disabled()
    dashboard.screenshot("detail")
    page.keyboard.press("Escape")
    dashboard.expect_status(job_id, "cancelled")
    assert dashboard.problems == []


def test_a_failed_job_is_retried_from_its_detail_view_and_its_history_shows_both_runs(dashboard):
    page = dashboard.page
    job_id = dashboard.submit({"type": "demo/sleep", "input": {"seconds": 0.2, "fail_at": 1}})
    dashboard.expect_status(job_id, "failed")
    dashboard.row(job_id).get_by_role("button").click()
    detail = page.locator("#detail")
    dashboard.expect_text(detail.locator("#d-status"), "failed")
    assert detail.locator("#d-timeline-note").inner_text() == ""  # the server's history
    history = detail.locator("#d-timeline li .badge")
    dashboard.expect_text(history.last, "failed")
    first_run = history.all_inner_texts()
    assert first_run[0] == "submitted"
    assert "demo/sleep failed at step 1" in detail.locator("#d-timeline").inner_text()
    assert "by worker" in detail.locator("#d-timeline").inner_text()
    assert page.locator("#act-retry").is_enabled()
    page.click("#act-retry")
    page.click("#confirm-yes")
    dashboard.expect_text(detail.locator("#d-outcome"), "Retry accepted: the task is queued again.")
    # It runs again, fails again (fail_at), and the history has both runs, in order.
    page.wait_for_function(
        "n => document.querySelectorAll('#d-timeline li').length > n",
        arg=len(first_run) + 1,
        timeout=WAIT_MS,
    )
    dashboard.expect_text(history.last, "failed")
    both = history.all_inner_texts()
    assert both[: len(first_run)] == first_run
    assert both[len(first_run)] == "submitted" and both.count("failed") == 2
    assert dashboard.stack.get(job_id, user=dashboard.user)["retries"] == 1
    dashboard.screenshot("retried")
    assert dashboard.problems == []


def test_the_timeline_shows_a_change_whose_history_entry_was_written_after_the_page_read_it(
    dashboard,
):
    """The table's stream writes a version's history entry just after the job, and pushes the
    version just after that. The page's read of the history after an action can come before
    the entry, and the push that follows it carries a version the page has already (from the
    action's answer): the timeline must be read again all the same. Here the read comes too
    early on purpose: it gets the history as it was before the cancel, and the pushes wait
    until the stream has written the entry."""
    page = dashboard.page
    job_id = dashboard.submit({"type": "demo/sleep", "input": {"seconds": 60, "steps": 60}})
    dashboard.expect_status(job_id, "processing")
    dashboard.row(job_id).get_by_role("button").click()
    timeline = page.locator("#d-timeline li .badge")
    dashboard.expect_text(timeline.last, "processing")
    page.evaluate("window.__hold = true")
    before_the_cancel = _history(dashboard, job_id)
    reads: list[str] = []
    cancels: list[int] = []
    page.on(
        "response", lambda r: cancels.append(len(reads)) if r.request.method == "DELETE" else None
    )

    def too_early(route: Any) -> None:
        reads.append(route.request.url)
        route.fulfill(json=before_the_cancel)

    events = f"**/jobs/{job_id}/events*"
    page.route(events, too_early)
    page.click("#act-cancel")
    page.click("#confirm-yes")
    dashboard.expect_text(page.locator("#d-status"), "cancelled")
    _wait_for(page, lambda: cancels and len(reads) > cancels[0], "the read after the cancel")
    page.unroute(events)
    _wait_for(
        page,
        lambda: _history(dashboard, job_id)["events"][-1]["status"] == "cancelled",
        "the stream's entry of the cancel",
    )
    assert timeline.last.inner_text() == "processing"  # what the early read said
    page.evaluate("window.__release()")
    dashboard.expect_text(timeline.last, "cancelled")
    assert dashboard.problems == []


def test_webhook_deliveries_show_their_responses_and_one_is_sent_again(dashboard):
    page = dashboard.page
    receiver = Receiver([503, 200])  # the first attempt is refused, the retry delivered
    try:
        job_id = dashboard.submit(
            {"type": "demo/sleep", "input": {"seconds": 0}, "webhook": {"url": receiver.url}}
        )
        dashboard.expect_status(job_id, "completed")
        assert receiver.arrived.wait(30)
        dashboard.row(job_id).get_by_role("button").click()
        deliveries = page.locator("#d-deliveries tr")
        dashboard.expect_text(deliveries.first, _containing("HTTP 503"))
        assert "retrying" in deliveries.first.inner_text()
        page.click("#act-redeliver")
        page.click("#confirm-yes")
        dashboard.expect_text(page.locator("#d-outcome"), _starts_with("Webhook queued again"))
        again = page.locator("#d-deliveries tr", has_text="(sent again)")
        again.wait_for(timeout=WAIT_MS)
        assert "HTTP 200" in again.inner_text()
        assert len(receiver.deliveries) >= 2
    finally:
        receiver.close()
    assert dashboard.problems == []


def test_a_click_anywhere_on_a_row_opens_its_task(dashboard):
    page = dashboard.page
    job_id = dashboard.submit({"type": "demo/sleep", "input": {"seconds": 0}})
    dashboard.expect_status(job_id, "completed")
    dashboard.row(job_id).locator(".type").click()  # the type cell, not the id's button
    dashboard.expect_text(page.locator("#detail #d-id"), job_id)
    assert dashboard.problems == []


def test_a_job_without_a_webhook_offers_none_to_send_again(dashboard):
    page = dashboard.page
    job_id = dashboard.submit({"type": "demo/sleep", "input": {"seconds": 0}})
    dashboard.expect_status(job_id, "completed")
    dashboard.row(job_id).get_by_role("button").click()
    dashboard.expect_text(page.locator("#detail #d-id"), job_id)
    assert page.locator("#act-redeliver").is_hidden()
    page.locator("#act-retry").wait_for(state="visible", timeout=WAIT_MS)  # still offered
    assert dashboard.problems == []


def test_the_status_filter_lists_only_that_status(dashboard):
    page = dashboard.page
    done = dashboard.submit({"type": "demo/sleep", "input": {"seconds": 0}})
    running = dashboard.submit({"type": "demo/sleep", "input": {"seconds": 60, "steps": 60}})
    dashboard.expect_status(done, "completed")
    dashboard.expect_status(running, "processing")
    page.select_option("#filter-status", "completed")
    # the list is read again for the filter: the old rows go first, then the new ones come
    dashboard.row(running).wait_for(state="detached", timeout=WAIT_MS)
    dashboard.row(done).wait_for(state="visible", timeout=WAIT_MS)
    statuses = page.locator("#task-rows .badge").all_inner_texts()
    assert statuses and set(statuses) == {"completed"}
    page.select_option("#filter-status", "processing")
    dashboard.row(done).wait_for(state="detached", timeout=WAIT_MS)
    dashboard.row(running).wait_for(state="visible", timeout=WAIT_MS)
    requests.delete(
        f"{dashboard.stack.api}/jobs/{running}",
        headers=dashboard.stack.headers(dashboard.user),
        timeout=HTTP_TIMEOUT,
    )
    dashboard.row(running).wait_for(state="detached", timeout=WAIT_MS)  # moved out, live
    assert dashboard.problems == []


def test_changes_missed_while_the_socket_was_down_arrive_after_the_reconnect(dashboard):
    page = dashboard.page
    # A task that changes only when the test says so: nothing the page has asked for before
    # it went deaf can show the change (a task that finishes by itself could be in the
    # answer of a read a slow machine served late).
    known = dashboard.submit({"type": "demo/sleep", "input": {"seconds": 60, "steps": 60}})
    dashboard.expect_status(known, "processing")
    page.evaluate("window.__deaf = true")  # from now on the page hears nothing
    dashboard.settle()
    cancelled = requests.delete(
        f"{dashboard.stack.api}/jobs/{known}",
        headers=dashboard.stack.headers(dashboard.user),
        timeout=HTTP_TIMEOUT,
    )
    assert cancelled.status_code == 200, cancelled.text
    unseen = dashboard.submit({"type": "demo/sleep", "input": {"seconds": 0}})
    dashboard.stack.wait_until_finished(unseen, user=dashboard.user)
    assert dashboard.row(known).locator(".badge").inner_text() == "processing"
    assert dashboard.row(unseen).count() == 0
    page.evaluate("window.__deaf = false; window.__sockets.at(-1).close()")
    dashboard.expect_text(dashboard.connection(), _starts_with("Reconnecting"))
    dashboard.expect_text(dashboard.connection(), "Live")
    dashboard.expect_status(known, "cancelled")
    dashboard.expect_status(unseen, "completed")
    assert page.evaluate("window.__sockets.length") == 2
    assert dashboard.problems == []


def test_task_fields_are_shown_as_text_never_as_html(dashboard):
    page = dashboard.page
    hostile = {
        "img": "<img src=x onerror=window.__pwned=1>",
        "script": "<script>window.__pwned=2</script>",
    }
    job_id = dashboard.submit({"type": "demo/sleep", "input": {"seconds": 0}, "metadata": hostile})
    dashboard.expect_status(job_id, "completed")
    dashboard.row(job_id).get_by_role("button").click()
    metadata = page.locator("#d-metadata")
    dashboard.expect_text(metadata, _containing(hostile["img"]))
    assert hostile["script"] in metadata.inner_text()
    assert page.locator("#detail img").count() == 0
    assert page.locator("#detail script").count() == 0
    assert page.evaluate("window.__pwned") is None
    assert dashboard.problems == []


def test_a_link_with_someone_elses_token_asks_before_replacing_the_session(dashboard):
    """The attack: a link `/dashboard#token=<the attacker's key>` would sign the victim in as
    the attacker, and what they submit next would land in the attacker's account."""
    page = dashboard.page
    original = page.evaluate("sessionStorage.getItem('taskstatus.token')")
    asked: list[str] = []

    def decline(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", decline)
    page.evaluate(f"location.hash = '#token={token_for('mallory')}'")
    page.wait_for_function("location.hash === ''")
    assert asked and "signed in as mallory" in asked[0]
    assert page.evaluate("sessionStorage.getItem('taskstatus.token')") == original
    assert page.locator("#who").inner_text() == f"signed in as {dashboard.user}"
    page.once("dialog", lambda dialog: dialog.accept())
    page.evaluate(f"location.hash = '#token={token_for('mallory')}'")
    dashboard.expect_text(page.locator("#who"), "signed in as mallory")
    assert dashboard.problems == []


def test_a_link_with_a_token_asks_before_signing_in_a_tab_without_a_session(browser, local_stack):
    """The same attack on a fresh tab: nothing is replaced, but the victim would still be
    signed in as the attacker without a word."""
    context = browser.new_context()
    page = context.new_page()
    asked: list[str] = []

    def decline(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", decline)
    try:
        page.goto(f"{local_stack.api}/dashboard#token={token_for('mallory')}")
        page.locator("#signin").wait_for(state="visible")
        assert asked == ["This link signs you in (signed in as mallory). Continue?"]
        assert page.evaluate("sessionStorage.getItem('taskstatus.token')") is None
        assert page.evaluate("location.hash") == ""
    finally:
        context.close()


def test_the_dashboard_fixture_signed_in_by_accepting_the_link(dashboard):
    assert dashboard.asked == [f"This link signs you in (signed in as {dashboard.user}). Continue?"]


def test_sign_out_forgets_the_token_and_a_pasted_one_signs_in(dashboard):
    page = dashboard.page
    page.click("#sign-out")
    page.locator("#signin").wait_for(state="visible")
    assert page.evaluate("sessionStorage.getItem('taskstatus.token')") is None
    page.fill("#token-input", token_for(dashboard.user))
    page.keyboard.press("Enter")
    dashboard.expect_text(dashboard.connection(), "Live")
    assert page.locator("#who").inner_text() == f"signed in as {dashboard.user}"
    assert dashboard.problems == []


def test_a_pasted_api_key_signs_in_and_goes_live(dashboard):
    page = dashboard.page
    created = requests.post(
        f"{dashboard.stack.api}/api-keys",
        json={"name": "dashboard", "scopes": ["jobs:read", "jobs:write"]},
        headers=dashboard.stack.headers(dashboard.user),
        timeout=HTTP_TIMEOUT,
    )
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    page.click("#sign-out")
    page.fill("#token-input", key)
    page.click("#signin-form button[type=submit]")
    dashboard.expect_text(dashboard.connection(), "Live")
    assert page.locator("#who").inner_text() == f"API key {key[:12]}…"
    job_id = dashboard.submit({"type": "demo/sleep", "input": {"seconds": 0}})
    dashboard.expect_status(job_id, "completed")
    assert dashboard.problems == []


def test_the_dashboard_is_usable_at_phone_width(dashboard):
    page = dashboard.page
    job_id = dashboard.submit({"type": "demo/sleep", "input": {"seconds": 0}})
    dashboard.expect_status(job_id, "completed")
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.locator("#tasks").scroll_into_view_if_needed()
    dashboard.screenshot("phone-list")
    dashboard.row(job_id).get_by_role("button").click()
    page.locator("#act-cancel").wait_for(state="visible", timeout=WAIT_MS)
    dashboard.screenshot("phone-detail")
    assert dashboard.problems == []


def test_a_task_found_by_id_opens_and_closes_from_the_keyboard(dashboard):
    page = dashboard.page
    job_id = dashboard.submit({"type": "demo/sleep", "input": {"seconds": 0}})
    dashboard.expect_status(job_id, "completed")
    page.focus("#find-id")
    page.keyboard.type(job_id)
    page.keyboard.press("Enter")
    dashboard.expect_text(page.locator("#d-id"), job_id)
    assert page.evaluate("document.activeElement.closest('dialog')?.id") == "detail"
    page.keyboard.press("Escape")
    page.locator("#detail").wait_for(state="hidden")
    assert page.evaluate("document.activeElement.id") == "find-id"
    assert dashboard.problems == []


def test_more_tasks_load_with_the_cursor(dashboard):
    page = dashboard.page
    jobs = [dashboard.submit({"type": "demo/sleep", "input": {"seconds": 0}}) for _ in range(27)]
    page.reload()  # the first page, 25 newest, from the list API
    dashboard.expect_text(dashboard.connection(), "Live")
    dashboard.row(jobs[2]).wait_for(timeout=WAIT_MS)
    assert page.locator("#task-rows tr").count() == 25
    assert dashboard.row(jobs[0]).count() == 0
    page.click("#more")
    dashboard.row(jobs[0]).wait_for(timeout=WAIT_MS)
    assert page.locator("#task-rows tr").count() == 27
    assert page.locator("#more").is_hidden()
    ids = page.locator("#task-rows tr").evaluate_all("rows => rows.map(r => r.dataset.id)")
    assert ids == list(reversed(jobs))
    assert dashboard.problems == []


def test_behind_an_api_gateway_stage_the_page_calls_the_api_under_the_same_prefix(
    playwright, local_stack
):
    # API Gateway serves the app under /<stage>/ (here /api/): a Playwright route stands in
    # for it. Chromium takes a page answered by a route for a public one and would refuse
    # it the loopback WebSocket (Local Network Access), which a deployed page never meets.
    from playwright.sync_api import expect

    launched = playwright.chromium.launch(
        executable_path=str(CHROMIUM),
        headless=True,
        args=[*LAUNCH_ARGS, "--disable-features=LocalNetworkAccessChecks"],
    )
    try:
        _staged(launched.new_context(), local_stack, expect)
    finally:
        launched.close()


def _staged(context: Any, local_stack: Any, expect: Any) -> None:
    paths: list[str] = []

    def gateway(route: Any) -> None:
        url = route.request.url
        paths.append(url.removeprefix(local_stack.api))
        route.fulfill(response=route.fetch(url=url.replace("/api/", "/", 1)))

    context.route(f"{local_stack.api}/**", gateway)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    try:
        page.once("dialog", lambda dialog: dialog.accept())
        page.goto(f"{local_stack.api}/api/dashboard#token={token_for('staged')}")
        expect(page.locator("#connection")).to_have_text("Live", timeout=WAIT_MS)
        job = {"type": "demo/sleep", "input": {"seconds": 0}}
        job_id = local_stack.submit(job, user="staged")["jobId"]
        expect(page.locator(f'#task-rows tr[data-id="{job_id}"] .badge')).to_have_text(
            "completed", timeout=WAIT_MS
        )
        assert paths and all(path.startswith("/api/") for path in paths), paths
        assert {"/api/openapi.json", f"/api/jobs/{job_id}"} <= set(paths)
        assert problems == []
    finally:
        # a route still fetching when the context closes would raise in the next test's setup
        context.unroute_all(behavior="ignoreErrors")
        context.close()


def _history(dashboard: Dashboard, job_id: str) -> dict:
    """The job's history as the server has it now (GET /jobs/{jobId}/events)."""
    response = requests.get(
        f"{dashboard.stack.api}/jobs/{job_id}/events",
        headers=dashboard.stack.headers(dashboard.user),
        timeout=HTTP_TIMEOUT,
    )
    assert response.status_code == 200, response.text
    return response.json()


def _wait_for(page: Any, condition: Any, what: str) -> None:
    """Until `condition()` holds, letting the page's events in meanwhile; at most WAIT_MS."""
    deadline = time.monotonic() + WAIT_MS / 1000
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not come in {WAIT_MS} ms"
        page.wait_for_timeout(50)


def _starts_with(prefix: str) -> Any:
    import re

    return re.compile("^" + re.escape(prefix))


def _containing(text: str) -> Any:
    import re

    return re.compile(re.escape(text))


def test_a_pool_jobs_detail_shows_its_pool_and_the_attempt_a_worker_claimed(dashboard):
    from tests.e2e.test_workers_e2e import _service_key

    page = dashboard.page
    job_id = dashboard.submit({"type": "acme/wait", "input": {}, "pool": "remote"})
    dashboard.row(job_id).get_by_role("button").click()
    detail = page.locator("#detail")
    dashboard.expect_text(detail.locator("#d-pool"), "remote (remote workers)")
    assert detail.locator("#d-attempt").is_hidden()  # nobody has claimed it yet
    key = _service_key(dashboard.stack.emulator, owners=dashboard.user)
    claim = requests.post(
        f"{dashboard.stack.api}/pools/remote/claim?waitSeconds=20",
        headers={"X-API-Key": key},
        timeout=HTTP_TIMEOUT,  # more than the claim's 20 s long poll
    )
    assert claim.status_code == 200, claim.text
    assert claim.json()["job"]["jobId"] == job_id
    dashboard.expect_text(detail.locator("#d-status"), "started")  # pushed: no reload
    dashboard.expect_text(detail.locator("#d-attempt"), "1")


def test_the_page_lists_schedules_with_their_next_run_and_last_outcome(dashboard):
    response = requests.post(
        f"{dashboard.stack.api}/schedules",
        json={"rate": "5 minutes", "type": "demo/sleep", "input": {"seconds": 0}},
        headers=dashboard.stack.headers(dashboard.user),
        timeout=10,
    )
    assert response.status_code == 201, response.text
    schedule = response.json()
    dashboard.page.click("#schedules-refresh")
    row = dashboard.page.locator("#schedule-rows tr", has_text=schedule["scheduleId"][:12])
    dashboard.expect_text(row.locator("td").nth(2), "every 5 minutes")
    dashboard.expect_text(row.locator("td").nth(4), "not yet")
    assert row.locator("td").nth(3).inner_text() not in {"", "none", "paused"}
    assert dashboard.problems == []
