"""OpenAPI schemas of the records the routes return, built from the records themselves.

The service records are msgspec Structs (and a few dataclasses); their JSON schemas come
from :func:`msgspec.json.schema_components`, never from hand-copied pydantic models, so
the document cannot drift from what the routes send. Routes answer with :func:`reply`
(msgspec encodes several times faster than FastAPI's pydantic path, which a 1,000-row
listing feels) and declare their answer with :func:`ok`.
"""

from __future__ import annotations

from typing import Any

import msgspec
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response

from maomao.api.errors import ERROR_SCHEMA

REF_TEMPLATE = "#/components/schemas/{name}"
JSON = "application/json"

#: Every component a route referred to, by name (filled as the routes are declared).
_components: dict[str, Any] = {"Error": ERROR_SCHEMA}

_ERROR_REF = {"$ref": REF_TEMPLATE.format(name="Error")}
_ERRORS = {
    400: "bad request",
    401: "no or wrong bearer token (state changes only)",
    403: "not the owner, permission denied, or a path outside the publish roots",
    404: "no such thing",
    409: "conflict: changed since read, already exists, or the client should run it itself",
    422: "invalid input (a name rule, a value, the request's shape)",
    424: "the run this request made failed",
    500: "the node's own setup is unusable",
    503: "etcd or git unreachable, busy, or the node is stopping",
}


def schema_of(tp: Any) -> dict[str, Any]:
    """The JSON schema of *tp* (a ``$ref`` for a record), its components remembered."""
    (schema,), components = msgspec.json.schema_components([tp], ref_template=REF_TEMPLATE)
    _components.update(components)
    return schema  # type: ignore[no-any-return]


def ok(tp: Any, status: int = 200, description: str = "") -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route answering *tp* with *status*, and every error shape."""
    responses: dict[int | str, dict[str, Any]] = {
        code: {"description": text, "content": {JSON: {"schema": _ERROR_REF}}}
        for code, text in _ERRORS.items()
    }
    responses[status] = {"description": description or "OK", "content": {JSON: {"schema": schema_of(tp)}}}
    return responses


def errors_only() -> dict[int | str, dict[str, Any]]:
    """Every error shape (for a route whose success answer is declared otherwise)."""
    return {
        code: {"description": text, "content": {JSON: {"schema": _ERROR_REF}}}
        for code, text in _ERRORS.items()
    }


def reply(value: Any, status: int = 200) -> Response:
    """*value* (a record, a dataclass, a plain value) as a JSON response."""
    return Response(msgspec.json.encode(value), status_code=status, media_type=JSON)


def install(app: FastAPI) -> None:
    """Serve the OpenAPI document of *app* with the records' components merged in."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        doc = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        for name, schema in _components.items():
            schemas.setdefault(name, schema)
        # FastAPI's default 422 shape is not ours: every route declares the Error shape instead
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
