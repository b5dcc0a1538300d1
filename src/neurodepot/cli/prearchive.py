"""`neurodepot prearchive list|show|archive|move|delete`, `neurodepot import`, archive mode."""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn

from neurodepot.cli.output import (
    JsonFlag,
    console,
    done,
    human_size,
    print_fields,
    print_json,
    progress_console,
    show,
)
from neurodepot.cli.state import state

if TYPE_CHECKING:
    from types import ModuleType

    from neurodepot.ingest.bulk import ImportSummary


def _records() -> "ModuleType":
    """The prearchive, imported when a command runs: it loads pydicom, which is slow to load."""
    from neurodepot.ingest import prearchive

    return prearchive


app = typer.Typer(
    help="Studies received but not yet archived: review, assign, archive, delete.",
    no_args_is_help=True,
)

StudyArg = Annotated[int, typer.Argument(help="Prearchive study ID (see `prearchive list`).")]


@app.command("list")
def list_(
    ctx: typer.Context,
    state_: Annotated[
        str | None, typer.Option("--state", help="Only this state (receiving, ready, …).")
    ] = None,
    project: Annotated[str | None, typer.Option(help="Only studies for this project.")] = None,
    unassigned: Annotated[
        bool, typer.Option("--unassigned", help="Only studies no rule placed.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """List prearchive studies."""
    with state(ctx).open() as depot, depot.reading() as db:
        studies = _records().list_studies(db, state_, project, unassigned)
    show(
        as_json,
        studies,
        "Prearchive",
        ("id", "state", "destination", "patient", "date", "instances", "size", "last received"),
        [
            (
                s.id,
                s.state,
                "/".join(x for x in (s.project, s.subject, s.session) if x) or "(unassigned)",
                s.patient_id,
                s.study_date,
                s.instance_count,
                human_size(s.total_size),
                f"{s.last_received_at:%Y-%m-%d %H:%M:%S}",
            )
            for s in studies
        ],
    )


@app.command("show")
def show_(ctx: typer.Context, study: StudyArg, as_json: JsonFlag = False) -> None:
    """Show one study: destination, state and reason, series, conflicts."""
    with state(ctx).open() as depot, depot.reading() as db:
        detail = _records().show_study(db, study)
    if as_json:
        print_json(detail)
        return
    s = detail.study
    print_fields(
        f"Prearchive study {s.id}",
        {
            "state": s.state + (f" ({s.reason})" if s.reason else ""),
            "study UID": s.study_instance_uid,
            "destination": "/".join(x for x in (s.project, s.subject, s.session) if x)
            or "(unassigned)",
            "routed by": s.rule or "-",
            "from": f"{s.calling_aet or '-'} → {s.called_aet or '-'} ({s.source})",
            "patient": f"{s.patient_name} ({s.patient_id})",
            "study": f"{s.study_description} {s.study_date or ''}".strip(),
            "instances": f"{s.instance_count} ({human_size(s.total_size)})",
            "conflicts": s.conflict_count,
            "archived to": s.archived_to or "-",
        },
    )
    for series in detail.series:
        console.print(
            f"  series {series.series_number}: {series.modality} "
            f"{series.instance_count} instance(s) {series.series_instance_uid}"
        )
    for conflict in detail.conflicts:
        console.print(
            f"  conflict: {conflict.sop_instance_uid} differs from the {conflict.against} "
            f"(kept aside as {conflict.digest[:12]}…)"
        )


@app.command("archive")
def archive_(ctx: typer.Context, study: StudyArg, as_json: JsonFlag = False) -> None:
    """Archive a study now (whatever its quiet period or the project's review setting)."""
    from neurodepot.jobs.registry import load_registry

    with state(ctx).open() as depot:
        outcome = _records().archive(depot, study, load_registry(), "operator")
    done(
        as_json,
        outcome,
        f"Archived study {study} to {outcome.session}: {outcome.archived} instance(s) in "
        f"{len(outcome.scans)} scan(s), {outcome.duplicates} already there, "
        f"{outcome.conflicts} conflict(s), {len(outcome.jobs)} job(s) queued",
    )


@app.command()
def move(
    ctx: typer.Context,
    study: StudyArg,
    project: Annotated[str, typer.Argument(help="Project to assign the study to.")],
    subject: Annotated[str | None, typer.Option(help="Subject label.")] = None,
    session: Annotated[str | None, typer.Option(help="Session label.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Assign a study to a project (and subject/session labels); it becomes ready."""
    with state(ctx).open() as depot, depot.transaction() as db:
        entry = _records().move_study(db, study, project, subject, session)
    done(
        as_json,
        entry,
        f"Study {study} now goes to {entry.project}/{entry.subject}/{entry.session} (ready)",
    )


@app.command()
def delete(
    ctx: typer.Context,
    study: StudyArg,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Delete a study from the prearchive (what is already archived stays)."""
    if not yes and not typer.confirm(f"Delete prearchive study {study} and its instances?"):
        raise typer.Exit(1)
    with state(ctx).open() as depot:
        entry = _records().delete_study(depot, study)
    done(as_json, entry, f"Deleted prearchive study {study} ({entry.instance_count} instance(s))")


def archive_mode(
    ctx: typer.Context,
    project: Annotated[str, typer.Argument(help="Project ID.")],
    mode: Annotated[
        str | None, typer.Argument(help="auto (archive when quiet) or review; omit to show.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Show or set whether a project's received studies are archived automatically."""
    from neurodepot.catalog.hierarchy import find_project
    from neurodepot.errors import Invalid

    if mode not in (None, "auto", "review"):
        raise Invalid(f"archive mode must be auto or review, not {mode!r}")
    with state(ctx).open() as depot, depot.transaction() as db:
        if mode is not None:
            _records().set_archive_mode(db, project, mode == "auto")
        automatic = find_project(db, project).auto_archive
    current = "auto" if automatic else "review"
    done(as_json, {"project": project, "mode": current}, f"{project}: archive mode {current}")


def import_(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="A folder (recursive), zip, tar or tar.gz.")],
    project: Annotated[str, typer.Option(help="Project to import into.")],
    subject: Annotated[str | None, typer.Option(help="Subject label (default: PatientID).")] = None,
    session: Annotated[
        str | None, typer.Option(help="Session label (default: SUBJECT_STUDYDATE).")
    ] = None,
    prearchive: Annotated[
        bool, typer.Option("--prearchive", help="Leave the studies in the prearchive.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Import DICOM files into a project, through the prearchive."""
    from neurodepot.ingest.bulk import import_dicom
    from neurodepot.ingest.receive import Override
    from neurodepot.jobs.registry import load_registry

    with (
        state(ctx).open() as depot,
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[files]} file(s), {task.fields[size]}"),
            console=progress_console,
            transient=True,
            disable=as_json,
        ) as bar,
    ):
        task = bar.add_task(f"Importing {path.name}", total=None, files=0, size="0 B")
        summary = import_dicom(
            depot,
            path,
            Override(project, subject, session),
            archive_after=not prearchive,
            registry=load_registry(),
            requested_by="operator",
            progress=lambda files, size: bar.update(task, files=files, size=human_size(size)),
        )
    if as_json:
        print_json(summary)
    else:
        _print_summary(summary)
    if summary.unreadable or summary.not_archived:
        raise typer.Exit(1)


def _print_summary(summary: "ImportSummary") -> None:
    console.print(
        f"{summary.files} file(s), {human_size(summary.bytes)}: {summary.imported} imported, "
        f"{summary.duplicates} duplicate(s), {summary.conflicts} conflict(s), "
        f"{summary.not_dicom} not DICOM (skipped), {summary.unreadable} unreadable"
    )
    for name, reason in summary.problems:
        console.print(f"  unreadable: {name}: {reason}", markup=False, highlight=False)
    for outcome in summary.archived:
        console.print(
            f"  archived to {outcome.session}: {outcome.archived} instance(s), "
            f"{len(outcome.scans)} scan(s), {outcome.duplicates} already there, "
            f"{outcome.conflicts} conflict(s)"
        )
    for study_id, reason in summary.not_archived:
        console.print(f"  prearchive study {study_id} not archived: {reason}", markup=False)
    if summary.studies and not summary.archived and not summary.not_archived:
        console.print(f"  in the prearchive: study {', '.join(map(str, summary.studies))}")
