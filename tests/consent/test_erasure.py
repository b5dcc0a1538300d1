"""Erasing a subject: confirmed, complete (every row, its own blobs), others intact, fsck clean."""

import hashlib
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import column, func, inspect, select, table, update

from neurodepot.access import audit
from neurodepot.access.models import AuditEvent
from neurodepot.catalog.hierarchy import (
    create_project,
    create_scan,
    create_session,
    create_subject,
    find_subject,
)
from neurodepot.catalog.models import ImagingSession, Resource, ResourceFile, Scan, Subject
from neurodepot.catalog.resources import add_file
from neurodepot.catalog.target import Target
from neurodepot.consent import erasure
from neurodepot.consent.erasure import erase_subject, plan_erasure, routed_studies
from neurodepot.depot.folder import Depot
from neurodepot.depot.fsck import fsck
from neurodepot.depot.orm import Blob
from neurodepot.errors import Conflict, Invalid, NotFound
from neurodepot.ingest.bulk import import_dicom
from neurodepot.ingest.models import PrearchiveInstance, PrearchiveStudy
from neurodepot.ingest.receive import Override
from neurodepot.jobs import records
from neurodepot.jobs.models import Job
from neurodepot.jobs.registry import load_registry
from tests.consent.test_subject_export import (
    EXAMPLE_DICOM,
    OTHER,
    OWN_SCAN,
    OWN_SESSION,
    OWN_SUBJECT,
    SHARED,
    build_tree,
)

OWNER_COLUMNS = ("subject_id", "session_id", "scan_id")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def held(depot: Depot) -> Depot:
    build_tree(depot)
    return depot


def ids_of(depot: Depot, project: str, subject: str) -> dict[str, set[int]]:
    """The ids of the subject's rows that other tables refer to by foreign key."""
    with depot.reading() as db:
        row = find_subject(db, project, subject)
        sessions = set(
            db.scalars(select(ImagingSession.id).where(ImagingSession.subject_id == row.id))
        )
        scans = set(db.scalars(select(Scan.id).where(Scan.session_id.in_(sessions))))
        resources = set(
            db.scalars(
                select(Resource.id).where(
                    (Resource.subject_id == row.id)
                    | Resource.session_id.in_(sessions)
                    | Resource.scan_id.in_(scans)
                )
            )
        )
        studies = {s.id for s in db.scalars(routed_studies(project, subject))}
    return {
        "subject_id": {row.id},
        "session_id": sessions,
        "scan_id": scans,
        "resource_id": resources,
        "study_id": studies,
    }


def rows_naming(depot: Depot, ids: dict[str, set[int]]) -> dict[str, int]:
    """Every table's rows whose subject_id/session_id/scan_id/resource_id/study_id is in `ids`."""
    found: dict[str, int] = {}
    with depot.engine.connect() as conn:
        inspector = inspect(conn)
        for name in inspector.get_table_names():
            columns = {c["name"] for c in inspector.get_columns(name)}
            for key, wanted in ids.items():
                if key in columns and wanted:
                    count = conn.scalar(
                        select(func.count())
                        .select_from(table(name))
                        .where(column(key).in_(sorted(wanted)))
                    )
                    if count:
                        found[f"{name}.{key}"] = count
        subject = conn.scalar(
            select(func.count()).select_from(Subject).where(Subject.id.in_(ids["subject_id"]))
        )
        if subject:
            found["subjects.id"] = subject
    return found


def snapshot(depot: Depot) -> tuple[dict[str, int], set[str]]:
    """Row counts of every table, and the digests of the blobs on disk."""
    with depot.engine.connect() as conn:
        counts = {
            name: conn.scalar(select(func.count()).select_from(table(name))) or 0
            for name in inspect(conn).get_table_names()
        }
    return counts, set(depot.blobs.digests())


def files_of(depot: Depot, project: str, subject: str) -> list[tuple[str, str]]:
    ids = ids_of(depot, project, subject)
    with depot.reading() as db:
        rows = db.execute(
            select(ResourceFile.path, ResourceFile.digest).where(
                ResourceFile.resource_id.in_(ids["resource_id"])
            )
        ).all()
    return sorted((path, digest) for path, digest in rows)


def blob_rows(depot: Depot) -> set[str]:
    with depot.reading() as db:
        return set(db.scalars(select(Blob.digest)))


def test_a_wrong_confirmation_is_refused_and_nothing_is_erased(held: Depot) -> None:
    before = snapshot(held)
    for wrong in ("s01", "S01 ", "", "P/S01", "S02", "'; DROP TABLE subjects; --"):
        with pytest.raises(Invalid, match="by repeating the subject's label") as raised:
            erase_subject(held, "cli:dpo", "P", "S01", wrong)
        assert "nothing was erased" in raised.value.message
    assert snapshot(held) == before


def test_unknown_subject_is_not_found(held: Depot) -> None:
    with pytest.raises(NotFound, match="subject 'S99'"):
        erase_subject(held, "cli:dpo", "P", "S99", "S99")
    with pytest.raises(NotFound, match="project 'Q'"):
        erase_subject(held, "cli:dpo", "Q", "S01", "S01")


def test_erasure_removes_every_row_naming_the_subject_and_its_own_blobs(held: Depot) -> None:
    ids = ids_of(held, "P", "S01")
    naming = rows_naming(held, ids)
    for expected in (
        "sessions.subject_id", "resources.subject_id", "consent_records.subject_id",
        "subject_pseudonyms.subject_id", "scans.session_id", "resources.session_id",
        "session_pseudonyms.session_id", "resources.scan_id", "scan_instances.scan_id",
        "scan_conversions.scan_id", "resource_files.resource_id",
    ):  # fmt: skip
        assert expected in naming  # the tree really fills every table the check looks at
    others = {s: files_of(held, "P", s) for s in ("S02", "S010")}
    dicom = {d for path, d in files_of(held, "P", "S02") if path.endswith(".dcm")}
    with held.reading() as db:
        plan = plan_erasure(db, "P", "S01")

    summary = erase_subject(held, "cli:dpo", "P", "S01", "S01")

    assert rows_naming(held, ids) == {}
    with held.reading() as db:
        targets = set(db.scalars(select(Job.target)))
        assert not {t for t in targets if t == "P/S01" or t.startswith("P/S01/")}
        assert not db.scalars(routed_studies("P", "S01")).all()
        assert [j.target for j in db.scalars(select(Job).order_by(Job.id))] == ["P/S010", "P"]
    counts = summary.counts
    assert (counts.sessions, counts.scans, counts.resources, counts.files) == (1, 1, 5, 6)
    assert (counts.archived_instances, counts.conversions, counts.consent_records) == (2, 1, 2)
    assert (counts.pseudonyms, counts.jobs, counts.prearchive_studies) == (2, 1, 1)
    own = {sha256(OWN_SUBJECT), sha256(OWN_SESSION), sha256(OWN_SCAN)}
    on_disk = set(held.blobs.digests())
    assert not own & on_disk and not own & blob_rows(held)
    assert {sha256(SHARED), sha256(OTHER)} | dicom <= on_disk
    assert (summary.blobs_removed, summary.blobs_kept) == (3, 1 + len(dicom))
    assert plan.counts == summary.counts
    assert (plan.blobs_to_remove, plan.blobs_shared) == (3, 1 + len(dicom))
    assert summary.releases == []
    assert {s: files_of(held, "P", s) for s in ("S02", "S010")} == others
    assert fsck(held.engine, held.blobs).ok


def test_erasure_is_audited_with_counts_and_the_chain_holds(held: Depot) -> None:
    summary = erase_subject(held, "cli:dpo", "P", "S01", "S01")

    with held.reading() as db:
        event = db.get(AuditEvent, summary.audit_event_id)
        assert event is not None
        assert (event.actor, event.action, event.target) == ("cli:dpo", "subject_erased", "P/S01")
        assert event.detail["files"] == 6 and event.detail["sessions"] == 1
        assert event.detail["releases"] == 0
        # What was recorded about the subject before is kept: the log is append-only.
        assert db.scalars(select(AuditEvent).where(AuditEvent.action == "consent_set")).all()
        assert audit.verify(db).ok


def test_blobs_of_the_last_subject_using_them_go_with_it(held: Depot) -> None:
    dicom = {d for p, d in files_of(held, "P", "S02") if p.endswith(".dcm")}
    erase_subject(held, "cli:dpo", "P", "S02", "S02")
    assert dicom <= set(held.blobs.digests())  # S01 still holds the same DICOM

    erase_subject(held, "cli:dpo", "P", "S01", "S01")

    assert set(held.blobs.digests()) == blob_rows(held) == {sha256(OTHER)}
    assert fsck(held.engine, held.blobs).ok


def test_a_queued_or_running_job_on_the_subject_blocks_erasure(held: Depot) -> None:
    with held.transaction() as db:
        job = records.create_job(db, load_registry(), "noop", Target("P", "S01"), {}, "test")
    before = snapshot(held)
    for status in ("queued", "running"):
        with held.transaction() as db:
            db.execute(update(Job).where(Job.id == job.id).values(status=status))
        with pytest.raises(Conflict, match=f"job\\(s\\) {job.id} on P/S01 are queued or running"):
            erase_subject(held, "cli:dpo", "P", "S01", "S01")
    assert snapshot(held)[1] == before[1]
    with held.transaction() as db:
        db.execute(update(Job).where(Job.id == job.id).values(status="cancelled"))
    assert erase_subject(held, "cli:dpo", "P", "S01", "S01").counts.jobs == 2


def test_a_study_still_being_received_blocks_erasure_and_a_ready_one_goes(held: Depot) -> None:
    arriving = import_dicom(held, EXAMPLE_DICOM, Override("P", "S01", "E3"), archive_after=False)
    (study_id,) = arriving.studies
    with pytest.raises(Conflict, match=f"prearchive study\\(ies\\) {study_id} for P/S01"):
        erase_subject(held, "cli:dpo", "P", "S01", "S01")
    with held.transaction() as db:
        db.execute(
            update(PrearchiveStudy).where(PrearchiveStudy.id == study_id).values(state="ready")
        )

    summary = erase_subject(held, "cli:dpo", "P", "S01", "S01")

    assert summary.counts.prearchive_studies == 2
    with held.reading() as db:
        assert db.get(PrearchiveStudy, study_id) is None
        assert not db.scalars(
            select(PrearchiveInstance).where(PrearchiveInstance.study_id == study_id)
        ).all()
        assert [s.subject for s in db.scalars(select(PrearchiveStudy))] == ["S02"]
    assert fsck(held.engine, held.blobs).ok


def test_a_crash_before_collection_leaves_only_orphans_that_fsck_repairs(
    held: Depot, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(*_args: object, **_kwargs: object) -> None:
        raise OSError("power cut")

    monkeypatch.setattr(erasure, "collect", crash)
    with pytest.raises(OSError, match="power cut"):
        erase_subject(held, "cli:dpo", "P", "S01", "S01")

    with held.reading() as db, pytest.raises(NotFound):
        find_subject(db, "P", "S01")
    report = fsck(held.engine, held.blobs)
    own = {sha256(OWN_SUBJECT), sha256(OWN_SESSION), sha256(OWN_SCAN)}
    assert {(p.kind, p.digest) for p in report.problems} == {("orphaned-row", d) for d in own}
    repaired = fsck(held.engine, held.blobs, repair=True)
    assert repaired.ok and not own & set(held.blobs.digests())


# --- the property: over random trees with shared contents ------------------------------------

CONTENTS = [b"alpha", b"beta", b"gamma", b"delta", b"epsilon"]
_projects = itertools.count()

files = st.lists(st.sampled_from(range(len(CONTENTS))), max_size=2)
scans = st.lists(files, max_size=2)
sessions = st.lists(st.tuples(files, scans), max_size=2)
subjects = st.lists(st.tuples(files, sessions), min_size=1, max_size=4)


def plant(depot: Depot, tree: list, project_files: list[int]) -> str:
    """Make a new project from `tree`: per subject its files and sessions (files and scans)."""
    project = f"p{next(_projects)}"
    with depot.transaction() as db:
        create_project(db, project)
        for s, (_, visits) in enumerate(tree):
            create_subject(db, project, f"s{s}")
            for e, (_, scan_files) in enumerate(visits):
                create_session(db, project, f"s{s}", f"s{s}e{e}")
                for n in range(len(scan_files)):
                    create_scan(db, project, f"s{s}", f"s{s}e{e}", str(n))
    places: list[tuple[Target, list[int]]] = [(Target(project), project_files)]
    for s, (own, visits) in enumerate(tree):
        places.append((Target(project, f"s{s}"), own))
        for e, (at_session, scan_files) in enumerate(visits):
            places.append((Target(project, f"s{s}", f"s{s}e{e}"), at_session))
            for n, at_scan in enumerate(scan_files):
                places.append((Target(project, f"s{s}", f"s{s}e{e}", str(n)), at_scan))
    for target, contents in places:
        for i, content in enumerate(contents):
            add_file(depot, target, "R", f"f{i}.bin", [CONTENTS[content]])
    return project


def all_file_digests(depot: Depot) -> dict[int, str]:
    with depot.reading() as db:
        return dict(db.execute(select(ResourceFile.id, ResourceFile.digest)).all())


@pytest.mark.slow
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(tree=subjects, project_files=files, pick=st.integers(min_value=0, max_value=3))
def test_erasure_leaves_no_row_and_no_unreferenced_blob_of_the_subject(
    depot: Depot, tree: list, project_files: list[int], pick: int
) -> None:
    project = plant(depot, tree, project_files)
    victim = f"s{pick % len(tree)}"
    ids = ids_of(depot, project, victim)
    survivors = [f"s{s}" for s in range(len(tree)) if f"s{s}" != victim]
    kept_files = {s: files_of(depot, project, s) for s in survivors}
    with depot.reading() as db:
        own_file_ids = set(
            db.scalars(
                select(ResourceFile.id).where(ResourceFile.resource_id.in_(ids["resource_id"]))
            )
        )
    before = all_file_digests(depot)
    still_needed = {d for i, d in before.items() if i not in own_file_ids}
    only_its = {before[i] for i in own_file_ids} - still_needed

    summary = erase_subject(depot, "cli:dpo", project, victim, victim)

    assert rows_naming(depot, ids) == {}
    assert {s: files_of(depot, project, s) for s in survivors} == kept_files
    on_disk = set(depot.blobs.digests())
    assert not only_its & on_disk and still_needed <= on_disk
    assert on_disk == blob_rows(depot) == set(all_file_digests(depot).values())
    assert summary.blobs_removed == len(only_its)
    assert fsck(depot.engine, depot.blobs).ok


def test_property_helper_plants_what_it_is_given(depot: Depot) -> None:
    project = plant(depot, [([0], [([1], [[2, 3]])])], [4])
    assert [p for p, _ in files_of(depot, project, "s0")] == [
        "f0.bin",
        "f0.bin",
        "f0.bin",
        "f1.bin",
    ]
