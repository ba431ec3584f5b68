"""schemathesis against the running local stack: no 5xx, every response as documented."""

import subprocess
import sys
from pathlib import Path

MAX_EXAMPLES = "10"  # per operation and phase; keeps CI to about half a minute


def test_the_api_holds_to_its_openapi_document(local_stack, tmp_path):
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "run",
        f"{local_stack.api}/openapi.json",
        "--header",
        f"Authorization: {local_stack.headers()['Authorization']}",
        "--max-examples",
        MAX_EXAMPLES,
        "--checks",
        "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance",
        "--generation-deterministic",
        "--request-timeout",
        "10",
        "--no-color",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
