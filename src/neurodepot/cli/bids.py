"""`neurodepot convert`, `neurodepot export-bids` and `neurodepot bids preview|validate|rules`."""

import tempfile
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from neurodepot.catalog.target import Target
from neurodepot.cli.job_running import follow, queue_job
from neurodepot.cli.output import (
    JsonFlag,
    console,
    human_size,
    print_json,
    progress_console,
    show,
)
from neurodepot.cli.state import state
from neurodepot.consent.records import withdrawn_labels
from neurodepot.convert.bids_export import ExportSummary, export_folder
from neurodepot.convert.bids_plan import BidsPlan, SeriesPreview, plan_project
from neurodepot.convert.bids_validate import ValidationReport, validate
from neurodepot.convert.project_rules import project_rules, set_project_rules
from neurodepot.convert.rules import load_rules_file
from neurodepot.depot.folder import Depot
from neurodepot.jobs import records
from neurodepot.jobs.executor import execute_job_here
from neurodepot.jobs.registry import load_registry

app = typer.Typer(help="BIDS: preview names, validate datasets, set a project's rules.")
rules_app = typer.Typer(help="A project's own BIDS mapping rules.", no_args_is_help=True)
app.add_typer(rules_app, name="rules")

ProjectArg = Annotated[str, typer.Argument(help="Project label.")]
SHOWN_ISSUES = 20


def convert(
    ctx: typer.Context,
    target: Annotated[
        str, typer.Argument(metavar="TARGET", help="PROJECT[/SUBJECT[/SESSION[/SCAN]]]")
    ],
    param: Annotated[
        list[str] | None, typer.Option("--param", help="KEY=VALUE (compress, skip_converted).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Convert DICOM scans to NIfTI (dcm2niix) now, in this process, as a recorded job."""
    registry = load_registry()
    t = Target.parse(target)
    with state(ctx).open() as depot:
        job = queue_job(depot, registry, "convert", t, param)
        worker = threading.Thread(
            target=execute_job_here,
            args=(depot, job.id, depot.settings.job_heartbeat_s),
            name=f"convert-job-{job.id}",
        )
        worker.start()
        try:
            job = follow(depot, job.id, as_json)
        except KeyboardInterrupt:
            # Stopped at the next scan; what was converted so far is not kept.
            with depot.transaction() as db:
                records.cancel_job(db, job.id)
            raise
        finally:
            worker.join()
        with depot.transaction() as db:
            job = records.get_job(db, job.id)
    if as_json:
        print_json(job)
    else:
        for line in job.log.splitlines():
            if ": not converted: " in line or "scan(s) converted" in line:
                console.print(line, markup=False, highlight=False)
        console.print(f"Job {job.id} {job.status}" + (f": {job.error}" if job.error else ""))
    if job.status != "succeeded" or ": not converted: " in job.log:
        raise typer.Exit(1)


def _plan(depot: Depot, project: str, subjects: list[str] | None, export: bool = False) -> BidsPlan:
    """The project's BIDS view; an export leaves out the subjects who withdrew consent."""
    with depot.reading() as db:
        withdrawn = withdrawn_labels(db, project) if export else ()
        return plan_project(db, depot.blobs, project, subjects or (), withdrawn=withdrawn)


@app.command()
def preview(
    ctx: typer.Context,
    project: ProjectArg,
    subject: Annotated[list[str] | None, typer.Option(help="Only these subjects.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Show, per series, the BIDS name it gets, the rule that named it, or why it has none."""
    with state(ctx).open() as depot:
        plan = _plan(depot, project, subject)
    show(
        as_json,
        plan.preview,
        f"BIDS preview of {project}",
        ("scan", "series", "conversion", "image", "outcome", "rule", "BIDS path / detail"),
        [
            (
                p.scan,
                p.series_description,
                p.conversion,
                p.image,
                p.outcome,
                p.rule,
                p.bids_path + (f" ({p.detail})" if p.detail and p.bids_path else p.detail),
            )
            for p in plan.preview
        ],
    )


@app.command("validate")
def validate_(
    ctx: typer.Context,
    what: Annotated[
        str, typer.Argument(metavar="PATH|PROJECT", help="A BIDS folder or a project.")
    ],
    as_json: JsonFlag = False,
) -> None:
    """Run the official BIDS validator on a folder, or on a project's export (made on the fly)."""
    path = Path(what)
    if path.exists() or "/" in what:
        report = validate(path)
    else:
        with state(ctx).open() as depot:
            plan = _plan(depot, what, None, export=True)
            # In the depot's work folder, so that the export can hard-link rather than copy.
            depot.settings.work_root.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(
                prefix="validate-", dir=depot.settings.work_root
            ) as tmp:
                export_folder(plan, depot.blobs, Path(tmp) / what, link=True)
                report = validate(Path(tmp) / what)
    _report(report, as_json)
    if not report.valid:
        raise typer.Exit(1)


def _report(report: ValidationReport, as_json: bool) -> None:
    if as_json:
        print_json(report)
        return
    console.print(
        f"{report.validator}: {len(report.errors)} error(s), {len(report.warnings)} warning(s)"
    )
    for issue in report.errors[:SHOWN_ISSUES]:
        console.print(
            f"  error {issue.code} at {issue.location}: {issue.message}",
            markup=False,
            highlight=False,
        )
    if len(report.errors) > SHOWN_ISSUES:
        console.print(f"  … and {len(report.errors) - SHOWN_ISSUES} more error(s) (--json)")


def export_bids(
    ctx: typer.Context,
    project: ProjectArg,
    out: Annotated[Path, typer.Argument(help="Folder to create (must not exist, or be empty).")],
    subject: Annotated[list[str] | None, typer.Option(help="Only these subjects.")] = None,
    link: Annotated[
        bool, typer.Option("--link", help="Hard-link files from the depot instead of copying.")
    ] = False,
    check: Annotated[
        bool, typer.Option("--validate/--no-validate", help="Run the BIDS validator after.")
    ] = True,
    as_json: JsonFlag = False,
) -> None:
    """Write a project (or some subjects) as a BIDS dataset, then validate it."""
    with state(ctx).open() as depot:
        plan = _plan(depot, project, subject, export=True)
        with Progress(
            TextColumn("Exporting {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=progress_console,
            transient=True,
            disable=as_json,
        ) as bar:
            task = bar.add_task(project, total=len(plan.files))
            summary = export_folder(
                plan,
                depot.blobs,
                out,
                link,
                progress=lambda n, total: bar.update(task, completed=n, total=total),
            )
    report = validate(out) if check else None
    left_out = [p for p in plan.preview if p.outcome != "named" or p.conversion != "converted"]
    if as_json:
        print_json({"export": summary, "left_out": left_out, "validation": report})
    else:
        _print_export(summary, left_out)
        if report is not None:
            _report(report, False)
    if report is not None and not report.valid:
        raise typer.Exit(1)


def _print_export(summary: ExportSummary, left_out: list[SeriesPreview]) -> None:
    console.print(
        f"Exported {summary.files} file(s), {human_size(summary.bytes)} to {summary.path}: "
        f"{summary.linked} linked, {summary.copied} copied, {summary.written} written"
    )
    for p in left_out:
        console.print(
            f"  left out: {p.scan} {p.image} ({p.conversion}, {p.outcome}): {p.detail}",
            markup=False,
            highlight=False,
        )


@rules_app.command("set")
def rules_set(
    ctx: typer.Context,
    project: ProjectArg,
    file: Annotated[Path, typer.Argument(help="A rules file, .toml or .json.")],
    as_json: JsonFlag = False,
) -> None:
    """Check a rules file and make it the project's (tried before the default rules)."""
    rules = load_rules_file(file)
    with state(ctx).open() as depot:
        stored = set_project_rules(
            depot, project, file.read_text(encoding="utf-8"), file.suffix.lower().lstrip(".")
        )
    if as_json:
        print_json(stored)
    else:
        console.print(f"{project}: {len(rules.rules)} rule(s) set, tried before the defaults")


@rules_app.command("check")
def rules_check(
    file: Annotated[Path, typer.Argument(help="A rules file, .toml or .json.")],
) -> None:
    """Check a rules file without storing it."""
    rules = load_rules_file(file)
    console.print(f"{file.name}: {len(rules.rules)} rule(s), no problem found")


@rules_app.command("show")
def rules_show(ctx: typer.Context, project: ProjectArg, as_json: JsonFlag = False) -> None:
    """List the rules a project's series are named by, in the order they are tried."""
    with state(ctx).open() as depot, depot.reading() as db:
        rules = project_rules(db, depot.blobs, project)
    rows = [
        {
            "name": r.name,
            "names": "(left out)" if r.skip else f"{r.datatype}/{r.suffix}",
            "source": r.source,
        }
        for r in rules.rules
    ]
    show(
        as_json,
        rows,
        f"BIDS rules of {project}",
        ("rule", "gives", "from"),
        [(r["name"], r["names"], r["source"]) for r in rows],
    )
