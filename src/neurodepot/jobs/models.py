"""The job table: the one record of every pipeline run, which survives any process.

Workers and the dispatcher coordinate only through these rows: a job is claimed by an atomic
update (queued → running, with a lease kept alive by heartbeats), so no job runs twice and none
is lost when a worker or the server dies.
"""

from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from neurodepot.depot.orm import Base, utcnow

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")


class Job(Base):
    """One run of one pipeline on one target."""

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')",
            name="known_status",
        ),
        CheckConstraint("progress >= 0 AND progress <= 1", name="progress_is_a_fraction"),
        Index("ix_jobs_status_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    pipeline: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(512))
    params: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    progress: Mapped[float] = mapped_column(default=0.0)
    message: Mapped[str] = mapped_column(Text, default="")
    log: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str] = mapped_column(Text, default="")
    outputs: Mapped[list[str]] = mapped_column(JSON, default=list)
    requested_by: Mapped[str] = mapped_column(String(255), default="")
    attempt: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=1)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    after_job_id: Mapped[int | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL"), default=None, index=True
    )
    worker: Mapped[str] = mapped_column(String(255), default="")
    heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class ProjectPipeline(Base):
    """A pipeline a project runs on every newly archived session, in `position` order."""

    __tablename__ = "project_pipelines"

    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(primary_key=True)
    pipeline: Mapped[str] = mapped_column(String(128))
    params: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
