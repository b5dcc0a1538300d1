"""Shared by the consent tests: `neurodepot` commands run in this process on the test depot."""

import io
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from neurodepot.cli.app import main
from neurodepot.depot.folder import Depot


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        """Standard output with the terminal's line wrapping undone, for matching sentences."""
        return " ".join(self.out.split())

    def json(self) -> Any:
        assert self.code == 0, (self.code, self.err)
        return json.loads(self.out)


RunCli = Callable[..., Ran]


@pytest.fixture
def run_cli(
    depot: Depot,
    depot_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> RunCli:
    """`neurodepot --root <the test's depot> ARGS…` in this process, on the test's database;
    `stdin=` gives what the command reads from standard input."""
    for name in [n for n in os.environ if n.startswith("NEURODEPOT_")]:
        monkeypatch.delenv(name)
    for name, value in depot_env.items():
        if name.startswith("NEURODEPOT_"):
            monkeypatch.setenv(name, value)

    def run(*args: str, stdin: bytes | None = None) -> Ran:
        capsys.readouterr()
        if stdin is not None:
            monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        code = main(["--root", str(depot.settings.root), *args])
        captured = capsys.readouterr()
        return Ran(code, captured.out, captured.err)

    return run
