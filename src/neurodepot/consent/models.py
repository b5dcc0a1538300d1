"""ORM models of what governs sharing: consent, Data Usage Agreements, approvals, processing.

Consent records and DUA versions are only ever added, never changed: the current consent of a
subject is its newest record (a withdrawal is a record too), the current DUA of a scope its
highest version. What a subject agreed to, and when, can always be shown.
"""

from datetime import date, datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from neurodepot.depot.orm import Base, utcnow

CONSENT_LEVELS = ("none", "internal", "open")


class ConsentRecord(Base):
    """One statement of a subject's consent (or its withdrawal), as recorded."""

    __tablename__ = "consent_records"
    __table_args__ = (
        CheckConstraint("level IN ('none', 'internal', 'open')", name="known_level"),
        Index("ix_consent_records_subject_id_id", "subject_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subject_id: Mapped[int] = mapped_column(ForeignKey("subjects.id", ondelete="CASCADE"))
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    level: Mapped[str] = mapped_column(String(16))
    form: Mapped[str] = mapped_column(String(255), default="")
    form_version: Mapped[str] = mapped_column(String(64), default="")
    given_on: Mapped[date | None] = mapped_column(default=None)
    # Free text the data must respect, e.g. "no commercial use".
    restrictions: Mapped[str] = mapped_column(Text, default="")
    # Set on the record that withdraws consent: the subject is then shared with no one.
    withdrawn_on: Mapped[date | None] = mapped_column(default=None)
    recorded_by: Mapped[str] = mapped_column(String(255))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


class DuaVersion(Base):
    """One published version of a Data Usage Agreement: site-wide, or one project's."""

    __tablename__ = "dua_versions"
    __table_args__ = (
        UniqueConstraint("scope", "version"),
        CheckConstraint("version > 0", name="positive_version"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # `site`, or `project:<id>`: one sequence of versions per scope.
    scope: Mapped[str] = mapped_column(String(32), index=True)
    project_id: Mapped[int | None] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), default=None
    )
    version: Mapped[int] = mapped_column()
    title: Mapped[str] = mapped_column(String(255))
    body: Mapped[str] = mapped_column(Text)
    published_by: Mapped[str] = mapped_column(String(255))
    published_at: Mapped[datetime] = mapped_column(default=utcnow)


class DuaAcceptance(Base):
    """A user's acceptance of one DUA version."""

    __tablename__ = "dua_acceptances"
    __table_args__ = (UniqueConstraint("dua_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    dua_id: Mapped[int] = mapped_column(ForeignKey("dua_versions.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    accepted_at: Mapped[datetime] = mapped_column(default=utcnow)


class SharingRequest(Base):
    """An owner's request to change a project's access level, and a steward's decision on it.

    Going public needs a steward's recorded approval; other levels are applied at once and
    recorded here too, so a project's sharing history is one table.
    """

    __tablename__ = "sharing_requests"
    __table_args__ = (
        CheckConstraint("level IN ('private', 'internal', 'public')", name="known_level"),
        CheckConstraint(
            "status IN ('pending', 'applied', 'rejected', 'superseded')", name="known_status"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    level: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    requested_by: Mapped[str] = mapped_column(String(255))
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_by: Mapped[str] = mapped_column(String(255), default="", server_default=text("''"))
    decided_at: Mapped[datetime | None] = mapped_column(default=None)
    reason: Mapped[str] = mapped_column(Text, default="", server_default=text("''"))  # requester's
    decision_reason: Mapped[str] = mapped_column(Text, default="", server_default=text("''"))


class ProcessingRecord(Base):
    """A project's GDPR record of processing (article 30) and its retention date."""

    __tablename__ = "processing_records"

    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    purpose: Mapped[str] = mapped_column(Text, default="")
    lawful_basis: Mapped[str] = mapped_column(Text, default="")
    # JSON list of data categories as text (e.g. ["MRI", "health data"]).
    data_categories: Mapped[str] = mapped_column(Text, default="[]")
    controller: Mapped[str] = mapped_column(String(255), default="")
    retention_until: Mapped[date | None] = mapped_column(default=None)
    updated_by: Mapped[str] = mapped_column(String(255), default="")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
