"""The bearer token every state-changing request needs, and the refusal of new work
while the node stops.

GET needs no token: the server listens on loopback and on a 0600 socket in the 0700
home only (reach it from elsewhere through an ssh tunnel).
"""

from __future__ import annotations

import secrets

from fastapi.security import HTTPBearer
from starlette.types import ASGIApp, Receive, Scope, Send

from maomao.api.context import ApiContext
from maomao.api.errors import ApiError, error_response
from maomao.errors import MaoError
from maomao.services import apitoken
from maomao.services.runtasks import NodeStopping

#: Declares the token in the OpenAPI document (the checking is :class:`TokenGate`'s).
bearer = HTTPBearer(auto_error=False, description="the node's token: HOME/api.token (`mao api token`)")

CHANGES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def unauthorized(message: str) -> ApiError:
    return ApiError(401, "Unauthorized", message, {"WWW-Authenticate": "Bearer"})


def refusal(ctx: ApiContext, authorization: str | None) -> MaoError | None:
    """Why a state change with this ``Authorization`` header is refused, if it is: no or
    a wrong token (401), or the node is stopping (503)."""
    scheme, _, given = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return unauthorized("this request changes state: send Authorization: Bearer <HOME/api.token>")
    try:
        expected = apitoken.token(ctx.config)
    except MaoError as exc:
        return exc
    if not secrets.compare_digest(given.strip().encode(), expected.encode()):
        return unauthorized("the bearer token is not this node's (see `mao api token`)")
    if not ctx.accepting:
        return NodeStopping()
    return None


class TokenGate:
    """ASGI middleware: a state-changing request is refused before anything reads its
    body, so that without the token nothing about the request is even parsed."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in CHANGES:
            authorization = None
            for name, value in scope["headers"]:
                if name == b"authorization":
                    authorization = value.decode("latin-1")
                    break
            error = refusal(scope["app"].state.ctx, authorization)
            if error is not None:
                await error_response(error)(scope, receive, send)
                return
        await self.app(scope, receive, send)
