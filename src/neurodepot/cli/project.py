"""`neurodepot project create|list|show|delete`."""

from typing import Annotated

import typer

from neurodepot.catalog import hierarchy
from neurodepot.catalog.deletion import delete_project
from neurodepot.cli.output import JsonFlag, done, print_fields, print_json, show
from neurodepot.cli.state import state

app = typer.Typer(help="Create, list, show and delete projects.", no_args_is_help=True)


@app.command()
def create(
    ctx: typer.Context,
    label: Annotated[str, typer.Argument(help="Project ID: letters, digits, '_' or '-'.")],
    name: Annotated[str, typer.Option(help="Human-readable title.")] = "",
    description: Annotated[str, typer.Option(help="What the study is about.")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Create a project."""
    with state(ctx).open() as depot, depot.transaction() as db:
        project = hierarchy.create_project(db, label, name, description)
    done(as_json, project, f"Created project {project.label}")


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List projects."""
    with state(ctx).open() as depot, depot.transaction() as db:
        projects = hierarchy.list_projects(db)
    show(
        as_json,
        projects,
        "Projects",
        ("label", "name", "subjects", "created"),
        [(p.label, p.name, p.subject_count, f"{p.created_at:%Y-%m-%d}") for p in projects],
    )


@app.command("show")
def show_(ctx: typer.Context, label: str, as_json: JsonFlag = False) -> None:
    """Show one project."""
    with state(ctx).open() as depot, depot.transaction() as db:
        project = hierarchy.get_project(db, label)
    if as_json:
        print_json(project)
    else:
        print_fields(
            f"Project {project.label}",
            {
                "name": project.name,
                "description": project.description,
                "subjects": project.subject_count,
                "created": project.created_at.isoformat(timespec="seconds"),
            },
        )


@app.command()
def delete(
    ctx: typer.Context,
    label: str,
    force: Annotated[
        bool, typer.Option("--force", help="Delete even if it holds subjects or files.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Delete a project (refused while it holds anything, unless --force)."""
    with state(ctx).open() as depot:
        subjects, contents = delete_project(depot, label, force=force)
    done(
        as_json,
        {"project": label, "subjects": subjects, "contents": contents},
        f"Deleted project {label} ({subjects} subject(s), {contents} file content(s))",
    )


@app.command()
def pipelines(
    ctx: typer.Context,
    label: str,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Pipeline to run on each archived session (repeat, in order)."),
    ] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Run nothing automatically.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Show or set the pipelines a project runs on every newly archived session."""
    from neurodepot.jobs import triggers
    from neurodepot.jobs.registry import load_registry

    with state(ctx).open() as depot, depot.transaction() as db:
        if set_ or clear:
            chosen = [(name, {}) for name in (set_ or [])]
            triggers.set_project_pipelines(db, load_registry(), label, chosen)  # type: ignore[arg-type]
        configured = triggers.project_pipelines(db, label)
    names = [name for name, _ in configured]
    done(
        as_json,
        [{"pipeline": name, "params": params} for name, params in configured],
        f"{label} runs on each archived session: {', '.join(names) or 'nothing'}",
    )
