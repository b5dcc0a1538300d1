"""`neurodepot deid`, `check`, `linkage`, `override`: making and checking shareable data.

Domain work lives in `neurodepot.deid`; these commands open the depot, call it, and print.
The linkage commands re-identify or destroy and are meant for a project's owners: the CLI is
the local operator, and each use is audited.
"""

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from neurodepot.cli.output import JsonFlag, console, done, print_json, progress_console, show
from neurodepot.cli.state import cli_actor, state
from neurodepot.errors import Invalid

app = typer.Typer(
    help="De-identify: shareable datasets, DICOM folders, settings.", no_args_is_help=True
)
linkage_app = typer.Typer(help="A project's pseudonym linkage (owners only).", no_args_is_help=True)
override_app = typer.Typer(help="Stewards' overrides of failed checks.", no_args_is_help=True)

ProjectArg = Annotated[str, typer.Argument(help="Project label.")]


def _bar(label: str, quiet: bool) -> Progress:
    return Progress(
        TextColumn(label + " {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=progress_console,
        transient=True,
        disable=quiet,
    )


@app.command("export")
def export(
    ctx: typer.Context,
    project: ProjectArg,
    out: Annotated[Path, typer.Argument(help="Folder to create (must not exist, or be empty).")],
    subject: Annotated[list[str] | None, typer.Option(help="Only these subjects.")] = None,
    dicom: Annotated[
        bool, typer.Option("--dicom", help="Also de-identified DICOM under sourcedata/dicom.")
    ] = False,
    link: Annotated[
        bool, typer.Option("--link", help="Hard-link images from the depot instead of copying.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Write the project's shareable dataset: BIDS named by pseudonyms, scrubbed, dates shifted."""
    from neurodepot.deid.shareable import build_shareable

    with (
        state(ctx).open() as depot,
        depot.transaction() as db,
        _bar("De-identifying", as_json) as bar,
    ):
        task = bar.add_task(project, total=None)
        summary = build_shareable(
            db,
            depot.blobs,
            project,
            out,
            tuple(subject or ()),
            include_dicom=dicom,
            link=link,
            progress=lambda n, total: bar.update(task, completed=n, total=total),
        )
    if as_json:
        print_json(summary)
        return
    console.print(
        f"Wrote {summary.files} file(s) of {summary.subjects} subject(s) to {summary.path}"
        + (f", {summary.dicom_written} DICOM" if dicom else "")
    )
    for path, reason in summary.dicom_skipped:
        console.print(f"  skipped {path}: {reason}", markup=False, highlight=False)
    for path, reason in summary.burned_in:
        console.print(f"  may show burned-in text: {path}: {reason}", markup=False, highlight=False)
    console.print(f"Check it before it leaves: neurodepot check {out} --project {project}")


@app.command("dicom")
def dicom_folder(
    ctx: typer.Context,
    src: Annotated[Path, typer.Argument(help="Folder of DICOM files.")],
    dst: Annotated[Path, typer.Argument(help="Folder to create (must not exist, or be empty).")],
    project: Annotated[str, typer.Option(help="Whose settings, keys and pseudonyms to use.")],
    subject: Annotated[str, typer.Option(help="The project's subject these files belong to.")],
    workers: Annotated[int | None, typer.Option(help="Processes (default: one per core).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """De-identify a folder of one subject's DICOM files with the project's profile."""
    from neurodepot.deid import linkage
    from neurodepot.deid.dicom_batch import deidentify_tree
    from neurodepot.deid.dicom_headers import DicomRecipe, SubjectKeys

    with state(ctx).open() as depot, depot.transaction() as db:
        config = linkage.project_config(db, project)
        recipe = DicomRecipe(
            config.options, config.uid_root, linkage.uid_key(db, project), config.private_allow
        )
        link = linkage.subject_link(db, project, subject)
    keys = SubjectKeys(f"sub-{link.pseudonym}", f"sub-{link.pseudonym}", link.date_offset_days)
    with _bar("De-identifying", as_json) as bar:
        task = bar.add_task(str(src), total=None)
        report = deidentify_tree(
            src,
            dst,
            recipe,
            keys,
            workers,
            progress=lambda n, total: bar.update(task, completed=n, total=total),
        )
    if as_json:
        print_json(report)
    else:
        console.print(f"Wrote {report.written} file(s) to {dst} as sub-{link.pseudonym}")
        for item in report.skipped:
            console.print(f"  skipped {item.path}: {item.reason}", markup=False, highlight=False)
        for path, reason in report.burned_in:
            console.print(f"  may show burned-in text: {path}: {reason}", markup=False)
    if report.skipped:
        raise typer.Exit(1)


@app.command("settings")
def settings(
    ctx: typer.Context,
    project: ProjectArg,
    option: Annotated[
        list[str] | None,
        typer.Option(help="A profile option to select (repeat; replaces the list). 'none': none."),
    ] = None,
    uid_root: Annotated[str | None, typer.Option(help="The root of remapped UIDs.")] = None,
    private_allow: Annotated[
        list[str] | None,
        typer.Option(help="CREATOR:ELEMENT kept with retain-safe-private (repeat; replaces)."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Show or change the project's de-identification profile options and UID root."""
    from neurodepot.deid import linkage

    with state(ctx).open() as depot, depot.transaction() as db:
        if option is None and uid_root is None and private_allow is None:
            config = linkage.project_config(db, project)
        else:
            options = None if option is None else [o for o in option if o != "none"]
            allow = None if private_allow is None else [p for p in private_allow if p != "none"]
            config = linkage.configure(db, project, cli_actor(), options, uid_root, allow)
    if as_json:
        print_json(config)
        return
    console.print(f"[bold]De-identification of {project}[/bold]")
    console.print("  profile: DICOM PS3.15 E.1 basic application level confidentiality profile")
    console.print(f"  options: {', '.join(sorted(config.options)) or 'none'}")
    console.print(f"  UID root: {config.uid_root}")
    allowed = ", ".join(f"{c}:{e:#04x}" for c, e in sorted(config.private_allow)) or "none"
    console.print(f"  private allow-list: {allowed}", markup=False)
    if config.linkage_destroyed_at is not None:
        console.print(f"  linkage destroyed: {config.linkage_destroyed_at.isoformat()}")


def check(
    ctx: typer.Context,
    what: Annotated[str, typer.Argument(metavar="PROJECT|PATH", help="A project or a folder.")],
    project: Annotated[
        str | None, typer.Option(help="For a folder: the project whose identifiers to look for.")
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(help="Write PREFIX.json and PREFIX.md (default: ./<project>-check)."),
    ] = None,
    release: Annotated[str, typer.Option(help="The release whose overrides apply.")] = "candidate",
    as_json: JsonFlag = False,
) -> None:
    """Run the de-identification criteria; exit 1 if any fails (and is not overridden)."""
    from neurodepot.deid.check_report import write_reports
    from neurodepot.deid.release_check import check_folder, check_project

    path = Path(what)
    is_folder = path.exists() or "/" in what
    if is_folder and project is None:
        raise Invalid(f"{what} is a folder: say whose identifiers to look for with --project")
    label = project if is_folder else what
    assert label is not None
    with state(ctx).open() as depot, depot.transaction() as db, _bar("Checking", as_json) as bar:
        task = bar.add_task(label, total=None)
        progress = lambda n, total: bar.update(task, completed=n, total=total)  # noqa: E731
        if is_folder:
            result = check_folder(db, depot.blobs, label, path, cli_actor(), release, progress)
        else:
            result = check_project(
                db, depot.blobs, label, depot.settings.work_root, cli_actor(), release, progress
            )
    prefix = report or Path(f"{label}-check")
    json_path, md_path = (
        prefix.with_name(prefix.name + ".json"),
        prefix.with_name(prefix.name + ".md"),
    )
    write_reports(result, json_path, md_path)
    if as_json:
        print_json(result)
    else:
        for item in result.results:
            colour = {"pass": "green", "fail": "red"}.get(item.status, "yellow")
            console.print(
                f"[{colour}]{item.status:>10}[/{colour}] {item.criterion.value}: ", end=""
            )
            console.print(item.summary, markup=False, highlight=False)
        verdict = "passed" if result.passed else "FAILED"
        console.print(f"Check {verdict} ({result.files} file(s)); reports: {json_path}, {md_path}")
    if not result.passed:
        raise typer.Exit(1)


@linkage_app.command("show")
def linkage_show(ctx: typer.Context, project: ProjectArg, as_json: JsonFlag = False) -> None:
    """List internal labels with their pseudonyms (audited: this re-identifies shared data)."""
    from neurodepot.deid import linkage

    with state(ctx).open() as depot, depot.transaction() as db:
        rows = linkage.read_linkage(db, project, cli_actor())
    show(
        as_json,
        rows,
        f"Linkage of {project}",
        ("subject", "session", "pseudonym", "date offset (days)"),
        [(r.subject, r.session or "", r.pseudonym, r.date_offset_days) for r in rows],
    )


@linkage_app.command("destroy")
def linkage_destroy(
    ctx: typer.Context,
    project: ProjectArg,
    confirm: Annotated[
        str | None,
        typer.Option(help="The project's label again, to confirm without a prompt."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Delete the project's linkage for good: its shared data becomes irreversibly anonymous."""
    from neurodepot.deid import linkage

    if confirm is None:
        console.print(
            f"This deletes every pseudonym link and the UID key of {project}. Shared data can "
            "then never be tied to a participant again, and no new de-identified data can be "
            "made for this project."
        )
        confirm = typer.prompt(f"Type the project's label ({project}) to confirm")
    if confirm != project:
        raise Invalid(f"confirmation {confirm!r} is not the project's label: nothing destroyed")
    with state(ctx).open() as depot, depot.transaction() as db:
        removed = linkage.destroy_linkage(db, project, cli_actor())
    done(
        as_json,
        {"project": project, "removed": removed},
        f"Linkage of {project} destroyed ({removed} link(s))",
    )


@override_app.command("add")
def override_add(
    ctx: typer.Context,
    project: ProjectArg,
    criterion: Annotated[str, typer.Argument(help="e.g. DEID-FACE")],
    reason: Annotated[str, typer.Option(help="Why the failure is acceptable for this release.")],
    steward: Annotated[str, typer.Option(help="The steward's account who decides.")],
    release: Annotated[str, typer.Option(help="The release it is for.")] = "candidate",
    as_json: JsonFlag = False,
) -> None:
    """Let a failed criterion pass for one release, with a steward's written reason (audited)."""
    from neurodepot.deid.overrides import add_override

    with state(ctx).open() as depot, depot.transaction() as db:
        made = add_override(db, project, criterion, reason, steward, cli_actor(), release)
    done(as_json, made, f"Override {made.id}: {made.criterion} for {project} {made.release}")


@override_app.command("list")
def override_list(ctx: typer.Context, project: ProjectArg, as_json: JsonFlag = False) -> None:
    """List the project's overrides, revoked ones included."""
    from neurodepot.deid.overrides import list_overrides

    with state(ctx).open() as depot, depot.reading() as db:
        rows = list_overrides(db, project)
    show(
        as_json,
        rows,
        f"Overrides of {project}",
        ("id", "release", "criterion", "steward", "reason", "revoked"),
        [(o.id, o.release, o.criterion, o.steward, o.reason, o.revoked_at or "") for o in rows],
    )


@override_app.command("revoke")
def override_revoke(
    ctx: typer.Context, project: ProjectArg, override_id: int, as_json: JsonFlag = False
) -> None:
    """Withdraw an override (audited)."""
    from neurodepot.deid.overrides import revoke_override

    with state(ctx).open() as depot, depot.transaction() as db:
        made = revoke_override(db, project, override_id, cli_actor())
    done(as_json, made, f"Override {made.id} revoked")
