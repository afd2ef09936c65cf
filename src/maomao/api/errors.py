"""The one place where errors become HTTP responses, all in one JSON shape:

``{"error": "<TypeName>", "message": "…", "status": N, …the error's own data}``

A :class:`~maomao.errors.MaoError` is mapped by its class (the nearest listed base
wins; otherwise its exit code decides: unreachable 503, usage 422, else 400). FastAPI's
request validation errors, unknown routes and methods, and a refused token take the same
shape. A bug answers 500 in that shape too, without a traceback (it is logged).
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from maomao.errors import (
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    AlreadyExists,
    ConfigError,
    Conflict,
    InvalidName,
    InvalidSetting,
    InvalidValue,
    LeaseLost,
    LockTimeout,
    MaoError,
    NodeError,
    NotFound,
    NotOwner,
    PermissionDenied,
    Unavailable,
    UsageError,
)
from maomao.gitstore.errors import CommitNotFound, NotARepository, PushRejected
from maomao.manifest import ManifestError
from maomao.runners.base import RunnerUnavailable
from maomao.services.datasets import DigestMismatch
from maomao.services.runs import RunFailed
from maomao.services.runtasks import NodeStopping

log = logging.getLogger(__name__)

#: HTTP status of each error class; a subclass takes its nearest listed base's.
STATUS: dict[type[MaoError], int] = {
    NotFound: 404,
    CommitNotFound: 404,
    InvalidName: 422,
    InvalidValue: 422,
    UsageError: 422,
    InvalidSetting: 422,
    ManifestError: 422,
    NotARepository: 422,
    NotOwner: 403,
    PermissionDenied: 403,
    Conflict: 409,
    AlreadyExists: 409,
    PushRejected: 409,
    DigestMismatch: 409,
    RunFailed: 424,  # the request was fine; the tool it ran failed
    Unavailable: 503,
    LockTimeout: 503,  # busy now: the same request later may well succeed
    LeaseLost: 503,
    NodeStopping: 503,
    NodeError: 503,
    RunnerUnavailable: 503,
    ConfigError: 500,  # the node's own home or config is unusable: not the client's fault
}

#: The JSON schema of every error response (OpenAPI components name it ``Error``).
ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "properties": {
        "error": {"type": "string", "description": "the error's type name"},
        "message": {"type": "string", "description": "one line saying what went wrong"},
        "status": {"type": "integer", "description": "the HTTP status, repeated"},
    },
    "required": ["error", "message", "status"],
    "additionalProperties": True,
}

_PLAIN = (str, int, float, bool)


class ApiError(MaoError):
    """An error of the HTTP layer itself, named by *name* in the error shape."""

    def __init__(self, status: int, name: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.name = name
        self.headers = headers or {}


def status_of(exc: MaoError) -> int:
    """The HTTP status that answers *exc*."""
    if isinstance(exc, ApiError):
        return exc.status
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]  # type: ignore[index]
    if exc.exit_code == EXIT_UNREACHABLE:
        return 503
    if exc.exit_code == EXIT_USAGE:
        return 422
    return 400


def error_body(exc: MaoError) -> dict[str, Any]:
    """The error shape of *exc*: its name, message, status and its own data."""
    status = status_of(exc)
    name = exc.name if isinstance(exc, ApiError) else type(exc).__name__
    body: dict[str, Any] = {}
    own = ("message", "status", "name", "headers") if isinstance(exc, ApiError) else ("message", "status")
    for attr, value in vars(exc).items():
        if attr.startswith("_") or attr in own:
            continue
        if isinstance(value, _PLAIN) or value is None:
            body[attr] = value
        elif isinstance(value, tuple | list) and all(isinstance(v, _PLAIN) for v in value):
            body[attr] = list(value)
    if isinstance(exc, RunFailed):
        body["run"] = exc.record.to_dict()
    body.update(error=name, message=exc.message, status=status, exit_code=exc.exit_code)
    return body


def error_response(exc: MaoError) -> Response:
    body = error_body(exc)
    headers = dict(exc.headers) if isinstance(exc, ApiError) else {}
    return Response(msgspec.json.encode(body), status_code=body["status"], media_type="application/json",
                    headers=headers)  # fmt: skip


def _validation_message(errors: list[dict[str, Any]]) -> str:
    parts = []
    for err in errors[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()))
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "; ".join(parts) + more


def install(app: FastAPI) -> None:
    """Answer every error of *app* in the one shape."""

    async def mao_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, MaoError)
        if status_of(exc) >= 500 and not isinstance(exc, Unavailable | NodeStopping):
            log.warning("%s %s: %s", request.method, request.url.path, exc)
        return error_response(exc)

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {
                "loc": [str(p) for p in err.get("loc", ())],
                "msg": str(err.get("msg", "")),
                "type": str(err.get("type", "")),
            }
            for err in exc.errors()
        ]
        body = {
            "error": "InvalidValue",
            "message": _validation_message(errors),
            "status": 422,
            "errors": errors,
        }
        return Response(msgspec.json.encode(body), status_code=422, media_type="application/json")

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        names = {404: "NotFound", 405: "MethodNotAllowed", 401: "Unauthorized"}
        name = names.get(exc.status_code, "HTTPError")
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such resource: {request.method} {request.url.path}"
        elif exc.status_code == 405:
            message = f"method {request.method} not allowed on {request.url.path}"
        return error_response(ApiError(exc.status_code, name, message, dict(exc.headers or {})))

    async def bug(request: Request, exc: Exception) -> Response:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return error_response(ApiError(500, "InternalError", f"internal error: {type(exc).__name__}"))

    app.add_exception_handler(MaoError, mao_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, bug)
