"""Pipelines that ship with neurodepot.

`manifest` is useful on its own (a checksummed list of every file under a target); `noop` and
`wait` are diagnostics for checking that a cluster runs jobs (and for benchmarks and tests).
"""

import json
import time

from pydantic import BaseModel, ConfigDict, Field

from neurodepot.catalog import resources
from neurodepot.jobs.context import JobContext
from neurodepot.jobs.registry import Pipeline


def _noop(context: JobContext) -> None:
    context.check_cancelled()


class WaitParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seconds: float = Field(default=1.0, ge=0, le=3600, description="How long to wait.")
    steps: int = Field(default=10, ge=1, le=10_000, description="Progress reports on the way.")
    fail: bool = Field(default=False, description="Raise at the end (to test failure paths).")


def _wait(context: JobContext) -> None:
    params = WaitParams.model_validate(context.params)
    for step in range(params.steps):
        context.progress(step / params.steps, f"step {step + 1} of {params.steps}")
        time.sleep(params.seconds / params.steps)
    if params.fail:
        raise RuntimeError("failed on request (fail=true)")
    context.progress(1.0, "done")


def _manifest(context: JobContext) -> None:
    """Write `MANIFEST/manifest.json`: every resource file at the target with its digest."""
    with context.depot.reading() as db:
        listed = resources.list_resources(db, context.target)
        entries = []
        for index, resource in enumerate(listed):
            if resource.label == "MANIFEST":
                continue
            info = resources.get_resource(db, context.target, resource.label)
            entries.extend(
                {"resource": resource.label, "path": f.path, "sha256": f.digest, "size": f.size}
                for f in info.files
            )
            context.progress((index + 1) / max(len(listed), 1), f"listed {resource.label}")
    body = json.dumps({"target": str(context.target), "files": entries}, indent=2).encode()
    context.add_output("MANIFEST", "manifest.json", [body])
    context.log(f"{len(entries)} file(s) listed")


PIPELINES = [
    Pipeline("noop", "1", _noop, description="Does nothing; measures job overhead."),
    Pipeline(
        "wait",
        "1",
        _wait,
        params=WaitParams,
        max_attempts=2,
        description="Waits, reporting progress; a diagnostic for clusters and retries.",
    ),
    Pipeline(
        "manifest",
        "1",
        _manifest,
        outputs=("MANIFEST",),
        description="Lists every file at the target with its SHA-256, as MANIFEST/manifest.json.",
    ),
]
