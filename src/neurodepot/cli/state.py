"""What every command shares: which depot, and how to print."""

from dataclasses import dataclass
from pathlib import Path

import typer

from neurodepot.config import default_root
from neurodepot.depot.folder import Depot, open_depot


@dataclass
class CliState:
    root: Path | None = None
    auto_migrate: bool | None = None

    def depot_root(self) -> Path:
        return self.root if self.root is not None else default_root()

    def open(self) -> Depot:
        return open_depot(self.depot_root(), auto_migrate=self.auto_migrate)


def state(ctx: typer.Context) -> CliState:
    found = ctx.find_object(CliState)
    return found if found is not None else CliState()


def cli_actor() -> str:
    """Who the audit log names for a command run here: `cli:` and the system user."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"
