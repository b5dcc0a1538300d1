"""What became of each scan's last conversion: converted (with the tool's version) or why not.

The NIfTI files themselves live in the scan's `NIFTI` resource; this row is the provenance a
preview, an export and a user need without opening them.
"""

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from neurodepot.depot.orm import Base, utcnow


class ScanConversion(Base):
    __tablename__ = "scan_conversions"

    scan_id: Mapped[int] = mapped_column(
        ForeignKey("scans.id", ondelete="CASCADE"), primary_key=True
    )
    # `converted` or `failed`.
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    tool: Mapped[str] = mapped_column(String(64))
    tool_version: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[int | None] = mapped_column(default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
