"""The status machine: allowed transitions, terminal states."""

import pytest

from chalicelib.model import ALLOWED_TRANSITIONS, RETRYABLE, TERMINAL, Status, can_transition


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
