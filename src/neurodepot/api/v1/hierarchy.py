"""Projects, subjects, sessions and scans: list, create, read (and delete a project)."""

from fastapi import APIRouter, Response, status

from neurodepot.api.guard import CanCreate, CanDelete, CanRead, DepotDep
from neurodepot.api.schemas import (
    ProjectIn,
    ProjectOut,
    ScanIn,
    ScanOut,
    SessionIn,
    SessionOut,
    SubjectIn,
    SubjectOut,
)
from neurodepot.catalog import hierarchy
from neurodepot.catalog.deletion import delete_project

router = APIRouter(tags=["hierarchy"])

PROJECT = "/projects/{project}"
SUBJECT = PROJECT + "/subjects/{subject}"
SESSION = SUBJECT + "/sessions/{session}"
SCAN = SESSION + "/scans/{scan}"


@router.get("/projects", dependencies=[CanRead])
def list_projects(depot: DepotDep) -> list[ProjectOut]:
    with depot.transaction() as db:
        return [ProjectOut.model_validate(p) for p in hierarchy.list_projects(db)]


@router.post("/projects", status_code=status.HTTP_201_CREATED, dependencies=[CanCreate])
def create_project(body: ProjectIn, depot: DepotDep) -> ProjectOut:
    with depot.transaction() as db:
        project = hierarchy.create_project(db, body.label, body.name, body.description)
    return ProjectOut.model_validate(project)


@router.get(PROJECT, dependencies=[CanRead])
def get_project(project: str, depot: DepotDep) -> ProjectOut:
    with depot.transaction() as db:
        return ProjectOut.model_validate(hierarchy.get_project(db, project))


@router.delete(PROJECT, status_code=status.HTTP_204_NO_CONTENT, dependencies=[CanDelete])
def remove_project(project: str, depot: DepotDep, force: bool = False) -> Response:
    """Delete a project; refused with 409 while it holds anything, unless `force=true`."""
    delete_project(depot, project, force=force)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(PROJECT + "/subjects", dependencies=[CanRead])
def list_subjects(project: str, depot: DepotDep) -> list[SubjectOut]:
    with depot.transaction() as db:
        return [SubjectOut.model_validate(s) for s in hierarchy.list_subjects(db, project)]


@router.post(PROJECT + "/subjects", status_code=201, dependencies=[CanCreate])
def create_subject(project: str, body: SubjectIn, depot: DepotDep) -> SubjectOut:
    with depot.transaction() as db:
        return SubjectOut.model_validate(hierarchy.create_subject(db, project, body.label))


@router.get(SUBJECT, dependencies=[CanRead])
def get_subject(project: str, subject: str, depot: DepotDep) -> SubjectOut:
    with depot.transaction() as db:
        return SubjectOut.model_validate(hierarchy.get_subject(db, project, subject))


@router.get(SUBJECT + "/sessions", dependencies=[CanRead])
def list_sessions(project: str, subject: str, depot: DepotDep) -> list[SessionOut]:
    with depot.transaction() as db:
        found = hierarchy.list_sessions(db, project, subject)
    return [SessionOut.model_validate(s) for s in found]


@router.post(SUBJECT + "/sessions", status_code=201, dependencies=[CanCreate])
def create_session(project: str, subject: str, body: SessionIn, depot: DepotDep) -> SessionOut:
    with depot.transaction() as db:
        created = hierarchy.create_session(
            db, project, subject, body.label, body.modality, body.acquired_on
        )
    return SessionOut.model_validate(created)


@router.get(SESSION, dependencies=[CanRead])
def get_session(project: str, subject: str, session: str, depot: DepotDep) -> SessionOut:
    with depot.transaction() as db:
        return SessionOut.model_validate(hierarchy.get_session(db, project, subject, session))


@router.get(SESSION + "/scans", dependencies=[CanRead])
def list_scans(project: str, subject: str, session: str, depot: DepotDep) -> list[ScanOut]:
    with depot.transaction() as db:
        found = hierarchy.list_scans(db, project, subject, session)
    return [ScanOut.model_validate(s) for s in found]


@router.post(SESSION + "/scans", status_code=201, dependencies=[CanCreate])
def create_scan(project: str, subject: str, session: str, body: ScanIn, depot: DepotDep) -> ScanOut:
    with depot.transaction() as db:
        created = hierarchy.create_scan(
            db, project, subject, session, body.label, body.type, body.modality
        )
    return ScanOut.model_validate(created)


@router.get(SCAN, dependencies=[CanRead])
def get_scan(project: str, subject: str, session: str, scan: str, depot: DepotDep) -> ScanOut:
    with depot.transaction() as db:
        return ScanOut.model_validate(hierarchy.get_scan(db, project, subject, session, scan))
