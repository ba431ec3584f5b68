"""A processor's result as it is stored: the Python values results commonly hold become JSON."""

import datetime
import decimal
import enum
import json
import uuid
from dataclasses import dataclass

import pytest
from pydantic import BaseModel

from chalicelib.jsonsafe import UnencodableResult, encode
from chalicelib.processors import processor
from chalicelib.processors.sdk import registered
from tests.unit.helpers import get, submit


class Colour(enum.Enum):
    RED = "red"


@dataclass
class Size:
    width: int
    height: int


class Summary(BaseModel):
    pages: int


def test_plain_json_is_written_as_it_is():
    assert json.loads(encode({"a": [1, 2.5, "é", None, True]})) == {"a": [1, 2.5, "é", None, True]}


def test_a_result_is_measured_as_the_item_stores_it_without_spaces():
    # result_changes decides inline or object by this text's size.
    assert encode({"a": [1, 2], "b": "é"}) == '{"a":[1,2],"b":"é"}'


def test_other_python_values_are_written_as_pydantic_writes_them():
    when = datetime.datetime(2026, 11, 24, 5, 0, tzinfo=datetime.UTC)
    ident = uuid.UUID("0b5e8a2c-3d4f-4a6b-8c7d-9e0f1a2b3c4d")
    result = {
        "at": when,
        "day": when.date(),
        "took": datetime.timedelta(seconds=90),
        "part": decimal.Decimal("2.5"),
        "colour": Colour.RED,
        Colour.RED: "an enum as a key",
        "id": ident,
        "raw": b"bytes",
        "tags": ("a", "b"),
        "size": Size(2, 3),
        "summary": Summary(pages=4),
    }
    assert json.loads(encode(result)) == {
        "at": "2026-11-24T05:00:00Z",
        "day": "2026-11-24",
        "took": "PT1M30S",
        "part": "2.5",
        "colour": "red",
        "red": "an enum as a key",
        "id": str(ident),
        "raw": "bytes",
        "tags": ["a", "b"],
        "size": {"width": 2, "height": 3},
        "summary": {"pages": 4},
    }


def test_nan_and_infinity_become_null():
    assert json.loads(encode({"ratio": float("nan"), "list": [float("inf"), 1.0]})) == {
        "ratio": None,
        "list": [None, 1.0],
    }


def test_a_value_with_no_json_form_is_refused_with_its_type():
    with pytest.raises(UnencodableResult, match="object"):
        encode({"handle": object()})


if not registered("test/typed-result"):

    @processor("test/typed-result")
    def typed_result(task, ctx):
        return {"at": datetime.date(2026, 11, 24), "ratio": float("nan"), "pages": (1, 2)}


def test_the_worker_stores_a_result_of_python_values_as_json(client, stack):
    job_id = submit(client, {"type": "test/typed-result"}).json_body["jobId"]
    stack.settle()
    job = get(client, f"/jobs/{job_id}").json_body
    assert job["status"] == "completed"
    assert job["result"] == {"at": "2026-11-24", "ratio": None, "pages": [1, 2]}


if not registered("test/unencodable-result"):

    @processor("test/unencodable-result")
    def unencodable_result(task, ctx):
        RUNS[task.id] = RUNS.get(task.id, 0) + 1
        return {"handle": object()}


RUNS: dict[str, int] = {}


def test_a_result_with_no_json_form_fails_its_task_at_once(client, stack):
    job_id = submit(client, {"type": "test/unencodable-result"}).json_body["jobId"]
    stack.settle()
    job = get(client, f"/jobs/{job_id}").json_body
    assert job["status"] == "failed"
    assert "the result cannot be written as JSON" in job["error"]
    assert RUNS[job_id] == 1  # not retried: no run again would change it
