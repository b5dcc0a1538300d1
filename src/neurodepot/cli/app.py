"""The `neurodepot` command: global options, the verb groups, and the one error translator."""

import os
import sys
from pathlib import Path
from typing import Annotated

import click
import typer

from neurodepot import __version__
from neurodepot.cli import (
    audit,
    bids,
    consent,
    deid,
    depot_commands,
    dua,
    gdpr,
    hierarchy,
    jobs,
    prearchive,
    project,
    resource,
    serve,
    share,
    users,
)
from neurodepot.cli.state import CliState
from neurodepot.errors import (
    Conflict,
    Denied,
    Invalid,
    NeurodepotError,
    NotFound,
    Unavailable,
)

EXIT_CODES = {Invalid: 2, NotFound: 3, Conflict: 4, Denied: 5, Unavailable: 6}
INTERNAL_ERROR = 70

app = typer.Typer(
    name="neurodepot",
    help="A self-hosted open-data archive for brain-imaging research.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"neurodepot {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    root_dir: Annotated[
        Path | None,
        typer.Option(
            "--root", envvar="NEURODEPOT_ROOT", help="The depot folder (default: current folder)."
        ),
    ] = None,
    no_migrate: Annotated[
        bool,
        typer.Option("--no-migrate", help="Refuse to open a depot that needs migrations."),
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show version.")
    ] = False,
) -> None:
    ctx.obj = CliState(root=root_dir, auto_migrate=False if no_migrate else None)


app.command()(depot_commands.init)
app.command()(depot_commands.migrate)
app.command()(depot_commands.fsck)
app.command()(serve.serve)
app.command()(serve.demo)
app.add_typer(project.app, name="project")
app.add_typer(hierarchy.subject_app, name="subject")
app.add_typer(hierarchy.session_app, name="session")
app.add_typer(hierarchy.scan_app, name="scan")
app.add_typer(resource.app, name="resource")
app.command()(jobs.run)
app.command()(jobs.pipelines)
app.add_typer(jobs.app, name="jobs")
app.add_typer(prearchive.app, name="prearchive")
app.command("import")(prearchive.import_)
project.app.command("archive-mode")(prearchive.archive_mode)
app.command()(bids.convert)
app.command("export-bids")(bids.export_bids)
app.add_typer(bids.app, name="bids")
app.add_typer(audit.app, name="audit")
app.add_typer(users.app, name="user")
project.app.command("access")(users.project_access)
app.add_typer(deid.app, name="deid")
app.command()(deid.check)
app.add_typer(deid.linkage_app, name="linkage")
app.add_typer(deid.override_app, name="override")
app.add_typer(consent.app, name="consent")
app.command()(share.share)
app.add_typer(dua.app, name="dua")
app.add_typer(gdpr.app, name="gdpr")


def _say(line: str) -> None:
    """One unwrapped line on stderr, whatever the terminal width."""
    sys.stderr.write(" ".join(line.split()) + "\n")
    sys.stderr.flush()


def exit_code_for(error: NeurodepotError) -> int:
    for kind, code in EXIT_CODES.items():
        if isinstance(error, kind):
            return code
    return 1


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every failure becomes one line on stderr and a non-zero exit code."""
    command = typer.main.get_command(app)
    try:
        returned = command.main(args=argv, prog_name="neurodepot", standalone_mode=False)
    except NeurodepotError as error:
        _say(f"error: {error.message}")
        return exit_code_for(error)
    except click.exceptions.Abort:
        _say("aborted")
        return 130
    except click.ClickException as error:
        error.show()
        return error.exit_code
    except click.exceptions.Exit as done:
        return done.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # the last line of defence: still one line, not a traceback
        if os.environ.get("NEURODEPOT_DEBUG"):
            raise
        _say(
            f"internal error: {type(error).__name__}: {error} "
            "(set NEURODEPOT_DEBUG=1 to see the traceback, and please report it)"
        )
        return INTERNAL_ERROR
    return returned if isinstance(returned, int) else 0


def entry_point() -> None:
    sys.exit(main())
