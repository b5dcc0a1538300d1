"""The prearchive: studies as they arrive, before they become sessions in a project.

A prearchive study collects the instances of one StudyInstanceUID sent to one destination; it
moves receiving → ready (after a quiet period) → archived, or stops at conflict/error with a
reason. Instances point at blobs, so the garbage collector and `fsck` see them as referenced.
Labels (not foreign keys) name the destination: a study may be routed to a project that does
not exist yet, or to none (unassigned), and it must still be kept.
"""

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from neurodepot.depot.orm import Base, utcnow

STATES = ("receiving", "ready", "archived", "conflict", "error")
OPEN_STATES = ("receiving", "ready")
UID_LENGTH = 64


class PrearchiveStudy(Base):
    """One study (StudyInstanceUID) received for one destination."""

    __tablename__ = "prearchive_studies"
    __table_args__ = (
        CheckConstraint(
            "state IN ('receiving', 'ready', 'archived', 'conflict', 'error')",
            name="known_state",
        ),
        Index("ix_prearchive_studies_state_last_received_at", "state", "last_received_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_instance_uid: Mapped[str] = mapped_column(String(UID_LENGTH), index=True)
    state: Mapped[str] = mapped_column(String(16), default="receiving")
    reason: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(16), default="dicom")
    called_aet: Mapped[str] = mapped_column(String(16), default="")
    calling_aet: Mapped[str] = mapped_column(String(16), default="")
    project: Mapped[str | None] = mapped_column(String(64), default=None)
    subject: Mapped[str | None] = mapped_column(String(64), default=None)
    session: Mapped[str | None] = mapped_column(String(64), default=None)
    # The session label was made up from patient and date, not given by a rule or a person.
    session_derived: Mapped[bool] = mapped_column(default=False)
    rule: Mapped[str] = mapped_column(String(255), default="")
    patient_name: Mapped[str] = mapped_column(String(255), default="")
    patient_id: Mapped[str] = mapped_column(String(64), default="")
    study_date: Mapped[date | None] = mapped_column(default=None)
    study_description: Mapped[str] = mapped_column(String(255), default="")
    accession_number: Mapped[str] = mapped_column(String(64), default="")
    modality: Mapped[str] = mapped_column(String(16), default="")
    instance_count: Mapped[int] = mapped_column(default=0)
    total_size: Mapped[int] = mapped_column(BigInteger, default=0)
    conflict_count: Mapped[int] = mapped_column(default=0)
    first_received_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_received_at: Mapped[datetime] = mapped_column(default=utcnow)
    archived_at: Mapped[datetime | None] = mapped_column(default=None)
    archived_to: Mapped[str] = mapped_column(String(512), default="")


class PrearchiveInstance(Base):
    """One SOP instance of a prearchive study, stored byte-exact as a blob.

    `dataset_digest` hashes the dataset without its file meta information: the same instance
    re-sent by another sender gets new meta (source AE title) but is the same data.
    """

    __tablename__ = "prearchive_instances"
    __table_args__ = (UniqueConstraint("study_id", "sop_instance_uid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("prearchive_studies.id", ondelete="CASCADE"))
    sop_instance_uid: Mapped[str] = mapped_column(String(UID_LENGTH))
    sop_class_uid: Mapped[str] = mapped_column(String(UID_LENGTH))
    series_instance_uid: Mapped[str] = mapped_column(String(UID_LENGTH))
    series_number: Mapped[int | None] = mapped_column(default=None)
    modality: Mapped[str] = mapped_column(String(16), default="")
    transfer_syntax: Mapped[str] = mapped_column(String(UID_LENGTH), default="")
    digest: Mapped[str] = mapped_column(ForeignKey("blobs.digest"), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    dataset_digest: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class PrearchiveConflict(Base):
    """An instance whose UID was already held with different data: kept aside, never applied.

    `against` says what it clashed with: another instance in the prearchive, or the archive.
    """

    __tablename__ = "prearchive_conflicts"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(
        ForeignKey("prearchive_studies.id", ondelete="CASCADE"), index=True
    )
    sop_instance_uid: Mapped[str] = mapped_column(String(UID_LENGTH))
    digest: Mapped[str] = mapped_column(ForeignKey("blobs.digest"), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    dataset_digest: Mapped[str] = mapped_column(String(64))
    against: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class ScanInstance(Base):
    """An archived SOP instance: which scan holds it, as which file, with which data.

    Lets a re-sent study merge into its session (same data: nothing to do) and a clashing one be
    refused (same UID, other data) without reading any archived file.
    """

    __tablename__ = "scan_instances"
    __table_args__ = (UniqueConstraint("scan_id", "sop_instance_uid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    scan_id: Mapped[int] = mapped_column(ForeignKey("scans.id", ondelete="CASCADE"))
    file_id: Mapped[int] = mapped_column(
        ForeignKey("resource_files.id", ondelete="CASCADE"), index=True
    )
    sop_instance_uid: Mapped[str] = mapped_column(String(UID_LENGTH), index=True)
    sop_class_uid: Mapped[str] = mapped_column(String(UID_LENGTH))
    dataset_digest: Mapped[str] = mapped_column(String(64))
