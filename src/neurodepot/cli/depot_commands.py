"""`init`, `migrate` and `fsck`: creating a depot and keeping it healthy."""

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from neurodepot.cli.output import JsonFlag, console, done, print_json
from neurodepot.cli.state import state
from neurodepot.config import default_root, load_settings
from neurodepot.depot import schema
from neurodepot.depot.database import create_depot_engine
from neurodepot.depot.folder import init_depot
from neurodepot.depot.fsck import fsck as run_fsck


def init(
    ctx: typer.Context,
    directory: Annotated[
        Path | None, typer.Argument(help="Folder to create (default: --root or the current one).")
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(help="Keep metadata in this database (e.g. PostgreSQL) instead of SQLite."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a new depot folder with its database."""
    root = directory or state(ctx).root or default_root()
    with init_depot(root, database_url=database_url) as depot:
        info = {
            "root": str(depot.settings.root),
            "database": depot.engine.url.render_as_string(hide_password=True),
            "schema": schema.current_revision(depot.engine),
        }
    done(as_json, info, f"Created depot {info['root']} (database {info['database']})")


def migrate(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Apply pending schema migrations to the depot's database."""
    settings = load_settings(state(ctx).depot_root())
    engine = create_depot_engine(settings.database_url)
    try:
        applied = schema.ensure_current(engine, auto_migrate=True)
        current = schema.current_revision(engine)
    finally:
        engine.dispose()
    message = (
        f"Applied {len(applied)} migration(s): {', '.join(applied)}; schema is at {current}"
        if applied
        else f"Schema is up to date ({current})"
    )
    done(as_json, {"applied": applied, "schema": current}, message)


def fsck(
    ctx: typer.Context,
    repair: Annotated[
        bool, typer.Option("--repair", help="Remove orphaned blobs, rows and temporary files.")
    ] = False,
    quick: Annotated[
        bool, typer.Option("--quick", help="Compare sizes only; do not re-hash every blob.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Check that the database and the blob store agree; exit 1 if anything is wrong."""
    with (
        state(ctx).open() as depot,
        Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            disable=as_json,
        ) as bar,
    ):
        task = bar.add_task("Checking blobs", total=None)
        report = run_fsck(
            depot.engine,
            depot.blobs,
            verify_content=not quick,
            repair=repair,
            progress=lambda done_, total: bar.update(task, completed=done_, total=total),
        )
    if as_json:
        print_json(report)
    else:
        if report.repaired is not None:
            console.print(
                f"Repaired: removed {len(report.repaired.rows)} unreferenced blob row(s), "
                f"{len(report.repaired.files)} blob file(s), "
                f"{report.repaired.temporary_files} temporary file(s)"
            )
        for problem in report.problems:
            console.print(f"[red]{problem.kind}[/red] {problem.digest}: {problem.detail}")
        status = "OK" if report.ok else f"{len(report.problems)} problem(s)"
        console.print(f"Checked {report.checked_blobs} blob(s): {status}")
    if not report.ok:
        raise typer.Exit(1)
