"""A depot writer run as its own process, so that tests can kill it at chosen moments.

Usage: `python writer_process.py ROOT MODE PATH [SOURCE]`, with the depot's database in
`NEURODEPOT_DATABASE_URL` as the CLI would see it. It adds a file to resource `R` of project `p`
and prints the outcome as JSON. Modes:

- `slow`: streams an endless content slowly (a test kills it mid-write);
- `kill-after-place`: kills itself with SIGKILL once the blob is renamed into place, before any
  database row is written;
- `kill-before-commit`: kills itself once the rows are flushed but not committed;
- `file`: adds the local file SOURCE; when `GO_FILE` is set, it first creates `READY_FILE` and
  waits for `GO_FILE` to appear, so that several writers start together.
"""

import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from neurodepot.catalog import resources
from neurodepot.catalog.target import Target
from neurodepot.depot.blobstore import BlobStore
from neurodepot.depot.folder import open_depot

START_TIMEOUT_SECONDS = 30


def endless_slow_chunks() -> Iterator[bytes]:
    for index in range(100_000):
        yield bytes([index % 251]) * 65536
        time.sleep(0.002)


def kill_self_after(function: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = function(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)
        return result

    return wrapper


def wait_for_go() -> None:
    go = os.environ.get("GO_FILE")
    if go is None:
        return
    Path(os.environ["READY_FILE"]).touch()
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not Path(go).exists():
        if time.monotonic() > deadline:
            sys.exit("timed out waiting for the go signal")
        time.sleep(0.002)


def main() -> None:
    root, mode, path = sys.argv[1:4]
    depot = open_depot(Path(root))
    target = Target("p")
    if mode == "kill-after-place":
        BlobStore._place = kill_self_after(BlobStore._place)
    elif mode == "kill-before-commit":
        resources.record_file = kill_self_after(resources.record_file)
    if mode == "file":
        wait_for_go()
        stored = resources.add_local_file(depot, target, "R", Path(sys.argv[4]), path)
    elif mode == "slow":
        stored = resources.add_file(depot, target, "R", path, endless_slow_chunks())
    else:
        stored = resources.add_file(depot, target, "R", path, [b"content of a killed writer"])
    print(json.dumps({"outcome": stored.outcome, "digest": stored.file.digest}))
    depot.close()


if __name__ == "__main__":
    main()
