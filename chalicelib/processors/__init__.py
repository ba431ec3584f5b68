"""Processors: the SDK, and the built-in processors registered on import."""

from chalicelib.processors import autovid_demo, demo, image  # noqa: F401  (registers built-ins)
from chalicelib.processors.sdk import (
    Context,
    PermanentError,
    Processor,
    TransientError,
    get_processor,
    processor,
    registered_types,
)

__all__ = [
    "Context",
    "PermanentError",
    "Processor",
    "TransientError",
    "get_processor",
    "processor",
    "registered_types",
]
