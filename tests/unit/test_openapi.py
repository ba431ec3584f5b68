"""The OpenAPI document: served, generated from the handlers' models, and true to the routes."""

from chalicelib.contracts.openapi import routes
from tests.unit.helpers import get, submit


def app_routes(app):
    # OPTIONS is every route's CORS preflight (chalicelib/edge/cors.py), not an operation.
    return {
        (path, method)
        for path, methods in app.routes.items()
        for method in methods
        if method != "OPTIONS"
    }


def test_every_route_is_documented_and_every_documented_route_exists(stack):
    assert routes() == app_routes(stack.app.app)


def test_the_document_is_served_without_a_token(client):
    response = client.http.get("/openapi.json")
    assert response.status_code == 200
    document = response.json_body
    assert document["openapi"] == "3.1.0"
    assert set(document["paths"]) == {path for path, _ in routes()}


def test_the_job_schema_is_the_models_schema(client):
    from chalicelib.contracts.schemas import JobDocument

    schemas = client.http.get("/openapi.json").json_body["components"]["schemas"]
    assert set(schemas["JobDocument"]["properties"]) == set(JobDocument.model_fields)


def test_a_submitted_job_validates_against_the_documented_schema(client):
    import jsonschema

    document = client.http.get("/openapi.json").json_body
    job = submit(client).json_body
    components = document["components"]
    jsonschema.validate(job, {"$ref": "#/components/schemas/JobDocument", "components": components})
    listing = get(client, "/jobs").json_body
    jsonschema.validate(listing, {"$ref": "#/components/schemas/JobList", "components": components})


def test_every_route_with_credentials_documents_its_503_with_retry_after(client):
    document = client.http.get("/openapi.json").json_body
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if operation.get("security") == []:
                continue  # public: answers without AWS (health, this document, the page)
            overloaded = operation["responses"].get("503")
            assert overloaded is not None, (method, path)
            assert "Retry-After" in overloaded["headers"]
