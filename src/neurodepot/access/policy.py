"""The one place that decides who may do what (deny by default).

`decide` is a pure function: the caller, the action, the target, and the facts about the
target's project that the edge looked up (its access level, the caller's role in it, and what
consent and Data Usage Agreements allow). No I/O, so it can be property-tested. `ensure` is its
raising wrapper for the edges.

Who may do what:
- the local operator (a person at this machine: the CLI, or a client on loopback without
  credentials, not proxied, while the depot allows it; `api.guard` says when) and site
  admins: everything;
- a project's owner: everything in the project, including administering it (its members,
  access level, deleting it); a member: read, add, change and delete data; a collaborator:
  read;
- anyone else signed in: beyond the named people, data is shared only as far as the project's
  access level and each subject's consent allow (`shared_consent_levels`), and only as
  de-identified data (`BROWSE`, `DOWNLOAD`): the identifiable originals (`READ`) never leave
  the named team. Downloading shared data also needs the current DUAs accepted;
- centre members (not external researchers) may create projects, which they then own;
- every signed-in account manages its own API tokens (`OWN_ACCOUNT`);
- only a data steward (not an admin as such) overrides a failed de-identification check
  (`STEWARD`);
- a read-only token can only read; the anonymous caller gets nothing.
"""

from dataclasses import dataclass
from enum import StrEnum

from neurodepot.catalog.target import Target
from neurodepot.errors import Denied


class Action(StrEnum):
    READ = "read"
    LIST = "list"  # a depot-wide listing that shows only what the caller may see
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    ADMINISTER = "administer"
    OWN_ACCOUNT = "own_account"  # a change to the caller's own account: its API tokens
    STEWARD = "steward"  # a data steward's decision: overriding a failed de-identification check
    BROWSE = "browse"  # see a project's shared, de-identified view (pseudonyms, no files)
    DOWNLOAD = "download"  # download its shared, de-identified data (needs the current DUAs)


class PrincipalKind(StrEnum):
    ANONYMOUS = "anonymous"
    OPERATOR = "operator"
    USER = "user"


@dataclass(frozen=True)
class Principal:
    """Who is asking. `name` is what the audit log records."""

    kind: PrincipalKind
    name: str
    user_id: int | None = None
    account: str = ""  # `member` (of the centre) or `external`
    is_admin: bool = False
    is_steward: bool = False
    scope: str = "write"

    @classmethod
    def anonymous(cls) -> "Principal":
        return cls(PrincipalKind.ANONYMOUS, "anonymous")

    @classmethod
    def operator(cls, name: str = "operator") -> "Principal":
        return cls(PrincipalKind.OPERATOR, name)

    @classmethod
    def user(
        cls,
        user_id: int,
        username: str,
        account: str,
        is_admin: bool = False,
        is_steward: bool = False,
        scope: str = "write",
    ) -> "Principal":
        return cls(PrincipalKind.USER, username, user_id, account, is_admin, is_steward, scope)


@dataclass(frozen=True)
class SharingFacts:
    """What the caller must still do before downloading a project's shared data.

    `duas_to_accept` names the current DUA versions the caller has not accepted (empty: all
    accepted); None means nobody looked, and denies.
    """

    duas_to_accept: tuple[str, ...] | None = None


NO_SHARING = SharingFacts()
# Beyond a project's named people: which subjects' consent makes them visible, by the caller's
# account kind and the project's access level. Anything not listed shows no subject.
SHARED_CONSENT = {
    ("member", "internal"): ("internal", "open"),
    ("member", "public"): ("internal", "open"),
    ("external", "public"): ("open",),
}
READ_ONLY = frozenset({"read", "list", "browse", "download"})


@dataclass(frozen=True)
class ProjectFacts:
    """What the edge knows of the target's project: None means it does not exist."""

    access: str  # private, internal, public
    role: str | None  # the caller's role in it, if any
    sharing: SharingFacts = NO_SHARING


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str


ROLE_ACTIONS = {
    "owner": frozenset(Action) - {Action.STEWARD},
    "member": frozenset(
        {Action.READ, Action.LIST, Action.BROWSE, Action.DOWNLOAD}
        | {Action.CREATE, Action.UPDATE, Action.DELETE}
    ),
    "collaborator": frozenset({Action.READ, Action.LIST, Action.BROWSE, Action.DOWNLOAD}),
}


def shared_consent_levels(account: str, access: str) -> tuple[str, ...]:
    """The consent levels that make a subject visible to an `account` kind.

    Beyond the named people of a project at `access`; none for a private project.
    """
    return SHARED_CONSENT.get((account, access), ())


def subject_visible(account: str, access: str, consent: str) -> bool:
    """Whether a subject with effective consent `consent` is shared with such a caller."""
    return consent in shared_consent_levels(account, access)


def decide(
    principal: Principal,
    action: Action,
    target: Target | None,
    project: ProjectFacts | None = None,
) -> Decision:
    """Whether `principal` may perform `action` on `target` (None: the depot as a whole)."""
    if principal.kind is PrincipalKind.OPERATOR:
        return Decision(True, "the local operator administers this depot")
    if principal.kind is not PrincipalKind.USER:
        return Decision(False, "sign-in is required")
    if principal.scope == "read" and action.value not in READ_ONLY:
        return Decision(False, "the token is read-only")
    if action is Action.STEWARD:
        # Not the admins': the steward role exists so that this decision is a named person's.
        if principal.is_steward:
            return Decision(True, "data steward")
        return Decision(False, "only a data steward may decide this")
    if principal.is_admin:
        return Decision(True, "site admin")
    if target is None:
        return _depot_wide(principal, action)
    if project is None:
        return Decision(False, "no such project, or no access to it")
    if project.role is not None:
        allowed = action in ROLE_ACTIONS.get(project.role, frozenset())
        return Decision(allowed, f"project {project.role}")
    return _beyond_named_people(principal, action, project)


def _depot_wide(principal: Principal, action: Action) -> Decision:
    if action is Action.LIST:
        return Decision(True, "listings show only what the caller may see")
    if action is Action.CREATE and principal.account == "member":
        return Decision(True, "centre members create projects")
    if action is Action.OWN_ACCOUNT:
        return Decision(True, "every account manages its own credentials")
    return Decision(False, "only a site admin may do this")


def _beyond_named_people(principal: Principal, action: Action, project: ProjectFacts) -> Decision:
    if not shared_consent_levels(principal.account, project.access):
        return Decision(False, "no such project, or no access to it")
    if action is Action.BROWSE:
        return Decision(True, f"shared ({project.access}), de-identified")
    if action is Action.DOWNLOAD:
        missing = project.sharing.duas_to_accept
        if missing is None:
            return Decision(False, "the Data Usage Agreements could not be checked")
        if missing:
            return Decision(False, "accept the Data Usage Agreement first: " + "; ".join(missing))
        return Decision(True, f"shared ({project.access}), de-identified, DUA accepted")
    if action in (Action.READ, Action.LIST):
        return Decision(
            False,
            "beyond the project's named people its data is shared de-identified only "
            "(the shared view), never as the original files",
        )
    return Decision(False, "only the project's named people may change it")


def ensure(
    principal: Principal,
    action: Action,
    target: Target | None,
    project: ProjectFacts | None = None,
) -> None:
    """Raise `Denied` unless `decide` allows the action."""
    decision = decide(principal, action, target, project)
    if not decision.allowed:
        where = f" on {target}" if target is not None else ""
        raise Denied(f"{principal.name} may not {action.value}{where}: {decision.reason}")
