"""What a running pipeline sees: its target and parameters, progress, cancellation, outputs.

Outputs are staged (content in `work/jobs/<id>/`, not yet blobs) and committed together with
the job's success in one transaction, so a failed, cancelled or crashed job leaves no trace in
any resource. A pipeline that must change more than files on success (replace a resource
wholesale, record provenance) registers a hook that runs in that same transaction.
"""

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from neurodepot.catalog.identifiers import check_file_path, check_label
from neurodepot.catalog.target import Target
from neurodepot.depot.blobstore import BlobRef
from neurodepot.depot.folder import Depot
from neurodepot.jobs import records

PROGRESS_INTERVAL_S = 0.5


class JobCancelled(Exception):
    """Raised inside a pipeline when its job was cancelled (or its lease was lost)."""


@dataclass(frozen=True)
class StagedOutput:
    target: Target
    resource: str
    path: str
    staged: Path
    ref: BlobRef


@dataclass
class JobContext:
    depot: Depot
    job_id: int
    attempt: int
    target: Target
    params: dict[str, Any]
    staging: Path
    stop: threading.Event = field(default_factory=threading.Event)
    stop_reason: str = "cancelled"
    outputs: list[StagedOutput] = field(default_factory=list)
    commit_hooks: list[Callable[[Session], list[str]]] = field(default_factory=list)
    _last_progress: float = 0.0

    def check_cancelled(self) -> None:
        """Raise `JobCancelled` if the job should stop; call it between units of work."""
        if self.stop.is_set():
            raise JobCancelled(self.stop_reason)

    def progress(self, fraction: float, message: str = "") -> None:
        """Report progress (0 to 1); written at most every half second, and checks cancellation."""
        self.check_cancelled()
        now = time.monotonic()
        if now - self._last_progress >= PROGRESS_INTERVAL_S or fraction >= 1.0:
            self._last_progress = now
            records.set_progress(self.depot, self.job_id, self.attempt, fraction, message)

    def log(self, line: str) -> None:
        records.append_log(self.depot, self.job_id, self.attempt, line)

    def on_commit(self, hook: Callable[[Session], list[str]]) -> None:
        """Run `hook` in the transaction that records the outputs, before they are recorded.

        It returns the digests of files it removed, so that their blobs can be collected.
        """
        self.commit_hooks.append(hook)

    def add_output(
        self, resource: str, path: str, chunks: Iterable[bytes], target: Target | None = None
    ) -> BlobRef:
        """Stage a file for `resource` at the job's target (or `target`); visible on success."""
        check_label(resource, "resource")
        path = check_file_path(path)
        self.staging.mkdir(parents=True, exist_ok=True)
        writer = self.depot.blobs.writer(directory=self.staging)
        with writer:
            for chunk in chunks:
                self.check_cancelled()
                writer.write(chunk)
            ref = writer.seal()
            writer.keep()
        self.outputs.append(
            StagedOutput(target or self.target, resource, path, writer.tmp_path, ref)
        )
        return ref
