"""The bearer token every state-changing request needs, and the refusal of new work
while the node stops.

GET needs no token: the server listens on loopback and on a 0600 socket in the 0700
home only (reach it from elsewhere through an ssh tunnel).
"""

from __future__ import annotations

import secrets

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from maomao.api.errors import ApiError
from maomao.services import apitoken
from maomao.services.runtasks import NodeStopping

bearer = HTTPBearer(auto_error=False, description="the node's token: HOME/api.token (`mao api token`)")

_CHANGES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def unauthorized(message: str) -> ApiError:
    return ApiError(401, "Unauthorized", message, {"WWW-Authenticate": "Bearer"})


async def guard(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
    """Refuse a state change without the token (401), or while the node stops (503)."""
    if request.method not in _CHANGES:
        return
    ctx = request.app.state.ctx
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise unauthorized("this request changes state: send Authorization: Bearer <HOME/api.token>")
    expected = apitoken.token(ctx.config)
    if not secrets.compare_digest(credentials.credentials.encode(), expected.encode()):
        raise unauthorized("the bearer token is not this node's (see `mao api token`)")
    if not ctx.accepting:
        raise NodeStopping()
