"""ORM models of the hierarchy and its resources.

What must hold is enforced by the database, not only by this code: labels unique per parent,
a session's subject in the session's own project, every resource owned by exactly one level,
every file pointing at a stored blob.
"""

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    String,
    Text,
    UniqueConstraint,
    text,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from neurodepot.depot.orm import Base, utcnow

LABEL_LENGTH = 64


class Project(Base):
    """A study: the unit of ownership, sharing and release."""

    __tablename__ = "projects"
    __table_args__ = (
        CheckConstraint("access IN ('private', 'internal', 'public')", name="known_access"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str] = mapped_column(String(LABEL_LENGTH), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text, default="")
    # Whether a study received for this project is archived once it is quiet, or waits in the
    # prearchive for someone to review it.
    auto_archive: Mapped[bool] = mapped_column(default=True, server_default=true())
    # Who beyond the named people may see it: `private`, `internal` (centre members), `public`.
    access: Mapped[str] = mapped_column(String(16), default="private", server_default="private")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    subjects: Mapped[list["Subject"]] = relationship(
        back_populates="project", cascade="all, delete-orphan", passive_deletes=True
    )


class Subject(Base):
    """A participant within one project, known by an internal label."""

    __tablename__ = "subjects"
    __table_args__ = (
        UniqueConstraint("project_id", "label"),
        UniqueConstraint("id", "project_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    label: Mapped[str] = mapped_column(String(LABEL_LENGTH))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    project: Mapped[Project] = relationship(back_populates="subjects")
    sessions: Mapped[list["ImagingSession"]] = relationship(
        back_populates="subject", cascade="all, delete-orphan", passive_deletes=True
    )


class ImagingSession(Base):
    """A visit (MR, EEG, MEG…). Labels are unique per project, as XNAT's experiment IDs are."""

    __tablename__ = "sessions"
    __table_args__ = (
        UniqueConstraint("project_id", "label"),
        ForeignKeyConstraint(
            ["subject_id", "project_id"],
            ["subjects.id", "subjects.project_id"],
            ondelete="CASCADE",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    subject_id: Mapped[int] = mapped_column()
    label: Mapped[str] = mapped_column(String(LABEL_LENGTH))
    modality: Mapped[str] = mapped_column(String(16), default="")
    acquired_on: Mapped[date | None] = mapped_column(default=None)
    study_instance_uid: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    subject: Mapped[Subject] = relationship(back_populates="sessions")
    scans: Mapped[list["Scan"]] = relationship(
        back_populates="session", cascade="all, delete-orphan", passive_deletes=True
    )


class Scan(Base):
    """One series or recording within a session; its label is XNAT's scan ID (e.g. `4`).

    The acquisition columns are filled from the DICOM headers when a series is archived, so
    that scans can be searched by what they are (sequence, timing, geometry).
    """

    __tablename__ = "scans"
    __table_args__ = (UniqueConstraint("session_id", "label"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"))
    label: Mapped[str] = mapped_column(String(LABEL_LENGTH))
    type: Mapped[str] = mapped_column(String(255), default="")
    modality: Mapped[str] = mapped_column(String(16), default="")
    series_instance_uid: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    series_number: Mapped[int | None] = mapped_column(default=None)
    series_description: Mapped[str] = mapped_column(
        String(255), default="", server_default=text("''")
    )
    protocol: Mapped[str] = mapped_column(String(255), default="", server_default=text("''"))
    image_type: Mapped[str] = mapped_column(String(255), default="", server_default=text("''"))
    sop_class_uid: Mapped[str] = mapped_column(String(64), default="", server_default=text("''"))
    instance_count: Mapped[int] = mapped_column(default=0, server_default="0")
    manufacturer: Mapped[str] = mapped_column(String(255), default="", server_default=text("''"))
    model: Mapped[str] = mapped_column(String(255), default="", server_default=text("''"))
    field_strength: Mapped[float | None] = mapped_column(default=None)
    acquired_on: Mapped[date | None] = mapped_column(default=None)
    repetition_time: Mapped[float | None] = mapped_column(default=None)
    echo_time: Mapped[float | None] = mapped_column(default=None)
    inversion_time: Mapped[float | None] = mapped_column(default=None)
    flip_angle: Mapped[float | None] = mapped_column(default=None)
    voxel_size: Mapped[str] = mapped_column(String(64), default="", server_default=text("''"))
    matrix: Mapped[str] = mapped_column(String(32), default="", server_default=text("''"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    session: Mapped[ImagingSession] = relationship(back_populates="scans")


OWNER_COLUMNS = ("project_id", "subject_id", "session_id", "scan_id")


class Resource(Base):
    """A named group of files (`DICOM`, `NIFTI`, `behaviour`…) owned by exactly one level."""

    __tablename__ = "resources"
    __table_args__ = (
        CheckConstraint(
            " + ".join(f"(CASE WHEN {c} IS NULL THEN 0 ELSE 1 END)" for c in OWNER_COLUMNS)
            + " = 1",
            name="exactly_one_owner",
        ),
        *(
            Index(
                f"uq_resources_{column}_label",
                column,
                "label",
                unique=True,
                sqlite_where=text(f"{column} IS NOT NULL"),
                postgresql_where=text(f"{column} IS NOT NULL"),
            )
            for column in OWNER_COLUMNS
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str] = mapped_column(String(LABEL_LENGTH))
    project_id: Mapped[int | None] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), default=None
    )
    subject_id: Mapped[int | None] = mapped_column(
        ForeignKey("subjects.id", ondelete="CASCADE"), default=None
    )
    session_id: Mapped[int | None] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), default=None
    )
    scan_id: Mapped[int | None] = mapped_column(
        ForeignKey("scans.id", ondelete="CASCADE"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    files: Mapped[list["ResourceFile"]] = relationship(
        back_populates="resource",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="ResourceFile.path",
    )


class ResourceFile(Base):
    """A file in a resource: a relative path naming a blob."""

    __tablename__ = "resource_files"
    __table_args__ = (UniqueConstraint("resource_id", "path"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("resources.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(String(1024))
    digest: Mapped[str] = mapped_column(ForeignKey("blobs.digest"), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str] = mapped_column(String(255), default="application/octet-stream")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    resource: Mapped[Resource] = relationship(back_populates="files")
