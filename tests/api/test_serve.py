"""`neurodepot serve` listens on this machine only; others reach it through a reverse proxy."""

import subprocess
from pathlib import Path

import pytest


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "example.org"])
def test_non_loopback_address_is_refused_in_one_line(
    cli_path: str, initialised_depot: Path, depot_env: dict[str, str], port: int, host: str
):
    command = [cli_path, "--root", str(initialised_depot), "serve", "--host", host]
    # Were the address accepted, the server would run until the timeout fails the test.
    result = subprocess.run(
        [*command, "--port", str(port)], env=depot_env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: refusing to listen on {host}: ")
    assert "127.0.0.1" in lines[0]
    assert "Traceback" not in result.stderr
