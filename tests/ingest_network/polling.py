"""Waiting for something another thread or process does: bounded in time and in tries."""

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


def wait_for(probe: Callable[[], T], done: Callable[[T], bool], timeout_s: float, what: str) -> T:
    """Call `probe` every 0.1 s until `done(result)`; fail naming `what` and the last result."""
    interval_s = 0.1
    deadline = time.monotonic() + timeout_s
    for _ in range(int(timeout_s / interval_s) + 1):
        result = probe()
        if done(result):
            return result
        if time.monotonic() >= deadline:
            break
        time.sleep(interval_s)
    pytest.fail(f"{what}: not within {timeout_s} s; last seen {result!r}")
