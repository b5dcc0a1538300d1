"""`neurodepot audit verify|export`: checking the hash chain and taking the log elsewhere."""

import json
import os
import sys
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer

from neurodepot.access import audit
from neurodepot.cli.output import JsonFlag, print_json
from neurodepot.cli.state import state
from neurodepot.errors import Invalid

app = typer.Typer(help="Check and export the tamper-evident audit log.", no_args_is_help=True)


def _parse_anchor(text: str) -> tuple[int, str]:
    row, _, digest = text.partition(":")
    if not row.isdigit() or len(digest) != 64 or not _is_hex(digest):
        raise Invalid(f"--anchor {text!r} should be ROW:HASH, e.g. 1234:<64 hex digits>")
    return int(row), digest.lower()


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


def _parse_since(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise Invalid(
            f"--since {text!r} is not an ISO-8601 time such as 2026-01-01T00:00:00Z"
        ) from None


@app.command()
def verify(
    ctx: typer.Context,
    anchor: Annotated[
        str | None,
        typer.Option(
            metavar="ROW:HASH",
            help="A row id and hash noted earlier; rows deleted from the end are then found too.",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Check the hash chain of the audit log; exit 1 naming the first broken row."""
    expected = None if anchor is None else _parse_anchor(anchor)
    with state(ctx).open() as depot, depot.reading() as db:
        result = audit.verify(db, anchor=expected)
    if as_json:
        print_json(result)
    elif result.ok:
        last = f"; last row {result.last_id}, hash {result.last_hash}" if result.checked else ""
        typer.echo(f"audit log intact: {result.checked} event(s){last}")
    else:
        typer.echo(f"audit log broken at row {result.first_broken_id}: {result.reason}")
    if not result.ok:
        raise typer.Exit(1)


@app.command()
def export(
    ctx: typer.Context,
    since: Annotated[
        str | None,
        typer.Option(
            metavar="TIME", help="Only events at or after this time (ISO-8601; no zone means UTC)."
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write to this file (default: standard output)."),
    ] = None,
) -> None:
    """Write audit events as JSON lines, in order; each line's hash can be checked offline."""
    start = None if since is None else _parse_since(since)
    if output is not None and not output.parent.is_dir():
        raise Invalid(f"cannot write {output}: folder {output.parent} does not exist")
    with state(ctx).open() as depot, depot.reading() as db:
        rows = audit.export(db, since=start)
        if output is None:
            _write_lines(rows, sys.stdout)
            sys.stdout.flush()
            return
        count = _write_file(rows, output)
    typer.echo(f"exported {count} event(s) to {output}")


def _write_lines(rows: Iterable[dict[str, Any]], out: TextIO) -> int:
    count = 0
    for row in rows:
        out.write(json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n")
        count += 1
    return count


def _write_file(rows: Iterable[dict[str, Any]], output: Path) -> int:
    """Write through a temporary file beside `output`, renamed into place only when complete."""
    tmp = output.with_name(f".{output.name}.neurodepot-partial")
    try:
        with tmp.open("w", encoding="utf-8") as handle:
            count = _write_lines(rows, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
    return count
