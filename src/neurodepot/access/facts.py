"""What the policy needs to know from the database, looked up at the edge.

`project_facts` gathers the facts `decide` takes about one project; `visible_projects` is the
same rule as a SQL condition, so that listings (and their counts) show only what the caller
may see, without asking the policy row by row.
"""

from sqlalchemy import ColumnElement, select, true
from sqlalchemy.orm import Session

from neurodepot.access.models import Membership
from neurodepot.access.policy import NO_SHARING, Principal, PrincipalKind, ProjectFacts
from neurodepot.catalog.models import Project


def project_facts(db: Session, principal: Principal, project: str) -> ProjectFacts | None:
    """The project's access level and the caller's role in it; None if it does not exist."""
    row = db.execute(select(Project.id, Project.access).where(Project.label == project)).first()
    if row is None:
        return None
    role = None
    if principal.user_id is not None:
        role = db.scalar(
            select(Membership.role).where(
                Membership.user_id == principal.user_id, Membership.project_id == row.id
            )
        )
    return ProjectFacts(row.access, role, NO_SHARING)


def visible_projects(principal: Principal) -> ColumnElement[bool]:
    """A condition on `Project` true for the projects `principal` may see listed.

    Projects shared beyond their named people appear once consent and DUAs allow it (the
    consent issue); until then a signed-in user sees the projects they have a role in.
    """
    if principal.kind is PrincipalKind.OPERATOR or principal.is_admin:
        return true()
    if principal.kind is not PrincipalKind.USER or principal.user_id is None:
        return Project.id.is_(None)
    return Project.id.in_(
        select(Membership.project_id).where(Membership.user_id == principal.user_id)
    )
