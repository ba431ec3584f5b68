"""The pydantic side of the edge: the base of every request and response schema, and how a
refused body is reported. Only what validates outside input imports this (and pydantic)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, ValidationError
from pydantic_core import PydanticCustomError

from chalicelib.errors import FieldError


class Schema(BaseModel):
    """Base of every schema: built on first use, not at import (cold start)."""

    model_config = ConfigDict(defer_build=True)


def validation_errors(exc: ValidationError, prefix: str) -> list[dict[str, Any]]:
    """A pydantic error as the `errors` list every 422 carries: the field path and why.
    A FieldError raised by a check names its own field, in its own words; any other ValueError
    of a check is its own words too, without the "Value error, " pydantic puts before them."""
    found = []
    for error in exc.errors(include_url=False, include_input=False):
        cause = (error.get("ctx") or {}).get("error")
        path, message = error["loc"], error["msg"]
        if isinstance(cause, FieldError):
            path, message = (*path, cause.field), cause.message
        elif isinstance(cause, ValueError):
            message = str(cause)
        found.append({"field": ".".join([prefix, *(str(p) for p in path)]), "message": message})
    return found


def in_utc(value: datetime) -> datetime:
    """An aware time as UTC, or a ValueError a person can act on.

    A time at the edge of the calendar with an offset (0001-01-01T00:00:00+01:00,
    9999-12-31T23:59:59-01:00) is valid ISO-8601, but in UTC it falls outside the years
    Python's datetime can hold: converting, comparing or storing it would raise
    OverflowError. Every time a request gives is converted here, once, when it is read.
    """
    try:
        return value.astimezone(UTC)
    except OverflowError:
        # A ValueError of its own kind: pydantic reports its message as written.
        raise PydanticCustomError(
            "time_out_of_range",
            "{value} is outside the years 0001 to 9999 once converted to UTC; "
            "send a time within them",
            {"value": value.isoformat()},
        ) from None


# A time with its offset, taken as UTC (the form every stored time and comparison uses).
UtcDatetime = Annotated[AwareDatetime, AfterValidator(in_utc)]
