"""The real `neurodepot` command in subprocesses: `serve` with its DICOM listener, and one-offs.

`serve` runs in a session of its own, so that whatever it starts (Dask's worker processes) is
stopped with it, even after it was killed with SIGKILL.
"""

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.ingest_network.polling import wait_for
from tests.ingest_network.senders import HOST, echoscu

COMMAND = str(Path(sys.executable).with_name("neurodepot"))
CLI_TIMEOUT_S = 120
STARTUP_S = 60
STOP_S = 30


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def neurodepot(
    root: Path, env: dict[str, str], *args: str, expect: int | None = 0
) -> subprocess.CompletedProcess[str]:
    """Run one `neurodepot` command on the depot at `root`; check its exit code unless None."""
    completed = subprocess.run(
        [COMMAND, "--root", str(root), *args],
        capture_output=True,
        text=True,
        env=dict(env, COLUMNS="200"),
        timeout=CLI_TIMEOUT_S,
        check=False,
    )
    if expect is not None:
        assert completed.returncode == expect, completed.stdout + completed.stderr
    return completed


def neurodepot_json(root: Path, env: dict[str, str], *args: str) -> Any:
    return json.loads(neurodepot(root, env, *args, "--json").stdout)


@dataclass(frozen=True)
class Server:
    """A running `neurodepot serve`: its process (leader of its own group) and DICOM port."""

    process: "subprocess.Popen[bytes]"
    dicom_port: int
    log: Path

    def kill(self) -> None:
        """SIGKILL the server process only, as a crash would; its children are left alone."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=STOP_S)


@contextmanager
def serving(root: Path, env: dict[str, str], log: Path, dicom_port: int) -> Iterator[Server]:
    """`neurodepot serve` on loopback with a 1 s quiet period; yields once C-ECHO is answered.

    Whatever is left of its process group at the end is stopped: SIGTERM for the server, then
    SIGKILL for any process of the group still there.
    """
    serve_env = dict(
        env,
        NEURODEPOT_DICOM_PORT=str(dicom_port),
        NEURODEPOT_PREARCHIVE_QUIET_SECONDS="1",
        NEURODEPOT_DASK_WORKERS="1",
    )
    with log.open("ab") as output:
        process = subprocess.Popen(
            [COMMAND, "--root", str(root), "serve", "--port", str(free_port())],
            env=serve_env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(process, dicom_port, log)
    try:
        wait_for(
            lambda: (process.poll(), echoscu(dicom_port).returncode),
            lambda seen: seen[0] is not None or seen[1] == 0,
            STARTUP_S,
            "serve answering C-ECHO",
        )
        if process.poll() is not None:
            pytest.fail(f"serve exited with {process.returncode}: {log.read_text()}")
        yield server
    finally:
        _stop(process)


def group_alive(server: Server) -> bool:
    """Whether any process of the server's group (the server or a child) still runs."""
    try:
        os.killpg(server.process.pid, 0)
    except ProcessLookupError:
        return False
    return True


def group_size(server: Server) -> int:
    """How many processes of the server's group run (Linux: read from /proc)."""
    count = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended while we looked
        count += int(fields[2]) == server.process.pid  # fields: state, ppid, pgrp, ...
    return count


def _stop(process: "subprocess.Popen[bytes]") -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_S)
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
