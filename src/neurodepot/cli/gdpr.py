"""`neurodepot gdpr`: subject access export, erasure, retention dates, record of processing.

Domain work lives in `neurodepot.consent` (subject_export, erasure, retention, processing);
these commands open the depot, call it, and print. Every export and erasure is audited.
"""

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from neurodepot.cli.output import (
    JsonFlag,
    console,
    done,
    human_size,
    print_json,
    print_table,
    progress_console,
)
from neurodepot.cli.state import cli_actor, state
from neurodepot.errors import Invalid

if TYPE_CHECKING:
    from neurodepot.consent.erasure import ErasureCounts

app = typer.Typer(
    help="GDPR: subject access export, erasure, retention, record of processing.",
    no_args_is_help=True,
)

ProjectArg = Annotated[str, typer.Argument(help="Project label.")]
SubjectArg = Annotated[str, typer.Argument(help="Subject label.")]


@app.command("export")
def export(
    ctx: typer.Context,
    project: ProjectArg,
    subject: SubjectArg,
    out: Annotated[Path, typer.Argument(help="The zip file to write (must not exist).")],
    as_json: JsonFlag = False,
) -> None:
    """Write everything held about a subject, with its audit trail, to a zip (audited)."""
    from neurodepot.consent.subject_export import export_subject

    with (
        state(ctx).open() as depot,
        Progress(
            TextColumn("Exporting {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=progress_console,
            transient=True,
            # Only on a terminal: elsewhere it would leave a blank line before an error.
            disable=as_json or not progress_console.is_terminal,
        ) as bar,
    ):
        task = bar.add_task(f"{project}/{subject}", total=None)
        summary = export_subject(
            depot,
            cli_actor(),
            project,
            subject,
            out,
            progress=lambda n, total: bar.update(task, completed=n, total=total),
        )
    done(
        as_json,
        summary,
        f"Wrote {summary.files} file(s) ({human_size(summary.bytes)}) and "
        f"{summary.audit_events} audit event(s) about {project}/{subject} to {out}",
    )


@app.command("erase")
def erase(
    ctx: typer.Context,
    project: ProjectArg,
    subject: SubjectArg,
    confirm: Annotated[
        str | None, typer.Option(help="The subject's label again, to confirm the erasure.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Erase a subject: its rows, files and the blobs only it used (audited; cannot be undone).

    Without --confirm, say what would be removed and exit 1 having removed nothing.
    """
    from neurodepot.consent.erasure import erase_subject, plan_erasure

    if confirm is None:
        with state(ctx).open() as depot, depot.reading() as db:
            plan = plan_erasure(db, project, subject)
        if as_json:
            print_json(plan)
        else:
            console.print(f"Erasing {project}/{subject} would remove:", markup=False)
            _print_counts(plan.counts)
            console.print(
                f"  {plan.blobs_to_remove} stored content(s) only it uses "
                f"({plan.blobs_shared} shared with other data are kept)"
            )
            _print_releases(plan.releases)
            console.print("The audit log keeps its events about the subject (append-only).")
            console.print(
                "Nothing was erased. To erase, repeat the subject's label: "
                f"neurodepot gdpr erase {project} {subject} --confirm {subject}",
                markup=False,
                soft_wrap=True,
            )
        raise typer.Exit(1)
    with state(ctx).open() as depot:
        summary = erase_subject(depot, cli_actor(), project, subject, confirm)
    if as_json:
        print_json(summary)
        return
    console.print(f"Erased {project}/{subject}:", markup=False)
    _print_counts(summary.counts)
    console.print(
        f"  {summary.blobs_removed} stored content(s) removed, "
        f"{summary.blobs_kept} kept (used elsewhere)"
    )
    _print_releases(summary.releases)


@app.command("retention")
def retention(
    ctx: typer.Context,
    project: Annotated[str | None, typer.Argument(help="Project whose date to set.")] = None,
    day: Annotated[
        str | None,
        typer.Argument(metavar="[DATE]", help="Last day its data may be kept (YYYY-MM-DD)."),
    ] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Remove the project's date.")] = False,
    on: Annotated[
        str | None, typer.Option(help="Report as of this day (YYYY-MM-DD; default today).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Set a project's retention date, or (no arguments) report the projects past theirs."""
    from neurodepot.consent.processing import get_processing
    from neurodepot.consent.retention import parse_day, retention_report, set_retention

    if project is None:
        if clear:
            raise Invalid("--clear needs the project: neurodepot gdpr retention PROJECT --clear")
        report_day = None if on is None else parse_day(on, "report date")
        with state(ctx).open() as depot, depot.reading() as db:
            report = retention_report(db, report_day)
        if as_json:
            print_json(report)
            return
        print_table(
            f"Projects past their retention date on {report.on.isoformat()}",
            ("project", "retain until", "days past", "subjects", "files", "size"),
            [
                (e.project, e.retention_until, e.days_past, e.subjects, e.files,
                 human_size(e.bytes))
                for e in report.past
            ],
        )  # fmt: skip
        if report.without_date:
            console.print("No retention date: " + ", ".join(report.without_date), markup=False)
        return
    if on is not None:
        raise Invalid("--on is for the report: run `neurodepot gdpr retention --on DATE`")
    if clear and day is not None:
        raise Invalid(f"give a date or --clear, not both ({day!r} and --clear)")
    until = None if day is None else parse_day(day, "retention date")
    with state(ctx).open() as depot, depot.transaction() as db:
        if clear or until is not None:
            info = set_retention(db, cli_actor(), project, until)
        else:
            info = get_processing(db, project)
    shown = info.retention_until.isoformat() if info.retention_until else "not set"
    done(as_json, info, f"Retention date of {project}: {shown}")


@app.command("processing")
def processing(
    ctx: typer.Context,
    project: ProjectArg,
    purpose: Annotated[str | None, typer.Option(help="Why the data is processed.")] = None,
    lawful_basis: Annotated[
        str | None, typer.Option(help="e.g. 'GDPR 6(1)(e) and 9(2)(j): scientific research'.")
    ] = None,
    category: Annotated[
        list[str] | None,
        typer.Option(help="A data category (repeat; replaces the list). 'none': no categories."),
    ] = None,
    controller: Annotated[str | None, typer.Option(help="Who is the controller.")] = None,
    markdown: Annotated[bool, typer.Option("--markdown", help="Print it as Markdown.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Show or change a project's record of processing (purpose, basis, categories…)."""
    from neurodepot.consent.processing import (
        processing_markdown,
        processing_summary,
        set_processing,
    )

    if markdown and as_json:
        raise Invalid("choose --markdown or --json, not both")
    changes = (purpose, lawful_basis, category, controller)
    with state(ctx).open() as depot, depot.transaction() as db:
        if any(value is not None for value in changes):
            categories = None if category is None else [c for c in category if c != "none"]
            set_processing(db, cli_actor(), project, purpose, lawful_basis, categories, controller)
        summary = processing_summary(db, project)
    if as_json:
        print_json(summary)
    elif markdown:
        typer.echo(processing_markdown(summary), nl=False)
    else:
        given = summary["data_categories"]
        _print_plain(
            f"Record of processing of {project}",
            {
                "controller": summary["controller"] or "not given",
                "purpose": summary["purpose"] or "not given",
                "lawful basis": summary["lawful_basis"] or "not given",
                "data categories": ", ".join(given["all"]) or "none",
                "sharing level": summary["access"],
                "retention until": summary["retention"]["until"] or "not set",
                "subjects by consent": ", ".join(
                    f"{level} {count}" for level, count in summary["subjects"]["by_consent"].items()
                ),
                "recipients": "; ".join(
                    f"{r['recipient']} ({r['subjects']} subject(s))" for r in summary["recipients"]
                ),
            },
        )


def _print_plain(title: str, fields: dict[str, str]) -> None:
    """Like `print_fields`, but given text is printed as it is, never read as Rich markup."""
    console.print(title, style="bold", markup=False, highlight=False)
    for key, value in fields.items():
        console.print(f"  {key}: {value}", markup=False, highlight=False)


def _print_counts(counts: "ErasureCounts") -> None:
    values = asdict(counts)
    size = values.pop("bytes")
    for name, count in values.items():
        shown = f"{count} {name.replace('_', ' ')}"
        if name == "files":
            shown += f" ({human_size(size)})"
        console.print(f"  {shown}", markup=False)


def _print_releases(releases: list[str]) -> None:
    if releases:
        console.print(
            "Published releases still containing the subject (act on them): " + ", ".join(releases),
            markup=False,
        )
