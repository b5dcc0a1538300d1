"""Projects, subjects, sessions and scans: list, create, read (and delete a project)."""

from fastapi import APIRouter, Request, Response, status

from neurodepot.access.accounts import set_project_role
from neurodepot.access.facts import visible_projects, visible_subjects
from neurodepot.access.policy import PrincipalKind
from neurodepot.api.guard import CanAdminister, CanCreate, CanList, CanRead, DepotDep
from neurodepot.api.schemas import GUARDED_ERRORS, ProjectIn, ScanIn, SessionIn, SubjectIn
from neurodepot.catalog import hierarchy
from neurodepot.catalog.deletion import delete_project
from neurodepot.catalog.records import ProjectInfo, ScanInfo, SessionInfo, SubjectInfo

router = APIRouter(tags=["hierarchy"], responses=GUARDED_ERRORS)

PROJECT = "/projects/{project}"
SUBJECT = PROJECT + "/subjects/{subject}"
SESSION = SUBJECT + "/sessions/{session}"
SCAN = SESSION + "/scans/{scan}"


@router.get("/projects", dependencies=[CanList])
def list_projects(depot: DepotDep, request: Request) -> list[ProjectInfo]:
    """The projects the caller may see (and only their counts)."""
    with depot.transaction() as db:
        principal = request.state.principal
        return hierarchy.list_projects(db, visible_projects(principal), visible_subjects(principal))


@router.post("/projects", status_code=status.HTTP_201_CREATED, dependencies=[CanCreate])
def create_project(body: ProjectIn, depot: DepotDep, request: Request) -> ProjectInfo:
    """Create a project; a signed-in creator becomes its owner."""
    principal = request.state.principal
    with depot.transaction() as db:
        project = hierarchy.create_project(db, body.label, body.name, body.description)
        if principal.kind is PrincipalKind.USER:
            set_project_role(db, principal.name, principal.name, body.label, "owner")
    return project


@router.get(PROJECT, dependencies=[CanRead])
def get_project(project: str, depot: DepotDep) -> ProjectInfo:
    with depot.transaction() as db:
        return hierarchy.get_project(db, project)


@router.delete(PROJECT, status_code=status.HTTP_204_NO_CONTENT, dependencies=[CanAdminister])
def remove_project(project: str, depot: DepotDep, force: bool = False) -> Response:
    """Delete a project; refused with 409 while it holds anything, unless `force=true`."""
    delete_project(depot, project, force=force)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(PROJECT + "/subjects", dependencies=[CanRead])
def list_subjects(project: str, depot: DepotDep) -> list[SubjectInfo]:
    with depot.transaction() as db:
        return hierarchy.list_subjects(db, project)


@router.post(PROJECT + "/subjects", status_code=201, dependencies=[CanCreate])
def create_subject(project: str, body: SubjectIn, depot: DepotDep) -> SubjectInfo:
    with depot.transaction() as db:
        return hierarchy.create_subject(db, project, body.label)


@router.get(SUBJECT, dependencies=[CanRead])
def get_subject(project: str, subject: str, depot: DepotDep) -> SubjectInfo:
    with depot.transaction() as db:
        return hierarchy.get_subject(db, project, subject)


@router.get(SUBJECT + "/sessions", dependencies=[CanRead])
def list_sessions(project: str, subject: str, depot: DepotDep) -> list[SessionInfo]:
    with depot.transaction() as db:
        found = hierarchy.list_sessions(db, project, subject)
    return found


@router.post(SUBJECT + "/sessions", status_code=201, dependencies=[CanCreate])
def create_session(project: str, subject: str, body: SessionIn, depot: DepotDep) -> SessionInfo:
    with depot.transaction() as db:
        created = hierarchy.create_session(
            db, project, subject, body.label, body.modality, body.acquired_on
        )
    return created


@router.get(SESSION, dependencies=[CanRead])
def get_session(project: str, subject: str, session: str, depot: DepotDep) -> SessionInfo:
    with depot.transaction() as db:
        return hierarchy.get_session(db, project, subject, session)


@router.get(SESSION + "/scans", dependencies=[CanRead])
def list_scans(project: str, subject: str, session: str, depot: DepotDep) -> list[ScanInfo]:
    with depot.transaction() as db:
        found = hierarchy.list_scans(db, project, subject, session)
    return found


@router.post(SESSION + "/scans", status_code=201, dependencies=[CanCreate])
def create_scan(
    project: str, subject: str, session: str, body: ScanIn, depot: DepotDep
) -> ScanInfo:
    with depot.transaction() as db:
        created = hierarchy.create_scan(
            db, project, subject, session, body.label, body.type, body.modality
        )
    return created


@router.get(SCAN, dependencies=[CanRead])
def get_scan(project: str, subject: str, session: str, scan: str, depot: DepotDep) -> ScanInfo:
    with depot.transaction() as db:
        return hierarchy.get_scan(db, project, subject, session, scan)
