"""The Flask extension: :mod:`pdp_client.flask`, under pdp's name."""

from pdp_client.flask import EXTENSION, PdpFlask, require  # noqa: F401

__all__ = ["EXTENSION", "PdpFlask", "require"]
