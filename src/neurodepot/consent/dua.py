"""Data Usage Agreements: versioned texts, site-wide and per project, and their acceptances.

Downloading a project's shared data needs the current site DUA and, where the project has one,
the current project DUA accepted by the downloader. Publishing a new version makes earlier
acceptances of that scope no longer enough. With no site DUA published, nothing shared can be
downloaded: the agreement is what makes sharing responsible, so its absence denies.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from neurodepot.access import audit
from neurodepot.access.models import User
from neurodepot.catalog.hierarchy import find_project
from neurodepot.catalog.models import Project
from neurodepot.consent.models import DuaAcceptance, DuaVersion
from neurodepot.errors import Conflict, Invalid, NotFound

SITE = "site"
TITLE_LIMIT = 255
# About 20 pages. Kept so that a DUA sent as JSON with every character escaped (`\uXXXX`,
# surrogate pairs: 12 bytes) stays under the API's 1 MiB body limit.
BODY_LIMIT = 80_000
NO_SITE_DUA = (
    "no site Data Usage Agreement is published yet, so shared data cannot be downloaded; "
    "a site admin publishes one with `neurodepot dua publish`"
)


@dataclass(frozen=True)
class DuaInfo:
    id: int
    scope: str  # `site` or the project's label
    version: int
    title: str
    body: str
    published_by: str
    published_at: datetime
    current: bool

    @property
    def name(self) -> str:
        """How a refusal names it: what to accept, and its id to accept it by."""
        which = "the site DUA" if self.scope == SITE else f"project {self.scope}'s DUA"
        return f"{which} {self.title!r} version {self.version} (id {self.id})"


@dataclass(frozen=True)
class AcceptanceInfo:
    dua_id: int
    scope: str
    version: int
    username: str
    accepted_at: datetime
    current: bool


def scope_of(project_id: int | None) -> str:
    return SITE if project_id is None else f"project:{project_id}"


def publish(db: Session, actor: str, title: str, body: str, project: str | None = None) -> DuaInfo:
    """Publish the next version of the site's (or `project`'s) DUA; audited."""
    title, body = title.strip(), body.strip()
    if not title or len(title) > TITLE_LIMIT or any(c < " " for c in title):
        raise Invalid(f"a DUA needs a title of one line of 1 to {TITLE_LIMIT} characters")
    if not body or len(body) > BODY_LIMIT or "\x00" in body:
        raise Invalid(f"a DUA needs a text of 1 to {BODY_LIMIT} characters")
    project_id = find_project(db, project).id if project is not None else None
    scope = scope_of(project_id)
    latest = db.scalar(select(func.max(DuaVersion.version)).where(DuaVersion.scope == scope))
    row = DuaVersion(
        scope=scope,
        project_id=project_id,
        version=(latest or 0) + 1,
        title=title,
        body=body,
        published_by=actor,
    )
    try:
        with db.begin_nested():
            db.add(row)
            db.flush()
    except IntegrityError:
        raise Conflict(
            "another version of this DUA was published at the same time: retry"
        ) from None
    audit.record(
        db, actor, "dua_published", _audit_target(project), {"version": row.version, "id": row.id}
    )
    return _info(db, row, True)


def current_duas(db: Session, project_id: int | None) -> list[DuaInfo]:
    """The current site DUA and, for a project that has one, its current DUA."""
    scopes = [SITE] + ([scope_of(project_id)] if project_id is not None else [])
    found = []
    for scope in scopes:
        row = db.scalar(
            select(DuaVersion)
            .where(DuaVersion.scope == scope)
            .order_by(DuaVersion.version.desc())
            .limit(1)
        )
        if row is not None:
            found.append(_info(db, row, True))
    return found


def unaccepted(db: Session, user_id: int, project_id: int) -> tuple[str, ...]:
    """What `user_id` must still accept to download `project_id`'s shared data (named)."""
    current = current_duas(db, project_id)
    if not any(d.scope == SITE for d in current):
        return (NO_SITE_DUA,)
    accepted = accepted_ids(db, user_id, [d.id for d in current])
    return tuple(d.name for d in current if d.id not in accepted)


def accepted_ids(db: Session, user_id: int | None, dua_ids: list[int]) -> set[int]:
    """Which of `dua_ids` the account `user_id` has accepted (none for no account)."""
    if user_id is None or not dua_ids:
        return set()
    return set(
        db.scalars(
            select(DuaAcceptance.dua_id).where(
                DuaAcceptance.user_id == user_id, DuaAcceptance.dua_id.in_(dua_ids)
            )
        )
    )


def accept(db: Session, username: str, dua_id: int) -> AcceptanceInfo:
    """Record that `username` accepts DUA `dua_id`, which must be a current version."""
    row = db.get(DuaVersion, dua_id)
    if row is None:
        raise NotFound(f"there is no DUA with id {dua_id}; `GET /api/v1/duas` lists them")
    info = _info(db, row, None)
    if not info.current:
        newest = next(d for d in current_duas(db, row.project_id) if d.scope == info.scope)
        raise Conflict(f"DUA {dua_id} is superseded: accept {newest.name} instead")
    user = db.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"no account {username!r}")
    existing = _acceptance(db, dua_id, user.id)
    if existing is None:
        made = DuaAcceptance(dua_id=dua_id, user_id=user.id)
        try:
            with db.begin_nested():
                db.add(made)
                db.flush()
        except IntegrityError:  # accepted at the same time elsewhere: that acceptance stands
            existing = _acceptance(db, dua_id, user.id)
            assert existing is not None
        else:
            existing = made
            audit.record(
                db,
                username,
                "dua_accepted",
                f"dua:{dua_id}",
                {"scope": info.scope, "version": info.version},
            )
    return AcceptanceInfo(dua_id, info.scope, info.version, username, existing.accepted_at, True)


def _acceptance(db: Session, dua_id: int, user_id: int) -> DuaAcceptance | None:
    return db.scalar(
        select(DuaAcceptance).where(
            DuaAcceptance.dua_id == dua_id, DuaAcceptance.user_id == user_id
        )
    )


def list_duas(db: Session, project: str | None = None) -> list[DuaInfo]:
    """Every version of the site DUA, or of `project`'s, newest first."""
    scope = SITE if project is None else scope_of(find_project(db, project).id)
    rows = db.scalars(
        select(DuaVersion).where(DuaVersion.scope == scope).order_by(DuaVersion.version.desc())
    ).all()
    return [_info(db, row, index == 0) for index, row in enumerate(rows)]


def get_dua(db: Session, dua_id: int) -> DuaInfo:
    row = db.get(DuaVersion, dua_id)
    if row is None:
        raise NotFound(f"there is no DUA with id {dua_id}; `GET /api/v1/duas` lists them")
    return _info(db, row, None)


def project_of(db: Session, dua_id: int) -> int | None:
    """The id of the project whose DUA `dua_id` is (None: the site's), for access checks."""
    row = db.get(DuaVersion, dua_id)
    if row is None:
        raise NotFound(f"there is no DUA with id {dua_id}; `GET /api/v1/duas` lists them")
    return row.project_id


def acceptances(
    db: Session, project: str | None = None, username: str | None = None
) -> list[AcceptanceInfo]:
    """Who accepted which version, oldest first: of every DUA, or `project`'s, or by `username`.

    Raises `NotFound` for an unknown project or account, rather than answering with nothing.
    """
    query = (
        select(DuaAcceptance, DuaVersion, User.username)
        .join(DuaVersion, DuaVersion.id == DuaAcceptance.dua_id)
        .join(User, User.id == DuaAcceptance.user_id)
        .order_by(DuaAcceptance.accepted_at, DuaAcceptance.id)
    )
    if project is not None:
        query = query.where(DuaVersion.scope == scope_of(find_project(db, project).id))
    if username is not None:
        if db.scalar(select(User.id).where(User.username == username)) is None:
            raise NotFound(f"there is no account {username!r}; `neurodepot user list` shows them")
        query = query.where(User.username == username)
    newest = _newest_versions(db)
    return [
        AcceptanceInfo(
            dua.id,
            _scope_label(db, dua),
            dua.version,
            name,
            acceptance.accepted_at,
            newest.get(dua.scope) == dua.version,
        )
        for acceptance, dua, name in db.execute(query)
    ]


def _newest_versions(db: Session) -> dict[str, int]:
    rows = db.execute(
        select(DuaVersion.scope, func.max(DuaVersion.version)).group_by(DuaVersion.scope)
    )
    return {scope: version for scope, version in rows}


def _scope_label(db: Session, row: DuaVersion) -> str:
    if row.project_id is None:
        return SITE
    return db.scalar(select(Project.label).where(Project.id == row.project_id)) or row.scope


def _info(db: Session, row: DuaVersion, current: bool | None) -> DuaInfo:
    if current is None:
        current = _newest_versions(db).get(row.scope) == row.version
    return DuaInfo(
        row.id, _scope_label(db, row), row.version, row.title, row.body,
        row.published_by, row.published_at, current,
    )  # fmt: skip


def _audit_target(project: str | None) -> str:
    return "dua:site" if project is None else f"dua:project:{project}"
