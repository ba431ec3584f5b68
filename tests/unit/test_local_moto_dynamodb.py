"""The emulator's DynamoDB (local/moto_dynamodb.py): keyed submits under concurrent load."""

from __future__ import annotations

import copy
from concurrent.futures import ThreadPoolExecutor

import pytest

from chalicelib.errors import IdempotencyConflict
from chalicelib.model import Task
from chalicelib.service import SubmitJob
from local.moto_dynamodb import patch_dynamodb

JOB = SubmitJob(type="demo/sleep", input={"seconds": 0})


@pytest.fixture
def emulated(stack, monkeypatch):
    """The stack with the emulator's DynamoDB fixes applied (undone after the test)."""
    patch_dynamodb(monkeypatch.setattr)
    return stack


@pytest.fixture
def table_copies(monkeypatch):
    """The names of the tables moto deep-copies (to roll a transaction back)."""
    from moto.dynamodb.models.table import Table

    copies = []

    def counting(self, memo):
        copies.append(self.name)
        clone = Table.__new__(Table)
        memo[id(self)] = clone
        clone.__dict__.update(copy.deepcopy(self.__dict__, memo))
        return clone

    monkeypatch.setattr(Table, "__deepcopy__", counting, raising=False)
    return copies


def test_concurrent_keyed_submits_are_all_stored_beside_a_large_table(emulated, service):
    for _ in range(300):
        service.store.create(Task.new(owner="other", type="demo/sleep", ttl_seconds=3600))

    def submit(n: int) -> str:
        task, created = service.submit(f"user-{n % 4}", JOB, idempotency_key=f"key-{n}")
        assert created
        return task.id

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(submit, range(120)))
    assert all(service.store.get(task_id, service.clock()) for task_id in ids)
    assert emulated.task_count() == 300 + 120


def test_a_transaction_whose_conditions_hold_copies_no_table(emulated, service, table_copies):
    service.submit("alice", JOB, idempotency_key="once")
    assert table_copies == []


def test_a_cancelled_transaction_still_writes_nothing(emulated, service, table_copies):
    first, _ = service.submit("alice", JOB, idempotency_key="k")
    with pytest.raises(IdempotencyConflict):
        service.submit("alice", SubmitJob(type="demo/sleep", input={"seconds": 1}), "k")
    assert table_copies  # moto's own path, which can roll back
    assert emulated.task_count() == 1
    assert service.submit("alice", JOB, idempotency_key="k") == (
        service.store.get(first.id, service.clock()),
        False,
    )
