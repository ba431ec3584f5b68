"""The pydantic side of the edge: the base of every request and response schema, and how a
refused body is reported. Only what validates outside input imports this (and pydantic)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from chalicelib.errors import FieldError


class Schema(BaseModel):
    """Base of every schema: built on first use, not at import (cold start)."""

    model_config = ConfigDict(defer_build=True)


def validation_errors(exc: ValidationError, prefix: str) -> list[dict[str, Any]]:
    """A pydantic error as the `errors` list every 422 carries: the field path and why.
    A FieldError raised by a check names its own field, in its own words."""
    found = []
    for error in exc.errors(include_url=False, include_input=False):
        cause = (error.get("ctx") or {}).get("error")
        path, message = error["loc"], error["msg"]
        if isinstance(cause, FieldError):
            path, message = (*path, cause.field), cause.message
        found.append({"field": ".".join([prefix, *(str(p) for p in path)]), "message": message})
    return found
