"""Processors: the SDK, and the built-in processors, each imported when its type is first used.

Import your own processor modules here (they register on import), or name them in
`load_on_demand` so that only the worker that runs them pays for their imports.
"""

from chalicelib.errors import FieldError
from chalicelib.processors.sdk import (
    Context,
    PermanentError,
    Processor,
    TransientError,
    get_processor,
    load_on_demand,
    processor,
    registered_types,
)

load_on_demand(
    {
        "demo/sleep": "chalicelib.processors.demo",
        "demo/auto-vid": "chalicelib.processors.autovid_demo",
        "image/watermark": "chalicelib.processors.image",
        "image/blindwatermark": "chalicelib.processors.image",
        "image/deblindwatermark": "chalicelib.processors.image",
    }
)

__all__ = [
    "Context",
    "FieldError",
    "PermanentError",
    "Processor",
    "TransientError",
    "get_processor",
    "load_on_demand",
    "processor",
    "registered_types",
]
