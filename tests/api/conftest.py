"""Clients of the API: in process over the test's depot, or the real `neurodepot serve`.

In process, the operator is a client on loopback; the anonymous caller comes from a
documentation address (TEST-NET-3), which the policy treats as a remote, signed-out caller.
Those tests are async on asyncio through anyio's pytest plugin (`pytest.mark.anyio`).
"""

import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from neurodepot.api.app import create_app
from neurodepot.depot.folder import Depot


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def api_client(depot: Depot, host: str, **headers: str) -> httpx.AsyncClient:
    """A client of a new app over `depot`, from `host`, sending `headers`; use `async with`."""
    transport = httpx.ASGITransport(app=create_app(depot), client=(host, 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver", headers=headers)


def caller(depot: Depot, secret: str | None) -> httpx.AsyncClient:
    """The bearer of API token `secret` from a remote address; with None, the operator."""
    if secret is None:
        return api_client(depot, "127.0.0.1")
    return api_client(depot, "192.0.2.8", Authorization=f"Bearer {secret}")


@pytest.fixture
async def operator_client(depot: Depot) -> AsyncIterator[httpx.AsyncClient]:
    """A client on this machine (loopback): the operator, allowed everything."""
    async with api_client(depot, "127.0.0.1") as client:
        yield client


@pytest.fixture
async def anonymous_client(depot: Depot) -> AsyncIterator[httpx.AsyncClient]:
    """A remote client that has not signed in: denied all but the public paths."""
    async with api_client(depot, "203.0.113.7") as client:
        yield client


@pytest.fixture
def cli_path() -> str:
    """The installed `neurodepot` command of this environment."""
    return str(Path(sys.executable).with_name("neurodepot"))


@pytest.fixture
def initialised_depot(tmp_path: Path, depot_env: dict[str, str], cli_path: str) -> Path:
    """A depot folder made by `neurodepot init`, for tests that run the command-line server."""
    root = tmp_path / "served-depot"
    subprocess.run(
        [cli_path, "init", str(root)], env=depot_env, check=True, capture_output=True, timeout=120
    )
    return root


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def port() -> int:
    return free_port()
