"""Projects, subjects, sessions and scans: creating, finding, listing, and refusing clashes."""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from neurodepot.catalog.hierarchy import (
    create_project,
    create_scan,
    create_session,
    create_subject,
    find_target,
    get_project,
    get_scan,
    get_session,
    get_subject,
    list_projects,
    list_scans,
    list_sessions,
    list_subjects,
    project_contents,
)
from neurodepot.catalog.models import ImagingSession, Project, Scan, Subject
from neurodepot.catalog.target import Target
from neurodepot.depot.folder import Depot
from neurodepot.depot.orm import Base
from neurodepot.errors import Conflict, Invalid, NotFound


def count(db: Session, model: type[Base]) -> int:
    return db.scalar(select(func.count()).select_from(model)) or 0


def counts(depot: Depot) -> list[int]:
    with depot.transaction() as db:
        return [count(db, model) for model in (Project, Subject, ImagingSession, Scan)]


class TestCreating:
    def test_each_level_is_created_and_read_back(self, depot: Depot) -> None:
        with depot.transaction() as db:
            project = create_project(db, "p", name="Pilot", description="first scans")
            create_subject(db, "p", "s")
            session = create_session(db, "p", "s", "v", modality="mr", acquired_on=date(2024, 5, 6))
            scan = create_scan(db, "p", "s", "v", "1", type="T1w", modality="mr")
        assert (project.label, project.name, project.description) == ("p", "Pilot", "first scans")
        assert (session.modality, session.acquired_on) == ("MR", date(2024, 5, 6))
        assert (scan.type, scan.modality) == ("T1w", "MR")
        with depot.transaction() as db:
            assert get_project(db, "p").subject_count == 1
            assert get_subject(db, "p", "s").session_count == 1
            assert get_session(db, "p", "s", "v").scan_count == 1
            assert get_scan(db, "p", "s", "v", "1").type == "T1w"
            assert project.created_at.tzinfo is not None

    def test_project_name_defaults_to_its_label(self, depot: Depot) -> None:
        with depot.transaction() as db:
            assert create_project(db, "p").name == "p"

    def test_listings_are_ordered_with_counts(self, tree: Depot) -> None:
        with tree.transaction() as db:
            create_project(db, "a")
            create_subject(db, "p", "r")
            create_scan(db, "p", "s", "v", "2")
            assert [(p.label, p.subject_count) for p in list_projects(db)] == [("a", 0), ("p", 2)]
            assert [(s.label, s.session_count) for s in list_subjects(db, "p")] == [
                ("r", 0),
                ("s", 1),
            ]
            assert [(v.label, v.scan_count) for v in list_sessions(db, "p", "s")] == [("v", 2)]
            assert [s.label for s in list_scans(db, "p", "s", "v")] == ["1", "2"]
            assert project_contents(db, "p") == (2, 0)

    @pytest.mark.parametrize(
        ("target", "model"),
        [
            (Target("p"), Project),
            (Target("p", "s"), Subject),
            (Target("p", "s", "v"), ImagingSession),
            (Target("p", "s", "v", "1"), Scan),
        ],
    )
    def test_target_finds_the_row_at_its_level(
        self, tree: Depot, target: Target, model: type[Base]
    ) -> None:
        with tree.transaction() as db:
            row = find_target(db, target)
            assert isinstance(row, model)
            assert row.label == str(target).split("/")[-1]  # type: ignore[attr-defined]


class TestClashes:
    @pytest.mark.parametrize(
        ("level", "create", "label"),
        [
            ("project", lambda db: create_project(db, "p"), "p"),
            ("subject", lambda db: create_subject(db, "p", "s"), "s"),
            ("session", lambda db: create_session(db, "p", "s", "v"), "v"),
            ("scan", lambda db: create_scan(db, "p", "s", "v", "1"), "1"),
        ],
    )
    def test_duplicate_label_is_a_conflict_naming_it(
        self, tree: Depot, level: str, create: object, label: str
    ) -> None:
        before = counts(tree)
        with pytest.raises(Conflict) as raised, tree.transaction() as db:
            create(db)  # type: ignore[operator]
        assert raised.value.message.startswith(f"{level} {label!r} already exists")
        assert counts(tree) == before

    def test_session_label_is_unique_within_the_project_not_the_subject(self, tree: Depot) -> None:
        with tree.transaction() as db:
            create_subject(db, "p", "t")
        with pytest.raises(Conflict, match="labels are per project"), tree.transaction() as db:
            create_session(db, "p", "t", "v")

    def test_same_labels_are_allowed_under_other_parents(self, tree: Depot) -> None:
        with tree.transaction() as db:
            create_project(db, "q")
            create_subject(db, "q", "s")
            create_session(db, "q", "s", "v")
            create_session(db, "p", "s", "w")
            create_scan(db, "p", "s", "w", "1")
            create_scan(db, "q", "s", "v", "1")
        assert counts(tree) == [2, 2, 3, 3]

    def test_projects_created_at_once_give_one_project_and_conflicts(self, depot: Depot) -> None:
        writers = 6
        start = threading.Barrier(writers)

        def create(_: int) -> str:
            start.wait(timeout=30)
            try:
                with depot.transaction() as db:
                    create_project(db, "race")
            except Conflict as exc:
                return exc.message
            return "created"

        with ThreadPoolExecutor(writers) as pool:
            results = sorted(pool.map(create, range(writers), timeout=60))
        assert results.count("created") == 1
        assert set(results) - {"created"} == {"project 'race' already exists; choose another label"}
        assert counts(depot) == [1, 0, 0, 0]


class TestBadInput:
    @pytest.mark.parametrize(
        ("create", "missing"),
        [
            (lambda db: create_subject(db, "nope", "s"), "project 'nope'"),
            (lambda db: create_session(db, "p", "nope", "v"), "subject 'nope'"),
            (lambda db: create_scan(db, "p", "s", "nope", "1"), "session 'nope'"),
            (lambda db: get_project(db, "nope"), "project 'nope'"),
            (lambda db: list_subjects(db, "nope"), "project 'nope'"),
            (lambda db: get_scan(db, "p", "s", "v", "nope"), "scan 'nope'"),
        ],
    )
    def test_unknown_parent_or_row_is_not_found_naming_it(
        self, tree: Depot, create: object, missing: str
    ) -> None:
        before = counts(tree)
        with pytest.raises(NotFound) as raised, tree.transaction() as db:
            create(db)  # type: ignore[operator]
        assert raised.value.message.startswith(f"{missing} does not exist")
        assert counts(tree) == before

    @pytest.mark.parametrize(
        ("create", "kind"),
        [
            (lambda db: create_project(db, "new project"), "project"),
            (lambda db: create_subject(db, "p", "sub/01"), "subject"),
            (lambda db: create_session(db, "p", "s", "../v"), "session"),
            (lambda db: create_scan(db, "p", "s", "v", ""), "scan"),
            (lambda db: create_project(db, "x" * 65), "project"),
        ],
    )
    def test_invalid_label_is_refused_and_nothing_is_created(
        self, tree: Depot, create: object, kind: str
    ) -> None:
        before = counts(tree)
        with pytest.raises(Invalid, match=f"^{kind} label"), tree.transaction() as db:
            create(db)  # type: ignore[operator]
        assert counts(tree) == before
