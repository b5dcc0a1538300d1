"""The real `neurodepot serve` in its own process, for tests that need a live server."""

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

STARTUP_SECONDS = 30
STOP_SECONDS = 30


def wait_until_healthy(server: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"server exited with {server.returncode}: {log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"server not healthy within {STARTUP_SECONDS} s: {log.read_text()}")


@contextmanager
def serving(
    cli_path: str, root: Path, env: dict[str, str], port: int, log: Path
) -> Iterator[tuple[str, int]]:
    """Run `neurodepot serve` on 127.0.0.1:`port`; yield its URL and PID; always stop it."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            [cli_path, "--root", str(root), "serve", "--port", str(port)],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until_healthy(process, url, log)
            yield url, process.pid
        finally:
            process.terminate()
            try:
                process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
