"""`neurodepot run`, `neurodepot pipelines` and `neurodepot jobs list|show|cancel|retry`."""

from typing import Annotated

import typer

from neurodepot.catalog.target import Target
from neurodepot.cli.job_running import follow, queue_job
from neurodepot.cli.output import JsonFlag, console, done, print_fields, print_json, show
from neurodepot.cli.state import state
from neurodepot.jobs import records
from neurodepot.jobs.registry import load_registry

app = typer.Typer(help="List, inspect, cancel and retry pipeline jobs.", no_args_is_help=True)


def run(
    ctx: typer.Context,
    pipeline: Annotated[str, typer.Argument(help="Pipeline name (`neurodepot pipelines`).")],
    target: Annotated[str, typer.Argument(metavar="TARGET")],
    param: Annotated[
        list[str] | None, typer.Option("--param", help="KEY=VALUE, repeatable.")
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Run it now on a local cluster and wait for the end.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Queue a pipeline job on a target (and with --wait, run it and show its progress)."""
    registry = load_registry()
    t = Target.parse(target)
    with state(ctx).open() as depot:
        job = queue_job(depot, registry, pipeline, t, param)
        if not wait:
            done(as_json, job, f"Queued job {job.id} ({pipeline} on {t}); it runs under `serve`")
            return
        from neurodepot.jobs.service import JobService

        service = JobService(depot, registry, {}, recover=False)
        service.start()
        try:
            job = follow(depot, job.id, as_json)
        finally:
            service.stop()
    if as_json:
        print_json(job)
    else:
        console.print(f"Job {job.id} {job.status}" + (f": {job.error}" if job.error else ""))
    if job.status != "succeeded":
        raise typer.Exit(1)


def pipelines(as_json: JsonFlag = False) -> None:
    """List the pipelines this installation can run."""
    found = list(load_registry())
    rows = [
        {
            "name": p.name,
            "version": p.version,
            "levels": sorted(level.value for level in p.levels),
            "outputs": list(p.outputs),
            "max_attempts": p.max_attempts,
            "description": p.description,
        }
        for p in found
    ]
    show(
        as_json,
        rows,
        "Pipelines",
        ("name", "version", "outputs", "description"),
        [(r["name"], r["version"], ", ".join(r["outputs"]), r["description"]) for r in rows],
    )


@app.command("list")
def list_(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help="queued, running, succeeded, …")] = None,
    pipeline: Annotated[str | None, typer.Option(help="Only this pipeline.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
    as_json: JsonFlag = False,
) -> None:
    """List jobs, newest first."""
    with state(ctx).open() as depot, depot.transaction() as db:
        found = records.list_jobs(db, status, pipeline, limit)
    show(
        as_json,
        found,
        "Jobs",
        ("id", "pipeline", "target", "status", "progress", "message"),
        [
            (j.id, j.pipeline, j.target, j.status, f"{j.progress:.0%}", j.error or j.message)
            for j in found
        ],
    )


@app.command("show")
def show_(ctx: typer.Context, job_id: int, as_json: JsonFlag = False) -> None:
    """Show one job with its log."""
    with state(ctx).open() as depot, depot.transaction() as db:
        job = records.get_job(db, job_id)
    if as_json:
        print_json(job)
        return
    fields = {k: v for k, v in job.__dict__.items() if k not in {"log", "id"}}
    print_fields(f"Job {job.id}", fields)
    if job.log:
        console.print("[bold]log[/bold]")
        console.print(job.log, markup=False, highlight=False)


@app.command()
def cancel(ctx: typer.Context, job_id: int, as_json: JsonFlag = False) -> None:
    """Cancel a queued job, or ask a running one to stop."""
    with state(ctx).open() as depot, depot.transaction() as db:
        job = records.cancel_job(db, job_id)
    done(as_json, job, f"Job {job.id}: {job.status}, cancel requested")


@app.command()
def retry(ctx: typer.Context, job_id: int, as_json: JsonFlag = False) -> None:
    """Queue a failed or cancelled job again."""
    with state(ctx).open() as depot, depot.transaction() as db:
        job = records.retry_job(db, load_registry(), job_id)
    done(as_json, job, f"Job {job.id} queued again")
