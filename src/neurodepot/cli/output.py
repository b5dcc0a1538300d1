"""Printing results: Rich tables for people, JSON for scripts (`--json`)."""

import dataclasses
import json
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import PurePath
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]

console = Console()
# Progress bars go to stderr, so that stdout holds only the result (and nothing for a pipe).
progress_console = Console(stderr=True)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((_plain(v) for v in value), key=str)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    return value


def print_json(value: Any) -> None:
    typer.echo(json.dumps(_plain(value), indent=2, sort_keys=True))


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    console.print(table)


def print_fields(title: str, fields: dict[str, Any]) -> None:
    console.print(f"[bold]{title}[/bold]")
    for key, value in fields.items():
        console.print(f"  {key}: {'' if value is None else value}")


def show(
    as_json: bool, value: Any, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """Print `value` as JSON, or the given table for people."""
    if as_json:
        print_json(value)
    else:
        print_table(title, columns, rows)


def done(as_json: bool, value: Any, message: str) -> None:
    """Report a completed action: one line for people, the result as JSON for scripts."""
    if as_json:
        print_json(value)
    else:
        console.print(message)


def human_size(size: int) -> str:
    amount = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if amount < 1024 or unit == "TiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{size} B"
