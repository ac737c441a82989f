"""swagger.json for a service (contract section 5.4), from inference-schema when used."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

VERSIONS = {"2": "2", "2.0": "2", "3": "3.0", "3.0": "3.0", "3.1": "3.1"}
_ANY = {"type": "object", "example": {}}
_ERROR = {"type": "object", "properties": {"message": {"type": "string"}}}


def _schemas(
    schema_fn: Callable[..., Any] | None,
) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    if schema_fn is None:
        return _ANY, _ANY, ["2.0", "3.0", "3.1"]
    from inference_schema import schema_util

    return (
        schema_util.get_input_schema(schema_fn) or _ANY,
        schema_util.get_output_schema(schema_fn) or _ANY,
        list(schema_util.get_supported_versions(schema_fn)),
    )


def swagger_document(
    schema_fn: Callable[..., Any] | None, version: str, service: str
) -> dict[str, Any] | None:
    """The document for ``version`` (2, 3, 3.1), or None if it cannot be given."""
    wanted = VERSIONS.get(version)
    if wanted is None:
        return None
    inputs, outputs, supported = _schemas(schema_fn)
    if wanted == "2" and "2.0" not in supported:
        return None
    title = os.environ.get("SERVICE_NAME", service)
    info = {
        "title": title,
        "description": f"API specification for {title}",
        "version": os.environ.get("SERVICE_VERSION", "1.0"),
    }
    prefix = os.environ.get("SERVICE_PATH_PREFIX", "")
    if wanted == "2":
        return _swagger2(info, prefix, inputs, outputs)
    return _openapi3(wanted, info, prefix, inputs, outputs)


def _operation(body: dict[str, Any], ok: dict[str, Any], error: dict[str, Any]) -> dict[str, Any]:
    return {
        "post": {
            "operationId": "RunMLService",
            "description": "Run web service's model and get the prediction output",
            "security": [{"Bearer": []}],
            **body,
            "responses": {
                "200": {"description": "Success", **ok},
                "default": {"description": "Failure", **error},
            },
        }
    }


def _swagger2(info: dict[str, Any], prefix: str, inputs: Any, outputs: Any) -> dict[str, Any]:
    def ref(name: str) -> dict[str, Any]:
        return {"schema": {"$ref": f"#/definitions/{name}"}}

    body = {"parameters": [{"name": "serviceInputPayload", "in": "body", **ref("ServiceInput")}]}
    return {
        "swagger": "2.0",
        "info": info,
        "schemes": ["https"],
        "consumes": ["application/json"],
        "produces": ["application/json"],
        "securityDefinitions": {
            "Bearer": {"type": "apiKey", "name": "Authorization", "in": "header"}
        },
        "paths": {
            f"{prefix}/": {
                "get": {
                    "operationId": "ServiceHealthCheck",
                    "responses": {"200": {"description": "Healthy"}},
                }
            },
            f"{prefix}/score": _operation(body, ref("ServiceOutput"), ref("ErrorResponse")),
        },
        "definitions": {"ServiceInput": inputs, "ServiceOutput": outputs, "ErrorResponse": _ERROR},
    }


def _openapi3(
    version: str, info: dict[str, Any], prefix: str, inputs: Any, outputs: Any
) -> dict[str, Any]:
    def content(name: str) -> dict[str, Any]:
        return {
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}
        }

    return {
        "openapi": "3.1.0" if version == "3.1" else "3.0.1",
        "info": info,
        "paths": {
            f"{prefix}/": {
                "get": {
                    "operationId": "ServiceHealthCheck",
                    "responses": {"200": {"description": "Healthy"}},
                }
            },
            f"{prefix}/score": _operation(
                {"requestBody": content("ServiceInput")},
                content("ServiceOutput"),
                content("ErrorResponse"),
            ),
        },
        "components": {
            "securitySchemes": {
                "Bearer": {"type": "apiKey", "name": "Authorization", "in": "header"}
            },
            "schemas": {"ServiceInput": inputs, "ServiceOutput": outputs, "ErrorResponse": _ERROR},
        },
    }
