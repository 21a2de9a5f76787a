"""The WSGI middleware: :mod:`pdp_client.wsgi`, under pdp's name."""

from pdp_client.wsgi import PdpMiddleware, http_check  # noqa: F401

__all__ = ["PdpMiddleware", "http_check"]
