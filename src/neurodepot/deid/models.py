"""What de-identification keeps per project: its settings, the linkage and stewards' decisions.

The linkage (internal subject and session ↔ pseudonym, the subject's date offset, the project's
UID key) is what re-identifies shared data; it is readable by the project's owners alone and
`linkage destroy` deletes it for good, leaving `linkage_destroyed_at` behind as the record.
"""

from datetime import datetime

from sqlalchemy import ForeignKey, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from neurodepot.depot.orm import Base, utcnow

PSEUDONYM_LENGTH = 8


class DeidSettings(Base):
    """A project's profile options, UID root and private allow-list (JSON lists as text)."""

    __tablename__ = "deid_settings"

    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    options: Mapped[str] = mapped_column(Text, default="[]")
    uid_root: Mapped[str] = mapped_column(String(64), default="2.25")
    private_allow: Mapped[str] = mapped_column(Text, default="[]")
    # The HMAC key behind UID remapping; None once the linkage is destroyed.
    uid_key: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    linkage_destroyed_at: Mapped[datetime | None] = mapped_column(default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class SubjectPseudonym(Base):
    __tablename__ = "subject_pseudonyms"
    __table_args__ = (UniqueConstraint("project_id", "pseudonym"),)

    subject_id: Mapped[int] = mapped_column(
        ForeignKey("subjects.id", ondelete="CASCADE"), primary_key=True
    )
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    pseudonym: Mapped[str] = mapped_column(String(PSEUDONYM_LENGTH))
    date_offset_days: Mapped[int] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SessionPseudonym(Base):
    __tablename__ = "session_pseudonyms"
    __table_args__ = (UniqueConstraint("project_id", "pseudonym"),)

    session_id: Mapped[int] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True
    )
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    pseudonym: Mapped[str] = mapped_column(String(PSEUDONYM_LENGTH))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CheckOverride(Base):
    """A steward's written decision to let a failed criterion pass for one release."""

    __tablename__ = "check_overrides"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    release: Mapped[str] = mapped_column(String(64))
    criterion: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    steward: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
