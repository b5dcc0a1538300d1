"""Subject access export: one subject's records, consent, audit trail and files, no one else's."""

import hashlib
import io
import json
import tracemalloc
import zipfile
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

import neurodepot.example
from neurodepot.access import audit
from neurodepot.access.models import AuditEvent
from neurodepot.catalog.hierarchy import create_project, create_subject, find_scan
from neurodepot.catalog.resources import add_file
from neurodepot.catalog.target import Target
from neurodepot.consent.records import set_consent, withdraw_consent
from neurodepot.consent.subject_export import export_subject, plan_export, stream_export
from neurodepot.convert.models import ScanConversion
from neurodepot.deid import linkage
from neurodepot.depot.folder import Depot
from neurodepot.errors import Conflict, Invalid, NotFound
from neurodepot.ingest.bulk import import_dicom
from neurodepot.ingest.receive import Override
from neurodepot.jobs import records
from neurodepot.jobs.models import Job
from neurodepot.jobs.registry import load_registry

EXAMPLE_DICOM = Path(neurodepot.example.__file__).parent / "data" / "siemens_epi_ap"
OWN_SUBJECT, OWN_SESSION, OWN_SCAN = b"score,7\n", b"visit went well\n", b"\x1f\x8bnifti of S01"
SHARED, OTHER = b"consent form template v2", b"only S010 has this"
ROOT = "P-S01"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build_tree(depot: Depot) -> None:
    """Project P: S01 (the subject of the tests), S02 sharing contents with it, S010 a decoy.

    S01 and S02 each hold the same DICOM session (archived from the prearchive), so their
    DICOM blobs are shared; S01 also has files only it holds at subject, session and scan
    level, and a file whose content S02 holds too. S01 has consent records (withdrawn),
    pseudonyms, a conversion, a finished job and audit events of its own.
    """
    with depot.transaction() as db:
        create_project(db, "P")
        create_subject(db, "P", "S010")
    for subject, session in (("S01", "E1"), ("S02", "E2")):
        imported = import_dicom(depot, EXAMPLE_DICOM, Override("P", subject, session))
        assert imported.archived and not imported.not_archived
    add_file(depot, Target("P", "S01"), "beh", "scores.csv", [OWN_SUBJECT])
    add_file(depot, Target("P", "S01", "E1"), "notes", "visit.txt", [OWN_SESSION])
    add_file(depot, Target("P", "S01", "E1", "3"), "NIFTI", "bold.nii.gz", [OWN_SCAN])
    add_file(depot, Target("P", "S01"), "docs", "consent.pdf", [SHARED])
    add_file(depot, Target("P", "S02"), "docs", "consent.pdf", [SHARED])
    add_file(depot, Target("P", "S010"), "beh", "scores.csv", [OTHER])
    registry = load_registry()
    with depot.transaction() as db:
        set_consent(db, "rec", "P", "S01", "open", form="F", form_version="2")
        withdraw_consent(db, "rec", "P", "S01")
        set_consent(db, "rec", "P", "S02", "internal")
        set_consent(db, "rec", "P", "S010", "open")
        linkage.subject_link(db, "P", "S01")
        linkage.session_pseudonym(db, "P", "S01", "E1")
        linkage.subject_link(db, "P", "S02")
        scan = find_scan(db, "P", "S01", "E1", "3")
        db.add(
            ScanConversion(scan_id=scan.id, status="converted", tool="dcm2niix", tool_version="1")
        )
        done = records.create_job(db, registry, "noop", Target("P", "S01", "E1"), {}, "test")
        db.execute(update(Job).where(Job.id == done.id).values(status="succeeded"))
        records.create_job(db, registry, "noop", Target("P", "S010"), {}, "test")
        records.create_job(db, registry, "noop", Target("P"), {}, "test")
        audit.record(db, "reader", "data_read", "P/S01/E1/3", {"path": "x"})
        audit.record(db, "reader", "data_read", "P/S010", {"path": "y"})
        audit.record(db, "reader", "data_read", "P/S02/E2", {"path": "z"})


@pytest.fixture
def held(depot: Depot) -> Depot:
    build_tree(depot)
    return depot


def read_zip(path: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The JSON entries (by name, without the root) and the files (by their zip name)."""
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        names = archive.namelist()
        assert all(name.startswith(ROOT + "/") for name in names)
        entries = {name[len(ROOT) + 1 :]: archive.read(name) for name in names}
    records_ = {k: json.loads(v) for k, v in entries.items() if k.endswith(".json")}
    files = {k: v for k, v in entries.items() if k.startswith("files/")}
    return records_, files


def test_the_zip_holds_the_subjects_records_and_files_with_their_digests(
    held: Depot, tmp_path: Path
) -> None:
    out = tmp_path / "s01.zip"
    summary = export_subject(held, "cli:dpo", "P", "S01", out)

    found, files = read_zip(out)
    assert set(found) == {
        "manifest.json", "catalog.json", "consent.json", "pseudonyms.json", "jobs.json",
        "prearchive.json", "audit.json",
    }  # fmt: skip
    catalog = found["catalog.json"]
    listed = [f for r in catalog["resources"] for f in r["files"]]
    (session,) = catalog["sessions"]
    assert session["label"] == "E1" and session["study_instance_uid"]
    listed += [f for r in session["resources"] for f in r["files"]]
    (scan,) = session["scans"]
    assert scan["label"] == "3" and scan["modality"] == "MR"
    assert scan["series_number"] is not None and scan["manufacturer"]
    assert scan["repetition_time"] is not None and scan["instance_count"] == 2
    assert scan["archived_instances"] == 2
    assert scan["conversion"]["status"] == "converted"
    listed += [f for r in scan["resources"] for f in r["files"]]
    assert {r["label"] for r in scan["resources"]} == {"DICOM", "NIFTI"}
    assert len(listed) == summary.files == 6
    assert set(files) == {f["archive_path"] for f in listed}
    for entry in listed:
        content = files[entry["archive_path"]]
        assert sha256(content) == entry["digest"] and len(content) == entry["size"]
        with held.blobs.open(entry["digest"]) as blob:
            assert blob.read() == content
    assert files["files/resources/beh/scores.csv"] == OWN_SUBJECT
    assert files["files/sessions/E1/resources/notes/visit.txt"] == OWN_SESSION
    assert files["files/sessions/E1/scans/3/resources/NIFTI/bold.nii.gz"] == OWN_SCAN
    assert summary.bytes == sum(len(v) for v in files.values())


@pytest.fixture
def exported(held: Depot, tmp_path: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    """S01's export, made by `cli:dpo`, read back: JSON entries and files."""
    export_subject(held, "cli:dpo", "P", "S01", tmp_path / "s01.zip")
    return read_zip(tmp_path / "s01.zip")


def test_the_zip_holds_consent_history_pseudonyms_jobs_and_prearchive(
    held: Depot, exported: tuple[dict[str, Any], dict[str, bytes]]
) -> None:
    found, _ = exported
    history = found["consent.json"]
    assert [(c["level"], c["form_version"]) for c in history] == [("open", "2"), ("withdrawn", "2")]
    assert history[1]["withdrawn_on"] is not None
    with held.reading() as db:
        link = linkage.subject_link(db, "P", "S01")
    assert found["pseudonyms.json"]["subject"]["pseudonym"] == link.pseudonym
    assert found["pseudonyms.json"]["subject"]["date_offset_days"] == link.date_offset_days
    assert [s["session"] for s in found["pseudonyms.json"]["sessions"]] == ["E1"]
    assert [j["target"] for j in found["jobs.json"]] == ["P/S01/E1"]
    (study,) = found["prearchive.json"]
    assert (study["subject"], study["archived_to"]) == ("S01", "P/S01/E1")
    assert study["patient_name"]  # what the prearchive kept from the headers is shown too


def test_the_audit_trail_is_the_subjects_events_and_the_export_is_audited(
    held: Depot, exported: tuple[dict[str, Any], dict[str, bytes]]
) -> None:
    found, _ = exported
    events = found["audit.json"]
    assert {e["target"] for e in events} == {"P/S01", "P/S01/E1/3"}
    assert [e["action"] for e in events if e["target"] == "P/S01"] == [
        "consent_set", "consent_withdrawn",
    ]  # fmt: skip
    assert all(audit.chain_hash(e) == e["hash"] for e in events)  # exactly as stored
    with held.reading() as db:
        event = db.scalars(select(AuditEvent).where(AuditEvent.action == "subject_exported")).one()
    assert (event.actor, event.target) == ("cli:dpo", "P/S01")
    assert event.detail == {"files": 6, "bytes": event.detail["bytes"], "audit_events": 3}
    assert found["manifest.json"]["export_event_id"] == event.id
    assert found["manifest.json"]["exported_by"] == "cli:dpo"


def test_other_subjects_data_is_absent(
    held: Depot, exported: tuple[dict[str, Any], dict[str, bytes]]
) -> None:
    found, files = exported
    text = json.dumps(found)
    for other in ("P/S02", "P/S010", '"S02"', '"S010"', '"E2"'):
        assert other not in text
    assert OTHER not in files.values()
    with held.reading() as db:
        other_pseudonym = linkage.subject_link(db, "P", "S02").pseudonym
    assert other_pseudonym not in text


def test_labels_with_like_wildcards_match_only_themselves(depot: Depot, tmp_path: Path) -> None:
    with depot.transaction() as db:
        create_project(db, "P")
        create_subject(db, "P", "a_b")
        create_subject(db, "P", "axb")
        set_consent(db, "rec", "P", "axb", "open")
        audit.record(db, "reader", "data_read", "P/axb/E", {})
    export_subject(depot, "cli:dpo", "P", "a_b", tmp_path / "a.zip")

    with zipfile.ZipFile(tmp_path / "a.zip") as archive:
        assert json.loads(archive.read("P-a_b/audit.json")) == []


def test_unknown_subject_or_bad_destination_exports_nothing(held: Depot, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="subject 'S99' does not exist"):
        export_subject(held, "cli:dpo", "P", "S99", tmp_path / "x.zip")
    with pytest.raises(NotFound, match="project 'Q'"):
        export_subject(held, "cli:dpo", "Q", "S01", tmp_path / "x.zip")
    taken = tmp_path / "taken.zip"
    taken.write_bytes(b"mine")
    with pytest.raises(Conflict, match="already exists"):
        export_subject(held, "cli:dpo", "P", "S01", taken)
    assert taken.read_bytes() == b"mine"
    with pytest.raises(Invalid, match="does not exist"):
        export_subject(held, "cli:dpo", "P", "S01", tmp_path / "no" / "x.zip")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["depot", "taken.zip"]
    with held.reading() as db:
        assert not db.scalars(
            select(AuditEvent).where(AuditEvent.action == "subject_exported")
        ).all()


def test_a_blob_gone_since_planning_fails_and_leaves_no_partial_file(
    held: Depot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import neurodepot.consent.subject_export as module

    real_plan = module.plan_export

    def plan_then_lose(*args: Any) -> Any:
        made = real_plan(*args)
        held.blobs.path(sha256(OWN_SCAN)).unlink()
        return made

    monkeypatch.setattr(module, "plan_export", plan_then_lose)
    with pytest.raises(NotFound, match="missing from the store"):
        export_subject(held, "cli:dpo", "P", "S01", tmp_path / "x.zip")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["depot"]


def test_the_stream_comes_in_chunks_and_memory_stays_flat(depot: Depot) -> None:
    size = 24 * 1024 * 1024
    block = bytes(range(256)) * 4096  # 1 MiB
    with depot.transaction() as db:
        create_project(db, "P")
        create_subject(db, "P", "S01")
    add_file(
        depot, Target("P", "S01"), "big", "big.bin", (block for _ in range(size // len(block)))
    )

    plan = plan_export(depot, "cli:dpo", "P", "S01")
    tracemalloc.start()
    try:
        sink = hashlib.sha256()
        largest = total = 0
        for chunk in stream_export(plan, depot.blobs):
            largest, total = max(largest, len(chunk)), total + len(chunk)
            sink.update(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total > size
    assert largest < 2 * 1024 * 1024
    assert peak < 8 * 1024 * 1024, f"peak {peak} bytes for a {size}-byte file"


def test_the_streamed_zip_is_the_written_zip(held: Depot, tmp_path: Path) -> None:
    plan = plan_export(held, "api:olly", "P", "S01")
    body = b"".join(stream_export(plan, held.blobs))

    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert archive.testzip() is None
        names = archive.namelist()
    assert f"{ROOT}/files/resources/beh/scores.csv" in names
    assert names[0] == f"{ROOT}/manifest.json"


def test_progress_is_reported_file_by_file(held: Depot, tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    export_subject(
        held, "cli:dpo", "P", "S01", tmp_path / "x.zip", progress=lambda n, t: seen.append((n, t))
    )
    assert seen == [(n, 6) for n in range(1, 7)]
