"""The one place that decides who may do what (deny by default).

`decide` is a pure function: no I/O, so it can be property-tested. `ensure` is its raising
wrapper for the edges. Until accounts exist (the accounts issue), the only principal that is
ever allowed anything is the local operator: a person at this machine, using the CLI or a
client on loopback. Everyone else is denied everything but the public health check.
"""

from dataclasses import dataclass
from enum import StrEnum

from neurodepot.catalog.target import Target
from neurodepot.errors import Denied


class Action(StrEnum):
    READ = "read"
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    ADMINISTER = "administer"


class PrincipalKind(StrEnum):
    ANONYMOUS = "anonymous"
    OPERATOR = "operator"


@dataclass(frozen=True)
class Principal:
    """Who is asking. `name` is what the audit log records."""

    kind: PrincipalKind
    name: str

    @classmethod
    def anonymous(cls) -> "Principal":
        return cls(PrincipalKind.ANONYMOUS, "anonymous")

    @classmethod
    def operator(cls, name: str = "operator") -> "Principal":
        return cls(PrincipalKind.OPERATOR, name)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str


def decide(principal: Principal, action: Action, target: Target | None) -> Decision:
    """Whether `principal` may perform `action` on `target` (None: the depot as a whole)."""
    if principal.kind is PrincipalKind.OPERATOR:
        return Decision(True, "the local operator administers this depot")
    return Decision(False, "sign-in is required")


def ensure(principal: Principal, action: Action, target: Target | None) -> None:
    """Raise `Denied` unless `decide` allows the action."""
    decision = decide(principal, action, target)
    if not decision.allowed:
        where = f" on {target}" if target is not None else ""
        raise Denied(f"{principal.name} may not {action.value}{where}: {decision.reason}")
