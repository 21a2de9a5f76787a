"""The example services' tests share the client tests' pdp."""

from tests.client.conftest import pdp_server  # noqa: F401
