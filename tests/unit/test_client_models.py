"""The client's own models (taskstatus_client/models.py) equal the service's `/openapi.json`."""

import json
from typing import Any

import pytest
from pydantic.json_schema import models_json_schema

from taskstatus_client.models import MIRRORED
from tests.conftest import ROOT

DOCUMENTATION = {"title", "description", "examples"}


def shape(schema: Any) -> Any:
    """A JSON schema without its documentation keys: what a body must look like."""
    if isinstance(schema, dict):
        return {k: shape(v) for k, v in schema.items() if k not in DOCUMENTATION}
    if isinstance(schema, list):
        return [shape(item) for item in schema]
    return schema


@pytest.fixture(scope="module")
def served_components():
    from chalice.test import Client

    import app as app_module

    with Client(app_module.app, stage_name="prod", project_dir=str(ROOT)) as client:
        response = client.http.get("/openapi.json")
    assert response.status_code == 200
    return json.loads(response.body)["components"]["schemas"]


@pytest.fixture(scope="module")
def client_components():
    _, schema = models_json_schema(
        [(model, "serialization") for model in MIRRORED],
        ref_template="#/components/schemas/{model}",
    )
    return schema["$defs"]


@pytest.mark.parametrize("name", [model.__name__ for model in MIRRORED] + ["Status"])
def test_the_clients_model_equals_the_services_component(
    name, served_components, client_components
):
    assert shape(client_components[name]) == shape(served_components[name])


def test_the_client_imports_nothing_from_the_server():
    sources = (ROOT / "taskstatus_client").glob("*.py")
    offenders = [
        p.name
        for p in sources
        if "import chalicelib" in p.read_text() or "from chalicelib" in p.read_text()
    ]
    assert offenders == []
