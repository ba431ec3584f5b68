"""The canonical model: the status machine, and the Task as its item stores it."""

import dataclasses
import typing
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

import pytest

from chalicelib.model import (
    ALLOWED_TRANSITIONS,
    RETRYABLE,
    TERMINAL,
    ObjectRef,
    Output,
    Progress,
    Status,
    Task,
    Webhook,
    can_transition,
    utcnow,
)
from chalicelib.store import task_attributes, task_from_item
from chalicelib.store.items import codec_for


@pytest.mark.parametrize("terminal", sorted(TERMINAL - RETRYABLE))
def test_nothing_leaves_a_successful_ending(terminal):
    assert ALLOWED_TRANSITIONS[terminal] == frozenset()


@pytest.mark.parametrize("ending", sorted(RETRYABLE))
def test_a_failed_or_cancelled_task_leaves_only_by_a_retry_to_submitted(ending):
    assert ALLOWED_TRANSITIONS[ending] == frozenset({Status.SUBMITTED})


def test_a_submitted_task_cannot_complete_without_starting():
    assert not can_transition(Status.SUBMITTED, Status.COMPLETED)


def test_a_submitted_task_can_be_cancelled():
    assert can_transition(Status.SUBMITTED, Status.CANCELLED)


def test_a_task_with_a_non_fatal_error_cannot_end_plain_completed():
    assert not can_transition(Status.ERROR, Status.COMPLETED)
    assert can_transition(Status.ERROR, Status.COMPLETED_WITH_ERRORS)


def test_a_retrying_task_goes_back_to_started():
    assert can_transition(Status.RETRYING, Status.STARTED)
    assert not can_transition(Status.RETRYING, Status.PROCESSING)


def test_only_a_retry_or_a_due_scheduled_task_moves_to_submitted():
    # A scheduled task moves on to submitted when it is due: that is forward, not back.
    sources = {s for s, targets in ALLOWED_TRANSITIONS.items() if Status.SUBMITTED in targets}
    assert sources == set(RETRYABLE) | {Status.SCHEDULED}


def test_nothing_moves_back_to_scheduled():
    assert all(Status.SCHEDULED not in targets for targets in ALLOWED_TRANSITIONS.values())


def test_a_scheduled_task_can_start_be_cancelled_or_fail_but_not_finish():
    assert ALLOWED_TRANSITIONS[Status.SCHEDULED] == {
        Status.SUBMITTED,
        Status.STARTED,
        Status.CANCELLED,
        Status.FAILED,
    }


# -- the Task dataclass and its item ----------------------------------------------------------


def every_part_task() -> Task:
    now = utcnow()
    return Task.new(
        owner="alice",
        type="demo/sleep",
        ttl_seconds=3600,
        input={"seconds": 1.5, "nested": {"list": [1, "two", None]}},
        source=ObjectRef("bucket-a", "alice/in.png"),
        target=ObjectRef("bucket-a", "alice/out.png"),
        metadata={"é": "ü", "n": 1},
        webhook=Webhook("https://example.com/hook", "transflow", "PUT", {"X-A": "1"}, {"k": 2}),
        now=now,
        run_at=now + timedelta(hours=1),
    ).replace(
        progress=Progress(2, 5, "working"),
        result={"pages": 3},
        result_object=ObjectRef("bucket-a", "alice/result.json"),
        error="slow",
        output=Output(s3Uri="s3://bucket-a/alice/out.png", duration=1.5, size=9),
        started_at=now,
        completed_at=now + timedelta(seconds=2),
        version=4,
        attempts=2,
        lease_until=1_900_000_000,
        retries=1,
        updated_by="worker",
    )


def test_a_task_with_every_part_reads_back_from_its_item_unchanged():
    task = every_part_task()
    assert task_from_item(task_attributes(task, 60)) == task


def test_a_new_task_reads_back_from_its_item_unchanged():
    task = Task.new(owner="alice", type="demo/sleep", ttl_seconds=60)
    assert task_from_item(task_attributes(task, 60)) == task


# A value of each type a Task field may have, unlike any default: a field of a new type
# fails here (KeyError) until it has one, so the round trip below covers every field.
_PARTS = {
    Progress: Progress(3, 7, "halfway"),
    ObjectRef: ObjectRef("bucket-b", "bob/object.bin"),
    Output: Output(s3Uri="s3://bucket-b/bob/out", duration=2.5, size=11, url="https://x.test/o"),
    Webhook: Webhook("https://example.com/h", "autovid", "PUT", {"X-B": "2"}, {"m": True}),
}


def _unlike_the_default(name: str, hint: Any) -> Any:
    if typing.get_origin(hint) in (typing.Union, type(int | None)):
        [hint] = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    if typing.get_origin(hint) is typing.Literal:
        return typing.get_args(hint)[-1]
    if isinstance(hint, type) and issubclass(hint, Enum):
        return list(hint)[-1]
    samples = {
        str: f"{name}-value",
        int: 1_700_000_000 + len(name),
        datetime: datetime(2031, 2, 3, 4, 5, 6, 789_012, tzinfo=utcnow().tzinfo),
        Any: {"any": [1, 2.5, "three", None, {"deep": True}]},
    }
    if typing.get_origin(hint) is dict:
        return {"field": name, "n": 1.5}
    return _PARTS.get(hint) or samples[hint]


def test_every_field_of_a_task_survives_its_item_with_a_value_unlike_its_default():
    hints = typing.get_type_hints(Task)
    values = {f.name: _unlike_the_default(f.name, hints[f.name]) for f in dataclasses.fields(Task)}
    task = Task(**values)
    for f in dataclasses.fields(Task):
        if f.default is not dataclasses.MISSING:
            assert getattr(task, f.name) != f.default, f.name
        if f.default_factory is not dataclasses.MISSING:
            assert getattr(task, f.name) != f.default_factory(), f.name
    read = task_from_item(task_attributes(task, 60))
    lost = {f.name for f in dataclasses.fields(Task) if getattr(read, f.name) != values[f.name]}
    assert lost == set()


def test_a_task_field_of_a_type_no_item_codec_takes_is_refused_not_dropped():
    @dataclasses.dataclass
    class WithTags:
        tags: set[str]

    [tags] = dataclasses.fields(WithTags)
    with pytest.raises(TypeError, match="tags"):
        codec_for(tags, set[str])


def test_replace_leaves_the_task_it_copies_as_it_was():
    task = Task.new(owner="alice", type="demo/sleep", ttl_seconds=60)
    changed = task.replace(status=Status.STARTED, version=2)
    assert (task.status, task.version) == (Status.SUBMITTED, 1)
    assert (changed.status, changed.version, changed.id) == (Status.STARTED, 2, task.id)


def test_an_error_set_by_replace_is_cut_to_its_limit():
    task = Task.new(owner="alice", type="demo/sleep", ttl_seconds=60)
    assert len(task.replace(error="x" * 10_000).error) == 4096


@pytest.mark.parametrize("current, total", [(-1, 5), (1, -5)])
def test_negative_progress_is_refused(current, total):
    with pytest.raises(ValueError, match="negative"):
        Progress(current, total)


@pytest.mark.parametrize("current", [0.5, "3", True, None])
def test_progress_that_is_not_a_whole_number_is_refused(current):
    with pytest.raises(ValueError, match="whole number"):
        Progress(current, 5)


def test_a_whole_float_progress_is_read_as_an_int():
    progress = Progress(2.0, 4.0)
    assert (progress.current, progress.total) == (2, 4)
    assert isinstance(progress.current, int)


@pytest.mark.parametrize(
    "fields", [{"size": 2.5}, {"size": "3"}, {"duration": "1.5"}, {"s3Uri": 7}]
)
def test_an_output_a_client_could_not_read_is_refused(fields):
    with pytest.raises(ValueError, match="output"):
        Output(**fields)
