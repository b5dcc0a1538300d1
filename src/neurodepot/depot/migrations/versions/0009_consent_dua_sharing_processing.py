"""consent records, DUA versions and acceptances, sharing requests, processing records

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 03:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dua_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(length=32), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("published_by", sa.String(length=255), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("version > 0", name=op.f("ck_dua_versions_positive_version")),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_dua_versions_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dua_versions")),
        sa.UniqueConstraint("scope", "version", name=op.f("uq_dua_versions_scope_version")),
    )
    with op.batch_alter_table("dua_versions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dua_versions_scope"), ["scope"], unique=False)

    op.create_table(
        "processing_records",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("lawful_basis", sa.Text(), nullable=False),
        sa.Column("data_categories", sa.Text(), nullable=False),
        sa.Column("controller", sa.String(length=255), nullable=False),
        sa.Column("retention_until", sa.Date(), nullable=True),
        sa.Column("updated_by", sa.String(length=255), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_processing_records_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", name=op.f("pk_processing_records")),
    )
    op.create_table(
        "sharing_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("requested_by", sa.String(length=255), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "decided_by", sa.String(length=255), server_default=sa.text("''"), nullable=False
        ),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("decision_reason", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.CheckConstraint(
            "level IN ('private', 'internal', 'public')",
            name=op.f("ck_sharing_requests_known_level"),
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'applied', 'rejected', 'superseded')",
            name=op.f("ck_sharing_requests_known_status"),
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_sharing_requests_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sharing_requests")),
    )
    with op.batch_alter_table("sharing_requests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sharing_requests_project_id"), ["project_id"], unique=False
        )

    op.create_table(
        "consent_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("form", sa.String(length=255), nullable=False),
        sa.Column("form_version", sa.String(length=64), nullable=False),
        sa.Column("given_on", sa.Date(), nullable=True),
        sa.Column("restrictions", sa.Text(), nullable=False),
        sa.Column("withdrawn_on", sa.Date(), nullable=True),
        sa.Column("recorded_by", sa.String(length=255), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "level IN ('none', 'internal', 'open')", name=op.f("ck_consent_records_known_level")
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_consent_records_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["subject_id"],
            ["subjects.id"],
            name=op.f("fk_consent_records_subject_id_subjects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_records")),
    )
    with op.batch_alter_table("consent_records", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_consent_records_project_id"), ["project_id"], unique=False
        )
        batch_op.create_index(
            "ix_consent_records_subject_id_id", ["subject_id", "id"], unique=False
        )

    op.create_table(
        "dua_acceptances",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dua_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["dua_id"],
            ["dua_versions.id"],
            name=op.f("fk_dua_acceptances_dua_id_dua_versions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_dua_acceptances_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dua_acceptances")),
        sa.UniqueConstraint("dua_id", "user_id", name=op.f("uq_dua_acceptances_dua_id_user_id")),
    )
    with op.batch_alter_table("dua_acceptances", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dua_acceptances_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("dua_acceptances", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dua_acceptances_user_id"))

    op.drop_table("dua_acceptances")
    with op.batch_alter_table("consent_records", schema=None) as batch_op:
        batch_op.drop_index("ix_consent_records_subject_id_id")
        batch_op.drop_index(batch_op.f("ix_consent_records_project_id"))

    op.drop_table("consent_records")
    with op.batch_alter_table("sharing_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sharing_requests_project_id"))

    op.drop_table("sharing_requests")
    op.drop_table("processing_records")
    with op.batch_alter_table("dua_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dua_versions_scope"))

    op.drop_table("dua_versions")
