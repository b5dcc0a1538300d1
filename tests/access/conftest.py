"""The access tests share the populated app of the route-enumerating access matrix, and the
CLI runner."""

from tests.cli.conftest import cli  # noqa: F401
from tests.test_access_matrix import anyio_backend, app  # noqa: F401
