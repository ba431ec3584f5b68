"""boto3 clients: built once per process, with the cycle collector paused while they are."""

import gc

import pytest
from botocore.exceptions import UnknownServiceError

from chalicelib import aws


@pytest.fixture(autouse=True)
def fresh_clients():
    aws.reset_clients()
    yield
    aws.reset_clients()
    gc.enable()


def test_a_client_is_built_once_per_service():
    assert aws.client("sqs") is aws.client("sqs")


def test_the_collector_is_paused_while_a_client_is_built(monkeypatch):
    seen = []
    real_session = aws._session

    def watching_session():
        seen.append(gc.isenabled())
        return real_session()

    monkeypatch.setattr(aws, "_session", watching_session)
    aws.client("sqs")
    assert seen == [False]


def test_the_collector_runs_again_after_a_client_is_built():
    aws.client("sqs")
    assert gc.isenabled()


def test_the_collector_runs_again_when_a_client_cannot_be_built():
    with pytest.raises(UnknownServiceError):
        aws.client("no-such-service")
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off():
    gc.disable()
    aws.client("sqs")
    assert not gc.isenabled()


def test_what_the_process_holds_once_a_client_is_built_is_frozen():
    aws.client("sqs")
    assert gc.get_freeze_count() > 0


def test_forgetting_the_clients_gives_the_frozen_objects_back_to_the_collector():
    aws.client("sqs")
    aws.reset_clients()
    assert gc.get_freeze_count() == 0


def test_nothing_is_frozen_when_a_client_cannot_be_built():
    with pytest.raises(UnknownServiceError):
        aws.client("no-such-service")
    assert gc.get_freeze_count() == 0
