"""The moto server for the deploy rehearsal, with the three gaps `chalice deploy` runs into
(and what moto's CloudFormation lacks: infra/moto_cloudformation.py).

Each one is a missing emulator feature, not a difference in what is deployed to AWS:
  - REST API import: moto imports only OpenAPI 3 documents; Chalice sends Swagger 2.0. The
    parts moto reads (paths, methods, responses, x-amazon-apigateway-integration) are the
    same in both, so the document is handed over as is, labelled OpenAPI 3.
  - REST API import: moto requires `info.description`, which API Gateway does not.
  - WebSocket API: moto has no apigatewayv2 CreateDeployment. Here it checks the API exists
    and has routes (as API Gateway does) and returns a deployment id.

    python -m infra.emulator -H 127.0.0.1 -p 5000
"""

from __future__ import annotations

import json
import sys
import uuid
from typing import Any

from moto.apigateway.models import APIGatewayBackend
from moto.apigatewayv2 import urls as v2_urls
from moto.apigatewayv2.responses import ApiGatewayV2Response

from infra.moto_cloudformation import patch_cloudformation

_import_rest_api = APIGatewayBackend.import_rest_api
_put_rest_api = APIGatewayBackend.put_rest_api


def _as_openapi3(api_doc: dict[str, Any]) -> dict[str, Any]:
    if "swagger" not in api_doc:
        return api_doc
    return {key: value for key, value in api_doc.items() if key != "swagger"} | {"openapi": "3.0.1"}


def import_rest_api(self: Any, api_doc: dict[str, Any], fail_on_warnings: bool) -> Any:
    info = {"description": "", **api_doc.get("info", {})}
    return _import_rest_api(self, {**api_doc, "info": info}, fail_on_warnings)


def put_rest_api(
    self: Any, function_id: str, api_doc: dict[str, Any], *args: Any, **kw: Any
) -> Any:
    return _put_rest_api(self, function_id, _as_openapi3(api_doc), *args, **kw)


def create_deployment(self: Any) -> tuple[int, dict[str, str], str]:
    api = self.apigatewayv2_backend.get_api(self.path.split("/")[-2])
    if not api.routes:
        return 400, {}, json.dumps({"message": "the API has no routes to deploy"})
    body = {"deploymentId": uuid.uuid4().hex[:6], "deploymentStatus": "DEPLOYED"}
    return 201, {}, json.dumps(body)


def install() -> None:
    patch_cloudformation()
    APIGatewayBackend.import_rest_api = import_rest_api  # type: ignore[method-assign]
    APIGatewayBackend.put_rest_api = put_rest_api  # type: ignore[method-assign]
    ApiGatewayV2Response.create_deployment = create_deployment  # type: ignore[attr-defined]
    v2_urls.url_paths["{0}/v2/apis/(?P<api_id>[^/]+)/deployments$"] = ApiGatewayV2Response.dispatch


if __name__ == "__main__":
    install()
    from moto.server import main

    main(sys.argv[1:])
