"""Fixtures shared by every test: a fresh depot per test (SQLite and PostgreSQL), a small tree.

PostgreSQL tests get their own schema in the `test` database (dropped afterwards), so they can
run side by side. Where PostgreSQL is not reachable they are skipped with the reason shown,
except in CI (`NEURODEPOT_REQUIRE_POSTGRES=1`), where that is a failure.
"""

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from neurodepot.catalog.hierarchy import create_project, create_scan, create_session, create_subject
from neurodepot.depot.folder import Depot, init_depot

POSTGRES_URL = os.environ.get(
    "NEURODEPOT_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _find_testdata() -> Path:
    """`NEURODEPOT_TESTDATA`, else `../shared/testdata` from the project's root, else the
    workplace's `/work/shared/testdata` (a clone made elsewhere still finds it)."""
    if os.environ.get("NEURODEPOT_TESTDATA"):
        return Path(os.environ["NEURODEPOT_TESTDATA"])
    beside = Path(__file__).resolve().parents[1].parent / "shared" / "testdata"
    workplace = Path("/work/shared/testdata")
    return beside if beside.is_dir() or not workplace.is_dir() else workplace


TESTDATA = _find_testdata()


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def _postgres_reachable() -> str | None:
    try:
        with psycopg.connect(_libpq(POSTGRES_URL), connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0]


@pytest.fixture(scope="session")
def postgres_available() -> None:
    problem = _postgres_reachable()
    if problem is None:
        return
    message = f"PostgreSQL at {POSTGRES_URL} is not reachable: {problem}"
    if os.environ.get("NEURODEPOT_REQUIRE_POSTGRES"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def postgres_schema_url(postgres_available: None) -> Iterator[str]:
    """A database URL whose connections work in a fresh, empty schema."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_libpq(POSTGRES_URL), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(_libpq(POSTGRES_URL), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    """None for the embedded SQLite database, else a PostgreSQL URL in a private schema."""
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("postgres_schema_url")


@pytest.fixture
def depot_env(database_url: str | None) -> dict[str, str]:
    """Environment for opening the test's depot (what the CLI and server would see)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEURODEPOT_")}
    if database_url is not None:
        env["NEURODEPOT_DATABASE_URL"] = database_url
    return env


@pytest.fixture
def depot(tmp_path: Path, depot_env: dict[str, str]) -> Iterator[Depot]:
    """A new, migrated depot in `tmp_path / "depot"` on the parametrised database."""
    opened = init_depot(tmp_path / "depot", env=depot_env)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture(scope="session")
def testdata() -> Path:
    """`../shared/testdata`; a test needing it fails (not skips) when it is absent."""
    if not (TESTDATA / "dcm_qa_nih").is_dir():
        pytest.fail(f"real test data not found: looked for {TESTDATA / 'dcm_qa_nih'}")
    return TESTDATA


@pytest.fixture
def tree(depot: Depot) -> Depot:
    """The test's depot with project `p`, its subject `s`, session `v` and scan `1`."""
    with depot.transaction() as db:
        create_project(db, "p")
        create_subject(db, "p", "s")
        create_session(db, "p", "s", "v", modality="mr")
        create_scan(db, "p", "s", "v", "1", type="T1w", modality="mr")
    return depot
