"""The depot schema: migrations from empty and from an old depot; what the database enforces."""

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, func, inspect, select, text
from sqlalchemy.exc import IntegrityError

import neurodepot.access.models
import neurodepot.catalog.models
import neurodepot.consent.models
import neurodepot.convert.models
import neurodepot.deid.models
import neurodepot.ingest.models
import neurodepot.jobs.models
from neurodepot.catalog.hierarchy import create_project, create_scan, create_session, create_subject
from neurodepot.catalog.models import (
    ImagingSession,
    Project,
    Resource,
    ResourceFile,
    Scan,
    Subject,
)
from neurodepot.config import CONFIG_FILE, render_config, sqlite_url
from neurodepot.depot import schema
from neurodepot.depot.database import create_depot_engine
from neurodepot.depot.folder import Depot, open_depot
from neurodepot.depot.orm import Base, Blob
from neurodepot.errors import MigrationRequired, Unavailable

MODELS = (
    neurodepot.access.models,
    neurodepot.consent.models,
    neurodepot.convert.models,
    neurodepot.deid.models,
    neurodepot.catalog.models,
    neurodepot.ingest.models,
    neurodepot.jobs.models,
)
ALL_REVISIONS = ["0001", "0002", "0003", "0004", "0005", "0006", "0007", "0008", "0009"]


def tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def schema_differences(engine: Engine) -> list[object]:
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        return list(compare_metadata(context, Base.metadata))


class TestMigrations:
    def test_empty_database_is_migrated_to_head_with_every_table(
        self, tmp_path: Path, database_url: str | None
    ) -> None:
        engine = create_depot_engine(database_url or sqlite_url(tmp_path))
        try:
            assert schema.current_revision(engine) is None
            assert schema.pending(engine) == ALL_REVISIONS
            assert schema.ensure_current(engine, auto_migrate=True) == ALL_REVISIONS
            assert schema.current_revision(engine) == schema.head_revision() == ALL_REVISIONS[-1]
            assert schema.pending(engine) == []
            assert tables(engine) == set(Base.metadata.tables) | {"alembic_version"}
        finally:
            engine.dispose()

    def test_upgrading_a_depot_that_holds_data_keeps_every_row(
        self, tmp_path: Path, database_url: str | None
    ) -> None:
        """Every migration from the first runs over a populated catalog and loses nothing.

        On SQLite a migration that rebuilds a table (batch mode) once cascaded its drop into
        every referring row: subjects, sessions, scans and files were gone after upgrading.
        """
        engine = create_depot_engine(database_url or sqlite_url(tmp_path))
        inserts = [
            "INSERT INTO blobs (digest, size, created_at) VALUES ('"
            + "a" * 64
            + "', 1, '2026-01-01')",
            "INSERT INTO projects (id, label, name, description, created_at)"
            " VALUES (1, 'P', 'P', '', '2026-01-01')",
            "INSERT INTO subjects (id, project_id, label, created_at)"
            " VALUES (1, 1, 'S', '2026-01-01')",
            "INSERT INTO sessions (id, project_id, subject_id, label, modality, created_at)"
            " VALUES (1, 1, 1, 'E', 'MR', '2026-01-01')",
            "INSERT INTO scans (id, session_id, label, type, modality, created_at)"
            " VALUES (1, 1, '1', 'T1w', 'MR', '2026-01-01')",
            "INSERT INTO resources (id, label, scan_id, created_at)"
            " VALUES (1, 'DICOM', 1, '2026-01-01')",
            "INSERT INTO resource_files"
            " (id, resource_id, path, digest, size, content_type, created_at)"
            " VALUES (1, 1, 'a.dcm', '" + "a" * 64 + "', 1, 'application/dicom', '2026-01-01')",
            "INSERT INTO users (id, username, email, display_name, is_admin, status, created_at)"
            " VALUES (1, 'mia', 'mia@example.org', '', false, 'active', '2026-01-01')",
            "INSERT INTO memberships (user_id, project_id, role, created_at)"
            " VALUES (1, 1, 'owner', '2026-01-01')",
        ]
        counted = ["projects", "subjects", "sessions", "scans", "resources", "resource_files",
                   "blobs", "users", "memberships"]  # fmt: skip
        try:
            schema.upgrade(engine, "0002")
            with engine.begin() as conn:
                for statement in inserts:
                    conn.execute(text(statement))
            schema.upgrade(engine)
            with engine.connect() as conn:
                counts = {
                    t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar() for t in counted
                }
            assert counts == dict.fromkeys(counted, 1)
            assert schema.current_revision(engine) == ALL_REVISIONS[-1]
        finally:
            engine.dispose()

    def test_new_depot_records_the_migrations_it_applied(self, depot: Depot) -> None:
        assert depot.migrations_applied == ALL_REVISIONS
        assert schema.current_revision(depot.engine) == schema.head_revision()

    def test_reopening_a_current_depot_applies_nothing(
        self, depot: Depot, depot_env: dict[str, str]
    ) -> None:
        with open_depot(depot.settings.root, env=depot_env, auto_migrate=False) as again:
            assert again.migrations_applied == []

    def test_older_depot_is_migrated_when_opened(
        self, old_depot_root: Path, depot_env: dict[str, str]
    ) -> None:
        with open_depot(old_depot_root, env=depot_env) as opened:
            assert opened.migrations_applied == ALL_REVISIONS[1:]
            assert schema.current_revision(opened.engine) == schema.head_revision()
            assert {"users", "memberships", "audit_events"} <= tables(opened.engine)
            assert schema_differences(opened.engine) == []

    @pytest.mark.parametrize("refused_by", ["argument", "environment", "settings file"])
    def test_older_depot_without_auto_migrate_is_refused_and_left_unchanged(
        self, old_depot_root: Path, depot_env: dict[str, str], refused_by: str
    ) -> None:
        env, auto_migrate = dict(depot_env), None
        if refused_by == "argument":
            auto_migrate = False
        elif refused_by == "environment":
            env["NEURODEPOT_AUTO_MIGRATE"] = "false"
        else:
            settings = render_config().replace("auto_migrate = true", "auto_migrate = false")
            (old_depot_root / CONFIG_FILE).write_text(settings)
        folder_before = sorted(p.name for p in old_depot_root.iterdir())

        with pytest.raises(MigrationRequired) as raised:
            open_depot(old_depot_root, env=env, auto_migrate=auto_migrate)

        assert "`neurodepot migrate`" in raised.value.message
        assert "0002" in raised.value.message
        assert sorted(p.name for p in old_depot_root.iterdir()) == folder_before
        with open_depot(old_depot_root, env=depot_env, auto_migrate=True) as opened:
            assert opened.migrations_applied == ALL_REVISIONS[1:]  # nothing had been applied

    def test_depot_at_an_unknown_revision_is_refused_as_unavailable(
        self, depot: Depot, depot_env: dict[str, str]
    ) -> None:
        with depot.engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = 'f00dfeed9999'"))
        depot.close()

        with pytest.raises(Unavailable) as raised:
            open_depot(depot.settings.root, env=depot_env, auto_migrate=True)

        assert not isinstance(raised.value, MigrationRequired)
        assert "f00dfeed9999" in raised.value.message
        assert "upgrade neurodepot" in raised.value.message
        engine = create_depot_engine(depot.settings.database_url)
        try:
            assert schema.current_revision(engine) == "f00dfeed9999"
        finally:
            engine.dispose()


class TestModelsMatchMigrations:
    def test_orm_metadata_matches_the_migrated_schema(self, depot: Depot) -> None:
        assert schema_differences(depot.engine) == []

    def test_the_comparison_notices_a_missing_index(self, depot: Depot) -> None:
        """Guards the test above against comparing nothing (e.g. the wrong schema)."""
        with depot.engine.begin() as conn:
            conn.execute(text("DROP INDEX ix_resource_files_digest"))
        differences = schema_differences(depot.engine)
        assert [(d[0], d[1].name) for d in differences] == [
            ("add_index", "ix_resource_files_digest")
        ]


@pytest.fixture
def tree(depot: Depot) -> dict[str, int]:
    """Projects `a` and `b`, subject `s` in `a` with session `v` and scan `1`; their ids."""
    with depot.transaction() as db:
        create_project(db, "a")
        create_project(db, "b")
        create_subject(db, "a", "s")
        create_session(db, "a", "s", "v")
        create_scan(db, "a", "s", "v", "1")
    with depot.transaction() as db:
        return {
            "a": db.scalar(select(Project.id).where(Project.label == "a")),
            "b": db.scalar(select(Project.id).where(Project.label == "b")),
            "s": db.scalar(select(Subject.id)),
            "v": db.scalar(select(ImagingSession.id)),
            "1": db.scalar(select(Scan.id)),
        }


def assert_database_rejects(depot: Depot, *rows: Base) -> None:
    with depot.sessions() as db:
        db.add_all(rows)
        with pytest.raises(IntegrityError):
            db.flush()


def assert_database_accepts(depot: Depot, *rows: Base) -> None:
    with depot.sessions() as db:
        db.add_all(rows)
        db.flush()
        db.rollback()


class TestDatabaseEnforces:
    def test_subject_of_a_nonexistent_project_is_rejected(self, depot: Depot) -> None:
        assert_database_rejects(depot, Subject(project_id=9999, label="s"))

    def test_session_whose_subject_belongs_to_another_project_is_rejected(
        self, depot: Depot, tree: dict[str, int]
    ) -> None:
        visit = {"subject_id": tree["s"], "label": "w"}
        assert_database_accepts(depot, ImagingSession(project_id=tree["a"], **visit))
        assert_database_rejects(depot, ImagingSession(project_id=tree["b"], **visit))

    @pytest.mark.parametrize("level", ["subject", "session", "scan"])
    def test_duplicate_label_under_one_parent_is_rejected(
        self, depot: Depot, tree: dict[str, int], level: str
    ) -> None:
        duplicates = {
            "subject": lambda: Subject(project_id=tree["a"], label="s"),
            "session": lambda: ImagingSession(
                project_id=tree["a"], subject_id=tree["s"], label="v"
            ),
            "scan": lambda: Scan(session_id=tree["v"], label="1"),
        }
        assert_database_rejects(depot, duplicates[level]())

    def test_session_label_is_unique_across_the_subjects_of_a_project(
        self, depot: Depot, tree: dict[str, int]
    ) -> None:
        with depot.transaction() as db:
            create_subject(db, "a", "t")
            other = db.scalar(select(Subject.id).where(Subject.label == "t"))
        assert_database_rejects(
            depot, ImagingSession(project_id=tree["a"], subject_id=other, label="v")
        )

    @pytest.mark.parametrize(
        "owners", [{}, {"project_id": "a", "subject_id": "s"}, {"session_id": "v", "scan_id": "1"}]
    )
    def test_resource_without_exactly_one_owner_is_rejected(
        self, depot: Depot, tree: dict[str, int], owners: dict[str, str]
    ) -> None:
        columns = {column: tree[key] for column, key in owners.items()}
        assert_database_rejects(depot, Resource(label="R", **columns))

    @pytest.mark.parametrize(
        ("column", "key"),
        [("project_id", "a"), ("subject_id", "s"), ("session_id", "v"), ("scan_id", "1")],
    )
    def test_duplicate_resource_label_of_one_owner_is_rejected(
        self, depot: Depot, tree: dict[str, int], column: str, key: str
    ) -> None:
        assert_database_accepts(depot, Resource(label="R", **{column: tree[key]}))
        assert_database_rejects(
            depot, *(Resource(label="R", **{column: tree[key]}) for _ in range(2))
        )

    def test_same_resource_label_at_different_owners_is_accepted(
        self, depot: Depot, tree: dict[str, int]
    ) -> None:
        assert_database_accepts(
            depot,
            Resource(label="R", project_id=tree["a"]),
            Resource(label="R", project_id=tree["b"]),
            Resource(label="R", subject_id=tree["s"]),
            Resource(label="R", session_id=tree["v"]),
            Resource(label="R", scan_id=tree["1"]),
        )

    def test_file_naming_an_unknown_blob_is_rejected(
        self, depot: Depot, tree: dict[str, int]
    ) -> None:
        with depot.transaction() as db:
            db.add(Resource(label="R", project_id=tree["a"]))
        with depot.transaction() as db:
            resource = db.scalar(select(Resource.id))
        assert_database_rejects(
            depot, ResourceFile(resource_id=resource, path="f", digest="0" * 64, size=1)
        )

    @pytest.mark.parametrize(("digest", "size"), [("0" * 63, 1), ("0" * 64, -1)])
    def test_blob_with_a_malformed_digest_or_negative_size_is_rejected(
        self, depot: Depot, digest: str, size: int
    ) -> None:
        assert_database_rejects(depot, Blob(digest=digest, size=size))

    def test_deleting_a_project_row_cascades_to_everything_below_it(
        self, depot: Depot, tree: dict[str, int]
    ) -> None:
        with depot.transaction() as db:
            db.add(Blob(digest="0" * 64, size=1))
            db.add(Resource(label="R", scan_id=tree["1"]))
            db.flush()
            resource = db.scalar(select(Resource.id))
            db.add(ResourceFile(resource_id=resource, path="f", digest="0" * 64, size=1))
        with depot.engine.begin() as conn:
            conn.execute(text("DELETE FROM projects WHERE label = 'a'"))
        with depot.transaction() as db:
            for model in (Subject, ImagingSession, Scan, Resource, ResourceFile):
                assert db.scalar(select(func.count()).select_from(model)) == 0, model
            assert db.scalar(select(func.count()).select_from(Blob)) == 1
