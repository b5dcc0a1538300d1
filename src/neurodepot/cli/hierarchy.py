"""`neurodepot subject|session|scan create|list`."""

from datetime import date
from typing import Annotated

import typer

from neurodepot.catalog import hierarchy
from neurodepot.catalog.target import Target
from neurodepot.cli.output import JsonFlag, done, show
from neurodepot.cli.state import state
from neurodepot.errors import Invalid

subject_app = typer.Typer(help="Create and list subjects.", no_args_is_help=True)
session_app = typer.Typer(help="Create and list sessions (visits).", no_args_is_help=True)
scan_app = typer.Typer(help="Create and list scans (series, recordings).", no_args_is_help=True)


def _parse(text: str, level: int, shape: str) -> Target:
    target = Target.parse(text)
    parts = [p for p in (target.project, target.subject, target.session, target.scan) if p]
    if len(parts) != level:
        raise Invalid(f"{text!r} should be {shape}")
    return target


@subject_app.command("create")
def subject_create(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(metavar="PROJECT/SUBJECT")],
    as_json: JsonFlag = False,
) -> None:
    """Create a subject in a project."""
    t = _parse(target, 2, "PROJECT/SUBJECT")
    assert t.subject is not None
    with state(ctx).open() as depot, depot.transaction() as db:
        subject = hierarchy.create_subject(db, t.project, t.subject)
    done(as_json, subject, f"Created subject {t}")


@subject_app.command("list")
def subject_list(
    ctx: typer.Context,
    project: Annotated[str, typer.Argument(metavar="PROJECT")],
    as_json: JsonFlag = False,
) -> None:
    """List a project's subjects."""
    with state(ctx).open() as depot, depot.transaction() as db:
        subjects = hierarchy.list_subjects(db, project)
    show(
        as_json,
        subjects,
        f"Subjects of {project}",
        ("label", "sessions", "created"),
        [(s.label, s.session_count, f"{s.created_at:%Y-%m-%d}") for s in subjects],
    )


@session_app.command("create")
def session_create(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(metavar="PROJECT/SUBJECT/SESSION")],
    modality: Annotated[str, typer.Option(help="MR, EEG, MEG, …")] = "",
    date_: Annotated[
        str | None, typer.Option("--date", help="Acquisition date, YYYY-MM-DD.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a session (visit) for a subject."""
    t = _parse(target, 3, "PROJECT/SUBJECT/SESSION")
    assert t.subject is not None and t.session is not None
    acquired = _date(date_) if date_ else None
    with state(ctx).open() as depot, depot.transaction() as db:
        session = hierarchy.create_session(db, t.project, t.subject, t.session, modality, acquired)
    done(as_json, session, f"Created session {t}")


@session_app.command("list")
def session_list(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(metavar="PROJECT/SUBJECT")],
    as_json: JsonFlag = False,
) -> None:
    """List a subject's sessions."""
    t = _parse(target, 2, "PROJECT/SUBJECT")
    assert t.subject is not None
    with state(ctx).open() as depot, depot.transaction() as db:
        sessions = hierarchy.list_sessions(db, t.project, t.subject)
    show(
        as_json,
        sessions,
        f"Sessions of {t}",
        ("label", "modality", "date", "scans"),
        [(s.label, s.modality, s.acquired_on, s.scan_count) for s in sessions],
    )


@scan_app.command("create")
def scan_create(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(metavar="PROJECT/SUBJECT/SESSION/SCAN")],
    type_: Annotated[str, typer.Option("--type", help="Scan type, e.g. T1w or rest.")] = "",
    modality: Annotated[str, typer.Option(help="MR, EEG, MEG, …")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Create a scan in a session."""
    t = _parse(target, 4, "PROJECT/SUBJECT/SESSION/SCAN")
    assert t.subject is not None and t.session is not None and t.scan is not None
    with state(ctx).open() as depot, depot.transaction() as db:
        scan = hierarchy.create_scan(db, t.project, t.subject, t.session, t.scan, type_, modality)
    done(as_json, scan, f"Created scan {t}")


@scan_app.command("list")
def scan_list(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(metavar="PROJECT/SUBJECT/SESSION")],
    as_json: JsonFlag = False,
) -> None:
    """List a session's scans."""
    t = _parse(target, 3, "PROJECT/SUBJECT/SESSION")
    assert t.subject is not None and t.session is not None
    with state(ctx).open() as depot, depot.transaction() as db:
        scans = hierarchy.list_scans(db, t.project, t.subject, t.session)
    show(
        as_json,
        scans,
        f"Scans of {t}",
        ("label", "type", "modality"),
        [(s.label, s.type, s.modality) for s in scans],
    )


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise Invalid(f"date {text!r} is not YYYY-MM-DD") from None
