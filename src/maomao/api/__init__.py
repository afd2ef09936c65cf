"""The node's HTTP API (FastAPI): :func:`create_app` over an :class:`ApiContext`."""

from maomao.api.app import create_app
from maomao.api.context import ApiContext, DaemonView

__all__ = ["ApiContext", "DaemonView", "create_app"]
