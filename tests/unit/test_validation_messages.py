"""A refused body's field errors read as the check wrote them, without pydantic's wording."""

from __future__ import annotations

import pytest
from pydantic import ValidationError, field_validator

from chalicelib.validation import Schema, validation_errors


class Window(Schema):
    since: str

    @field_validator("since")
    @classmethod
    def _not_later(cls, value: str) -> str:
        if value > "2030":
            raise ValueError("since must not be later than until")
        return value


def refusal(**fields: object) -> list[dict[str, object]]:
    with pytest.raises(ValidationError) as refused:
        Window.model_validate(fields)
    return validation_errors(refused.value, "body")


def test_a_check_that_raises_value_error_is_reported_in_its_own_words():
    assert refusal(since="2031") == [
        {"field": "body.since", "message": "since must not be later than until"}
    ]


def test_pydantic_own_messages_are_kept():
    assert refusal(since=3) == [
        {"field": "body.since", "message": "Input should be a valid string"}
    ]
