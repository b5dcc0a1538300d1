"""`neurodepot consent set|show|withdraw|import`: subjects' consent, one by one or from a CSV.

Domain work lives in `neurodepot.consent.records` and `neurodepot.consent.csv_import`. Every
change adds a record (the history is kept) and is audited; the CLI is the local operator. Free
text (forms, restrictions) is printed escaped, so that it is shown as written.
"""

from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from neurodepot.cli.output import JsonFlag, console, done, print_fields, print_json, show
from neurodepot.cli.state import cli_actor, state
from neurodepot.consent import records
from neurodepot.consent.records import ConsentInfo
from neurodepot.errors import Invalid

app = typer.Typer(
    help="Subjects' consent: set, show, withdraw, import a centre's CSV.", no_args_is_help=True
)

ProjectArg = Annotated[str, typer.Argument(help="Project label.")]
SubjectArg = Annotated[str, typer.Argument(help="Subject label.")]
COLUMNS = ("subject", "level", "form", "version", "given on", "withdrawn on", "restrictions")


def _day(value: str | None, option: str) -> date | None:
    return None if value is None else records.parse_date(value, option)


def _cells(info: ConsentInfo) -> tuple[str, ...]:
    return (
        info.subject,
        info.level,
        escape(info.form),
        escape(info.form_version),
        str(info.given_on or ""),
        str(info.withdrawn_on or ""),
        escape(info.restrictions),
    )


@app.command("set")
def set_consent(
    ctx: typer.Context,
    project: ProjectArg,
    subject: SubjectArg,
    level: Annotated[str, typer.Argument(help="none, internal or open.")],
    form: Annotated[str, typer.Option(help="The consent form's name.")] = "",
    form_version: Annotated[str, typer.Option(help="The form's version.")] = "",
    given_on: Annotated[
        str | None, typer.Option(help="The day consent was given (YYYY-MM-DD).")
    ] = None,
    restrictions: Annotated[
        str, typer.Option(help="What the data must respect, e.g. 'no commercial use'.")
    ] = "",
    as_json: JsonFlag = False,
) -> None:
    """Record a subject's consent (a new record: earlier ones stay in its history)."""
    day = _day(given_on, "--given-on")
    with state(ctx).open() as depot, depot.transaction() as db:
        info = records.set_consent(
            db, cli_actor(), project, subject, level, form, form_version, day, restrictions
        )
    done(as_json, info, f"{subject} in {project}: consent {info.level}")


@app.command("show")
def show_consent(
    ctx: typer.Context,
    project: ProjectArg,
    subject: Annotated[str | None, typer.Argument(help="One subject (default: all).")] = None,
    history: Annotated[
        bool, typer.Option("--history", help="With SUBJECT: every record, oldest first.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Show every subject's current consent, or one subject's (with --history, all records)."""
    if history and subject is None:
        raise Invalid("--history is shown for one subject: give its label after the project")
    with state(ctx).open() as depot, depot.reading() as db:
        if subject is None:
            rows = records.project_consents(db, project)
        else:
            current = records.current_consent(db, project, subject)
            past = records.consent_history(db, project, subject) if history else []
    if subject is None:
        show(as_json, rows, f"Consent in {project}", COLUMNS, [_cells(r) for r in rows])
        return
    if as_json:
        print_json({"current": current, "history": past} if history else current)
        return
    print_fields(
        f"Consent of {subject} in {project}",
        dict(zip(COLUMNS[1:], _cells(current)[1:], strict=True))
        | {"recorded by": escape(current.recorded_by)},
    )
    if history:
        show(
            False,
            past,
            "History",
            ("recorded at", "by", *COLUMNS[1:]),
            [
                (f"{r.recorded_at:%Y-%m-%d %H:%M}", escape(r.recorded_by), *_cells(r)[1:])
                for r in past
            ],
        )


@app.command()
def withdraw(
    ctx: typer.Context,
    project: ProjectArg,
    subject: SubjectArg,
    on: Annotated[
        str | None, typer.Option(help="The day consent was withdrawn (default: today).")
    ] = None,
    note: Annotated[str, typer.Option(help="Why, or how it was received.")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Record that a subject withdrew consent: effective from the next request on."""
    day = _day(on, "--on")
    with state(ctx).open() as depot, depot.transaction() as db:
        info = records.withdraw_consent(db, cli_actor(), project, subject, day, note)
        releases = records.releases_containing(db, project, subject)
    if as_json:
        print_json({"withdrawal": info, "releases": releases})
        return
    console.print(f"{subject} in {project}: consent withdrawn on {info.withdrawn_on}")
    console.print(
        f"  From the next request on, {subject} is shared with no one and left out of every "
        "later export and release."
    )
    if releases:
        console.print(f"  Published releases that still contain {subject}:")
        for name in releases:
            console.print(f"    {escape(name)}")
    else:
        console.print(f"  Published releases that still contain {subject}: none")


@app.command("import")
def import_csv(
    ctx: typer.Context,
    project: ProjectArg,
    file: Annotated[Path, typer.Argument(help="The CSV: subject, level[, form, …] columns.")],
    create_subjects: Annotated[
        bool, typer.Option("--create-subjects", help="Create subjects the project lacks.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Import a consent spreadsheet: every line is checked, then all of it or nothing."""
    from neurodepot.consent.csv_import import import_consent_csv

    try:
        handle = file.open("rb")
    except OSError as exc:
        raise Invalid(f"cannot read {file}: {exc.strerror or exc}") from None
    with handle, state(ctx).open() as depot, depot.transaction() as db:
        summary = import_consent_csv(db, cli_actor(), project, handle, create_subjects)
    created = len(summary.created_subjects)
    done(
        as_json,
        summary,
        f"Imported {summary.records} consent record(s) for {summary.subjects} subject(s) of "
        f"{project} ({summary.withdrawals} withdrawal(s), {created} subject(s) created)",
    )
