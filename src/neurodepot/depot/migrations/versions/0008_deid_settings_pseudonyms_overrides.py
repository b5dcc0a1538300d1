"""de-identification: per-project settings and UID key, subject and session pseudonyms, overrides

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 23:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _project_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["project_id"],
        ["projects.id"],
        name=op.f(f"fk_{table}_project_id_projects"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "check_overrides",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("release", sa.String(length=64), nullable=False),
        sa.Column("criterion", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("steward", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        _project_fk("check_overrides"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_check_overrides")),
    )
    with op.batch_alter_table("check_overrides", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_check_overrides_project_id"), ["project_id"], unique=False
        )

    op.create_table(
        "deid_settings",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("options", sa.Text(), nullable=False),
        sa.Column("uid_root", sa.String(length=64), nullable=False),
        sa.Column("private_allow", sa.Text(), nullable=False),
        sa.Column("uid_key", sa.LargeBinary(), nullable=True),
        sa.Column("linkage_destroyed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        _project_fk("deid_settings"),
        sa.PrimaryKeyConstraint("project_id", name=op.f("pk_deid_settings")),
    )
    op.create_table(
        "subject_pseudonyms",
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("pseudonym", sa.String(length=8), nullable=False),
        sa.Column("date_offset_days", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _project_fk("subject_pseudonyms"),
        sa.ForeignKeyConstraint(
            ["subject_id"],
            ["subjects.id"],
            name=op.f("fk_subject_pseudonyms_subject_id_subjects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("subject_id", name=op.f("pk_subject_pseudonyms")),
        sa.UniqueConstraint(
            "project_id", "pseudonym", name=op.f("uq_subject_pseudonyms_project_id_pseudonym")
        ),
    )
    op.create_table(
        "session_pseudonyms",
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("pseudonym", sa.String(length=8), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _project_fk("session_pseudonyms"),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_session_pseudonyms_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("session_id", name=op.f("pk_session_pseudonyms")),
        sa.UniqueConstraint(
            "project_id", "pseudonym", name=op.f("uq_session_pseudonyms_project_id_pseudonym")
        ),
    )


def downgrade() -> None:
    op.drop_table("session_pseudonyms")
    op.drop_table("subject_pseudonyms")
    op.drop_table("deid_settings")
    with op.batch_alter_table("check_overrides", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_check_overrides_project_id"))
    op.drop_table("check_overrides")
