"""One module per resource, each an ``APIRouter`` mounted by :func:`maomao.api.app.create_app`."""
