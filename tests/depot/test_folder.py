"""Creating and opening depot folders, and refusing what is not one."""

from pathlib import Path

import pytest
from sqlalchemy import func, select

from neurodepot.catalog.models import Project
from neurodepot.config import CONFIG_FILE, SQLITE_FILE
from neurodepot.depot.folder import Depot, init_depot, open_depot
from neurodepot.errors import Conflict, Invalid, NotADepot, Unavailable

UNREACHABLE = "postgresql+psycopg://postgres:s3cret@127.0.0.1:1/x"


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path under `folder` with its content (None for folders)."""
    return {
        str(path.relative_to(folder)): None if path.is_dir() else path.read_bytes()
        for path in sorted(folder.rglob("*"))
    }


class TestInit:
    def test_new_depot_has_its_settings_and_folders(
        self, depot: Depot, database_url: str | None
    ) -> None:
        root = depot.settings.root
        for folder in ("blobs/sha256", "blobs/tmp", "prearchive", "work"):
            assert (root / folder).is_dir(), folder
        assert (root / CONFIG_FILE).is_file()
        assert (root / SQLITE_FILE).exists() == (database_url is None)
        assert not (root / (CONFIG_FILE + ".tmp")).exists()

    def test_database_url_from_the_environment_is_not_written_to_the_settings_file(
        self, depot: Depot, depot_env: dict[str, str]
    ) -> None:
        settings_text = (depot.settings.root / CONFIG_FILE).read_text()
        assert "\ndatabase_url" not in settings_text
        if "NEURODEPOT_DATABASE_URL" in depot_env:
            assert depot_env["NEURODEPOT_DATABASE_URL"] not in settings_text

    def test_explicit_database_url_is_written_and_used_on_reopening(
        self, tmp_path: Path, postgres_schema_url: str
    ) -> None:
        created = init_depot(tmp_path / "d", database_url=postgres_schema_url, env={})
        with created, created.transaction() as db:
            db.add(Project(label="p", name="p"))
        with open_depot(tmp_path / "d", env={}) as reopened:
            assert reopened.engine.dialect.name == "postgresql"
            with reopened.transaction() as db:
                assert db.scalar(select(Project.label)) == "p"
        assert not (tmp_path / "d" / SQLITE_FILE).exists()

    def test_init_into_an_empty_existing_folder_is_allowed(self, tmp_path: Path) -> None:
        (tmp_path / "d").mkdir()
        with init_depot(tmp_path / "d", env={}) as created:
            assert created.settings.root == (tmp_path / "d").resolve()

    def test_init_into_a_non_empty_folder_is_refused_and_changes_nothing(
        self, tmp_path: Path
    ) -> None:
        folder = tmp_path / "d"
        (folder / "data").mkdir(parents=True)
        (folder / "data" / "notes.txt").write_text("mine")
        before = snapshot(folder)

        with pytest.raises(Conflict, match="not empty"):
            init_depot(folder, env={})

        assert snapshot(folder) == before

    def test_init_over_an_existing_depot_is_refused_and_changes_nothing(
        self, depot: Depot, depot_env: dict[str, str]
    ) -> None:
        root = depot.settings.root
        before = snapshot(root)
        with pytest.raises(Conflict, match="already a depot"):
            init_depot(root, env=depot_env)
        assert snapshot(root) == before

    def test_init_onto_a_file_is_invalid(self, tmp_path: Path) -> None:
        (tmp_path / "f").write_text("x")
        with pytest.raises(Invalid, match="not a folder"):
            init_depot(tmp_path / "f", env={})
        assert (tmp_path / "f").read_text() == "x"

    def test_init_with_an_unreachable_database_leaves_no_folder_behind(
        self, tmp_path: Path
    ) -> None:
        with pytest.raises(Unavailable) as raised:
            init_depot(tmp_path / "new" / "d", database_url=UNREACHABLE, env={})
        assert "cannot reach the database at postgresql+psycopg://postgres:***@127.0.0.1:1/x" in (
            raised.value.message
        )
        assert "s3cret" not in raised.value.message
        assert list(tmp_path.iterdir()) == []

    def test_init_with_an_unreachable_database_empties_an_existing_folder_again(
        self, tmp_path: Path
    ) -> None:
        (tmp_path / "d").mkdir()
        with pytest.raises(Unavailable):
            init_depot(tmp_path / "d", env={"NEURODEPOT_DATABASE_URL": UNREACHABLE})
        assert list((tmp_path / "d").iterdir()) == []


class TestOpen:
    def test_folder_without_settings_is_not_a_depot(self, tmp_path: Path) -> None:
        with pytest.raises(NotADepot) as raised:
            open_depot(tmp_path, env={})
        assert str(tmp_path.resolve()) in raised.value.message
        assert "neurodepot init" in raised.value.message

    def test_missing_folder_is_not_a_depot(self, tmp_path: Path) -> None:
        with pytest.raises(NotADepot):
            open_depot(tmp_path / "nowhere", env={})
        assert not (tmp_path / "nowhere").exists()

    def test_unreachable_database_is_unavailable_with_what_to_check(
        self, depot: Depot, depot_env: dict[str, str]
    ) -> None:
        env = {**depot_env, "NEURODEPOT_DATABASE_URL": UNREACHABLE}
        with pytest.raises(Unavailable) as raised:
            open_depot(depot.settings.root, env=env)
        assert "127.0.0.1:1" in raised.value.message
        assert "NEURODEPOT_DATABASE_URL" in raised.value.message

    @pytest.mark.parametrize("url", ["not a url", "nosuchdb+nodriver://host/db"])
    def test_malformed_or_unsupported_database_url_is_invalid(
        self, depot: Depot, depot_env: dict[str, str], url: str
    ) -> None:
        env = {**depot_env, "NEURODEPOT_DATABASE_URL": url}
        with pytest.raises(Invalid, match="database URL"):
            open_depot(depot.settings.root, env=env)

    def test_blob_folders_are_recreated_when_opening(
        self, depot: Depot, depot_env: dict[str, str]
    ) -> None:
        (depot.blobs.tmp_root).rmdir()
        with open_depot(depot.settings.root, env=depot_env) as reopened:
            assert reopened.blobs.tmp_root.is_dir()


class TestTransaction:
    def test_work_is_committed_on_success(self, depot: Depot) -> None:
        with depot.transaction() as db:
            db.add(Project(label="p", name="p"))
        with depot.transaction() as db:
            assert db.scalar(select(func.count()).select_from(Project)) == 1

    def test_work_is_rolled_back_on_error(self, depot: Depot) -> None:
        with pytest.raises(RuntimeError), depot.transaction() as db:
            db.add(Project(label="p", name="p"))
            db.flush()
            raise RuntimeError("interrupted")
        with depot.transaction() as db:
            assert db.scalar(select(func.count()).select_from(Project)) == 0
