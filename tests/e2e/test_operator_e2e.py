"""The operator's console in a real browser (Chromium, Playwright) against `make dev`: a pool
job whose message gave up is seen in its dead-letter queue, redriven from the page, and
completes on a remote worker; a parked job shows why; a user signed in sees none of it.

Screenshots go to build/test-artifacts/operator/."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from local.token import mint_token
from tests.conftest import JWT_SECRET, token_for
from tests.e2e import HTTP_TIMEOUT
from tests.e2e.test_browser_e2e import CHROMIUM, LAUNCH_ARGS
from tests.e2e.test_workers_e2e import TASKS, _service_key, start_worker, stop

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "build" / "test-artifacts" / "operator"
WAIT_MS = 60000
DEADLINE_SECONDS = 90


def operator_token() -> str:
    return mint_token("e2e-operator", JWT_SECRET, 3600, scope="taskstatus:operator")


def wait_for(condition: Callable[[], Any], what: str, deadline: float = DEADLINE_SECONDS) -> Any:
    ends = time.monotonic() + deadline
    while True:
        found = condition()
        if found:
            return found
        assert time.monotonic() < ends, f"{what} did not happen in {deadline} s"
        time.sleep(0.3)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), "Chromium is missing: run `make install-browser`"
    with sync_playwright() as running:
        launched = running.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS
        )
        yield launched
        launched.close()


def open_dashboard(browser: Any, api: str, token: str, width: int = 1280) -> Any:
    context = browser.new_context(viewport={"width": width, "height": 1000})
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # the sign-in link's and each action's
    page.goto(f"{api}/dashboard#token={token}")
    page.locator("#app").wait_for(state="visible", timeout=WAIT_MS)
    return page


def queue_urls(local_stack) -> dict[str, str]:
    urls = local_stack.aws("sqs").list_queues().get("QueueUrls", [])
    return {url.rsplit("/", 1)[1]: url for url in urls}


def give_up(local_stack, job_id: str) -> None:
    """What 50 failed receives do (the pool queue's maxReceiveCount): the job's message moves
    from the pool's queue to its dead-letter queue."""
    sqs = local_stack.aws("sqs")
    urls = queue_urls(local_stack)
    pool = next(url for name, url in urls.items() if name.endswith("-pool-remote"))
    dead = next(url for name, url in urls.items() if name.endswith("-pool-remote-dlq"))

    def take() -> dict | None:
        for message in sqs.receive_message(QueueUrl=pool, WaitTimeSeconds=1).get("Messages", []):
            if job_id in message["Body"]:
                return message
            sqs.change_message_visibility(
                QueueUrl=pool, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
        return None

    message = wait_for(take, "the pool job's message")
    sqs.send_message(QueueUrl=dead, MessageBody=message["Body"])
    sqs.delete_message(QueueUrl=pool, ReceiptHandle=message["ReceiptHandle"])


def test_a_dead_letter_is_seen_and_redriven_from_the_page_and_its_job_completes(
    browser, local_stack, tmp_path
):
    from playwright.sync_api import expect

    body = {"type": "e2e/steps", "input": {"steps": 1, "pause": 0.1}, "pool": "remote"}
    job_id = local_stack.submit(body, user="alice")["jobId"]
    give_up(local_stack, job_id)
    page = open_dashboard(browser, local_stack.api, operator_token())
    row = page.locator(f'#ops-dead-rows tr[data-task="{job_id}"]')
    expect(row).to_be_visible(timeout=WAIT_MS)
    # live: the operator's WebSocket tells of every owner's changes (polling every 30 s
    # otherwise, slower than the wait below for the job to complete)
    expect(page.locator("#ops-updated")).to_contain_text("(live)", timeout=WAIT_MS)
    expect(row).to_contain_text("alice")
    listed = page.locator(f'#ops-task-rows tr[data-task="{job_id}"] .badge')
    expect(listed).to_have_text("submitted", timeout=WAIT_MS)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "console.png"), full_page=True)
    row.get_by_role("button", name=f"Redrive {job_id} from pool-remote-dlq").click()
    expect(page.locator("#ops-dead-outcome")).to_contain_text("requeued", timeout=WAIT_MS)
    expect(row).to_have_count(0, timeout=WAIT_MS)
    package = tmp_path / "userpkg"
    package.mkdir()
    (package / "e2e_tasks.py").write_text(TASKS)
    stack = {
        "api": local_stack.api,
        "key": _service_key(local_stack.emulator),
        "package": package,
        "log": tmp_path,
    }
    runs_before = runs_charted(page, "e2e/steps")
    worker = start_worker(stack, "operator-e2e")
    try:
        expect(listed).to_have_text("completed", timeout=WAIT_MS)
    finally:
        stop(worker)
    # the latency chart counts the run without a reload
    wait_for(lambda: runs_charted(page, "e2e/steps") > runs_before, "the chart's runs to grow")
    page.context.close()


def runs_charted(page: Any, task_type: str) -> int:
    """The latency chart's runs of `task_type` in the last hour, as the page shows them now."""
    row = page.locator(f'#ops-latency-rows tr[data-type="{task_type}"][data-window="hour"]')
    if row.count() == 0:
        return 0
    return int(row.locator('td[data-label="Runs"]').inner_text())


def test_an_owners_counts_grow_live_on_the_page(browser, local_stack):
    from playwright.sync_api import expect

    owner = f"e2e-counted-{uuid.uuid4().hex[:8]}"
    page = open_dashboard(browser, local_stack.api, operator_token())
    expect(page.locator("#ops-updated")).to_contain_text("(live)", timeout=WAIT_MS)
    submitted = page.locator(
        f'#ops-owner-rows tr[data-owner="{owner}"] td[data-label="Submitted (hour / day)"]'
    )
    expect(submitted).to_have_count(0)
    job = {"type": "demo/sleep", "input": {"seconds": 0}}
    local_stack.submit(job, user=owner)
    expect(submitted).to_have_text("1 / 1", timeout=WAIT_MS)  # no reload: a push, then a read
    local_stack.submit(job, user=owner)
    expect(submitted).to_have_text("2 / 2", timeout=WAIT_MS)
    page.context.close()


def test_a_parked_job_shows_why_on_the_page(browser, local_stack):
    from playwright.sync_api import expect

    owner = "e2e-parker"
    headers = {"Authorization": f"Bearer {token_for(owner)}"}
    ids = [
        local_stack.submit({"type": "demo/sleep", "input": {"seconds": 30}}, user=owner)["jobId"]
        for _ in range(4)  # the limit is 3 running per owner: the 4th waits
    ]
    try:
        page = open_dashboard(browser, local_stack.api, operator_token(), width=390)
        parked = page.locator('#ops-stuck-rows tr[data-kind="parked"]')
        expect(parked.first).to_contain_text("waits for a slot", timeout=WAIT_MS)
        expect(parked.first).to_contain_text(owner)
        page.screenshot(path=str(ARTIFACTS / "console-phone.png"), full_page=True)
        page.context.close()
    finally:
        for job_id in ids:
            url = f"{local_stack.api}/jobs/{job_id}"
            requests.delete(url, headers=headers, timeout=HTTP_TIMEOUT)


def test_a_user_signed_in_sees_nothing_of_the_console(browser, local_stack):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url))
    with page.expect_response(lambda r: r.url.endswith("/dashboard/session")) as session:
        page.goto(f"{local_stack.api}/dashboard#token={token_for('e2e-user')}")
    assert session.value.json() == {"owner": "e2e-user", "operator": False}
    page.locator("#app").wait_for(state="visible", timeout=WAIT_MS)
    assert page.locator("#ops").is_hidden()
    assert not [url for url in asked if "/ops/" in url]  # the page never calls the console
    context.close()
