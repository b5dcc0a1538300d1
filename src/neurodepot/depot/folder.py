"""Creating and opening a depot folder.

`open_depot` is what every composition root calls: it loads the settings, connects to the
database, brings the schema up to date (or refuses), and hands back one `Depot` holding the
engine, a session factory and the blob store.
"""

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from neurodepot.config import CONFIG_FILE, Settings, load_settings, render_config
from neurodepot.depot import schema
from neurodepot.depot.blobstore import BlobStore
from neurodepot.depot.database import create_depot_engine, session_factory, transaction
from neurodepot.errors import Conflict, Invalid


@dataclass
class Depot:
    """An open depot. Close it (or use it as a context manager) to release connections."""

    settings: Settings
    engine: Engine
    blobs: BlobStore
    sessions: sessionmaker[Session] = field(init=False)
    read_sessions: sessionmaker[Session] = field(init=False)
    migrations_applied: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sessions = session_factory(self.engine)
        self.read_sessions = session_factory(self.engine, read_only=True)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with transaction(self.sessions) as session:
            yield session

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A transaction for reads only; on SQLite it never waits for a writer."""
        with transaction(self.read_sessions) as session:
            yield session

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> "Depot":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def init_depot(
    root: Path, database_url: str | None = None, env: Mapping[str, str] | None = None
) -> Depot:
    """Create a depot folder at `root` and its database schema; refuse to touch a non-empty folder.

    `database_url` (or `NEURODEPOT_DATABASE_URL`) puts the metadata in PostgreSQL; it is written
    to `neurodepot.toml` only when given explicitly, so a secret in the environment stays there.
    """
    root = root.expanduser().resolve()
    if (root / CONFIG_FILE).exists():
        raise Conflict(f"{root} is already a depot; open it with --root {root}")
    if root.exists() and not root.is_dir():
        raise Invalid(f"{root} exists and is not a folder")
    if root.exists() and any(root.iterdir()):
        raise Conflict(f"{root} is not empty; choose an empty or new folder for the depot")
    missing = [folder for folder in (root, *root.parents) if not folder.exists()]
    created = missing[-1] if missing else None
    root.mkdir(parents=True, exist_ok=True)
    settings_text = render_config(database_url)
    try:
        for name in ("prearchive", "work"):
            (root / name).mkdir()
        BlobStore(root / "blobs").create()
        tmp = root / (CONFIG_FILE + ".tmp")
        tmp.write_text(settings_text, encoding="utf-8")
        tmp.rename(root / CONFIG_FILE)
        return open_depot(root, env=env, auto_migrate=True)
    except BaseException:
        _remove_partial(root, created)
        raise


def open_depot(
    root: Path, env: Mapping[str, str] | None = None, auto_migrate: bool | None = None
) -> Depot:
    """Open the depot at `root`, migrating its schema unless `auto_migrate` says not to."""
    settings = load_settings(root, env)
    if auto_migrate is not None:
        settings = settings.with_overrides(auto_migrate=auto_migrate)
    engine = create_depot_engine(settings.database_url)
    try:
        applied = schema.ensure_current(engine, settings.auto_migrate)
    except BaseException:
        engine.dispose()
        raise
    blobs = BlobStore(settings.blob_root)
    blobs.create()
    return Depot(settings=settings, engine=engine, blobs=blobs, migrations_applied=applied)


def _remove_partial(root: Path, created: Path | None) -> None:
    """Undo a failed `init` so that it changes nothing; `created` is the top folder it made."""
    import shutil

    if created is not None:
        shutil.rmtree(created, ignore_errors=True)
        return
    for child in root.iterdir():
        if child.is_dir():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
