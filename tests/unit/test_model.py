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


def test_only_a_retry_moves_back_to_submitted():
    assert {
        status for status, targets in ALLOWED_TRANSITIONS.items() if Status.SUBMITTED in targets
    } == set(RETRYABLE)
