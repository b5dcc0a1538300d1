"""Deleting a project: refused without force, and then only the blobs it alone used go."""

import hashlib

import pytest
from sqlalchemy import func, select

from neurodepot.catalog.deletion import delete_project
from neurodepot.catalog.hierarchy import create_project, create_subject, list_projects
from neurodepot.catalog.models import ImagingSession, Project, Resource, ResourceFile, Scan, Subject
from neurodepot.catalog.resources import add_file
from neurodepot.catalog.target import Target
from neurodepot.depot.folder import Depot
from neurodepot.depot.fsck import fsck
from neurodepot.depot.orm import Blob
from neurodepot.errors import Conflict, NotFound

SHARED, OWN = b"consent form template", b"scan only project p holds"
MODELS = (Project, Subject, ImagingSession, Scan, Resource, ResourceFile, Blob)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def counts(depot: Depot) -> dict[str, int]:
    with depot.transaction() as db:
        return {
            m.__tablename__: db.scalar(select(func.count()).select_from(m)) or 0 for m in MODELS
        }


@pytest.fixture
def two_projects(tree: Depot) -> Depot:
    """Project `p` (files at every level) and project `q`, which shares one content with `p`."""
    with tree.transaction() as db:
        create_project(db, "q")
        create_subject(db, "q", "s")
    add_file(tree, Target("p"), "docs", "consent.txt", [SHARED])
    add_file(tree, Target("p", "s", "v", "1"), "NIFTI", "t1.nii", [OWN])
    add_file(tree, Target("p", "s"), "beh", "scores.csv", [b"a,b\n"])
    add_file(tree, Target("q", "s"), "docs", "consent.txt", [SHARED])
    return tree


def test_project_with_contents_is_not_deleted_without_force(two_projects: Depot) -> None:
    before = counts(two_projects)
    blobs_before = set(two_projects.blobs.digests())

    with pytest.raises(Conflict) as raised:
        delete_project(two_projects, "p")

    assert "1 subject(s) and 3 file content(s)" in raised.value.message
    assert "--force" in raised.value.message
    assert counts(two_projects) == before
    assert set(two_projects.blobs.digests()) == blobs_before


def test_forced_delete_keeps_shared_blobs_and_removes_those_only_it_used(
    two_projects: Depot,
) -> None:
    assert delete_project(two_projects, "p", force=True) == (1, 3)

    assert set(two_projects.blobs.digests()) == {sha256(SHARED)}
    with two_projects.transaction() as db:
        assert [p.label for p in list_projects(db)] == ["q"]
        assert set(db.scalars(select(Blob.digest))) == {sha256(SHARED)}
    assert counts(two_projects) == {
        "projects": 1,
        "subjects": 1,
        "sessions": 0,
        "scans": 0,
        "resources": 1,
        "resource_files": 1,
        "blobs": 1,
    }
    assert fsck(two_projects.engine, two_projects.blobs).ok


def test_empty_project_is_deleted_without_force(depot: Depot) -> None:
    with depot.transaction() as db:
        create_project(db, "empty")
    assert delete_project(depot, "empty") == (0, 0)
    assert counts(depot)["projects"] == 0


def test_deleting_an_unknown_project_is_not_found(two_projects: Depot) -> None:
    before = counts(two_projects)
    with pytest.raises(NotFound, match="project 'nope' does not exist"):
        delete_project(two_projects, "nope", force=True)
    assert counts(two_projects) == before
