"""Deleting a project with everything in it, then the blobs only it used."""

from sqlalchemy import func, select

from neurodepot.catalog.hierarchy import find_project
from neurodepot.catalog.models import Subject
from neurodepot.catalog.resources import project_file_digests
from neurodepot.depot.folder import Depot
from neurodepot.depot.garbage import collect
from neurodepot.errors import Conflict


def delete_project(depot: Depot, label: str, force: bool = False) -> tuple[int, int]:
    """Delete project `label`; return how many subjects and distinct contents it held.

    A project that holds anything is refused unless `force` is given, so that one mistyped label
    cannot delete a study. Blobs another project shares are kept.
    """
    with depot.transaction() as db:
        project = find_project(db, label)
        digests = project_file_digests(db, project.id)
        subjects = (
            db.scalar(
                select(func.count()).select_from(Subject).where(Subject.project_id == project.id)
            )
            or 0
        )
        if (subjects or digests) and not force:
            raise Conflict(
                f"project {label!r} holds {subjects} subject(s) and {len(digests)} file "
                "content(s); pass --force to delete it with everything in it"
            )
        db.delete(project)
    collect(depot.engine, depot.blobs, candidates=digests)
    return subjects, len(digests)
