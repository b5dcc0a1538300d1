"""Pipeline jobs started from the command line: their `--param`s, queueing, following progress.

Shared by `neurodepot run` (`cli/jobs.py`) and `neurodepot convert` (`cli/bids.py`), so that
both record a job the same way: in the database, asked for by `cli:<system user>`.
"""

import json
import time
from typing import Any

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from neurodepot.catalog.target import Target
from neurodepot.cli.output import console
from neurodepot.cli.state import cli_actor
from neurodepot.depot.folder import Depot
from neurodepot.errors import Invalid
from neurodepot.jobs import records
from neurodepot.jobs.records import JobInfo
from neurodepot.jobs.registry import PipelineRegistry

WAIT_POLL_S = 0.3


def parse_params(pairs: list[str] | None) -> dict[str, Any]:
    """`KEY=VALUE` pairs; a value that parses as JSON (numbers, true, lists) is taken as such.

    Raises `Invalid` for a pair without `=` or without a key.
    """
    params: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise Invalid(f"--param {pair!r} is not KEY=VALUE")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


def queue_job(
    depot: Depot,
    registry: PipelineRegistry,
    pipeline: str,
    target: Target,
    pairs: list[str] | None,
) -> JobInfo:
    """Record a queued job of `pipeline` on `target` with the `--param` pairs, and return it."""
    params = parse_params(pairs)
    with depot.transaction() as db:
        return records.create_job(db, registry, pipeline, target, params, cli_actor())


def follow(depot: Depot, job_id: int, quiet: bool) -> JobInfo:
    """Show the job's progress (unless `quiet`) until it has finished, and return it then."""
    with Progress(
        TextColumn("job {task.fields[job]}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TextColumn("{task.fields[status]} {task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=quiet,
    ) as bar:
        task = bar.add_task("", total=1.0, job=job_id, status="queued")
        while True:
            with depot.transaction() as db:
                job = records.get_job(db, job_id, with_log=False)
            bar.update(task, completed=job.progress, description=job.message, status=job.status)
            if job.status in records.FINISHED:
                return job
            time.sleep(WAIT_POLL_S)
