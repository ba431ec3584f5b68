"""Progress writes are coalesced: at most one per task per interval, the latest always kept."""

from __future__ import annotations

import pytest

from chalicelib.model import Status, Task
from chalicelib.worker import TaskReporter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def claimed(service) -> Task:
    task = Task.new(owner="alice", type="demo/sleep", ttl_seconds=3600)
    service.store.create(task)
    return service.claim(task.id, task.type, 1)


def test_reports_inside_the_interval_make_no_write(service, claimed):
    reporter = TaskReporter(service, claimed, min_interval=1.0, clock=Clock())
    for step in range(1, 21):
        reporter.progress(step, 20, f"step {step}")
    assert service.find(claimed.id).version == claimed.version


def test_a_report_past_the_interval_is_written_with_the_latest_progress(service, claimed):
    clock = Clock()
    reporter = TaskReporter(service, claimed, min_interval=1.0, clock=clock)
    reporter.progress(1, 3, "one")
    clock.now += 1.0
    reporter.progress(2, 3, "two")
    stored = service.find(claimed.id)
    assert (stored.version, stored.progress.current) == (claimed.version + 1, 2)


def test_the_final_write_carries_the_last_unwritten_progress(service, claimed):
    reporter = TaskReporter(service, claimed, min_interval=1.0, clock=Clock())
    for step in range(1, 21):
        reporter.progress(step, 20, f"step {step}")
    reporter.finish(Status.COMPLETED, result="done")
    stored = service.find(claimed.id)
    assert stored.status is Status.COMPLETED
    assert (stored.progress.current, stored.progress.message) == (20, "step 20")
    assert stored.version == claimed.version + 1  # 20 reports and the result: one write


def test_a_warning_carries_the_unwritten_progress(service, claimed):
    reporter = TaskReporter(service, claimed, min_interval=1.0, clock=Clock())
    reporter.progress(1, 2, "half")
    reporter.warn("one row was skipped")
    stored = service.find(claimed.id)
    assert (stored.status, stored.progress.current) == (Status.ERROR, 1)


def test_the_interval_restarts_at_each_write(service, claimed):
    clock = Clock()
    reporter = TaskReporter(service, claimed, min_interval=1.0, clock=clock)
    clock.now += 1.0
    reporter.progress(1, 3, "written")
    clock.now += 0.5
    reporter.progress(2, 3, "held")
    assert service.find(claimed.id).progress.current == 1
