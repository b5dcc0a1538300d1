import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

CLI_TIMEOUT_S = 120


class CliResult:
    def __init__(self, completed: subprocess.CompletedProcess[str]) -> None:
        self.code = completed.returncode
        self.out = completed.stdout
        self.err = completed.stderr


Run = Callable[..., CliResult]


@pytest.fixture
def cli(tmp_path: Path, depot_env: dict[str, str]) -> Run:
    """Run `neurodepot` in a subprocess against `tmp_path / "depot"` on the test's database."""

    def run(
        *args: str, root: Path | None = None, extra_env: dict[str, str] | None = None
    ) -> CliResult:
        env = dict(depot_env, NEURODEPOT_ROOT=str(root or tmp_path / "depot"), COLUMNS="200")
        env.update(extra_env or {})
        completed = subprocess.run(
            [sys.executable, "-m", "neurodepot", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=CLI_TIMEOUT_S,
            check=False,
        )
        return CliResult(completed)

    return run
