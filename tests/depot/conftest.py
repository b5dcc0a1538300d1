"""Fixtures for depot tests: a depot left at an older schema, and writer processes to kill."""

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from neurodepot.catalog.hierarchy import create_project
from neurodepot.config import CONFIG_FILE, load_settings, render_config
from neurodepot.depot import schema
from neurodepot.depot.database import create_depot_engine
from neurodepot.depot.folder import Depot

WRITER = Path(__file__).with_name("writer_process.py")
OLDEST_REVISION = "0001"

Spawn = Callable[..., "subprocess.Popen[str]"]


@pytest.fixture
def old_depot_root(tmp_path: Path, depot_env: dict[str, str]) -> Path:
    """A depot folder whose database stopped at the first migration (as an old release left it)."""
    root = tmp_path / "old-depot"
    root.mkdir()
    (root / CONFIG_FILE).write_text(render_config(), encoding="utf-8")
    engine = create_depot_engine(load_settings(root, depot_env).database_url)
    try:
        schema.upgrade(engine, OLDEST_REVISION)
    finally:
        engine.dispose()
    return root


@pytest.fixture
def project_depot(depot: Depot) -> Depot:
    """The test's depot with an empty project `p` (where `writer_process.py` writes)."""
    with depot.transaction() as db:
        create_project(db, "p")
    return depot


@pytest.fixture
def spawn_writer(depot_env: dict[str, str]) -> Iterator[Spawn]:
    """Start `writer_process.py` on a depot; any still running at the end is killed."""
    started: list[subprocess.Popen[str]] = []

    def spawn(root: Path, mode: str, path: str, *extra: str, **env: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, str(WRITER), str(root), mode, path, *extra],
            env={**depot_env, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        return process

    yield spawn
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)
