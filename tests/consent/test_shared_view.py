"""The shared view: pseudonyms only, exactly the shared subjects, DUAs named, nothing cached.

A download without the current DUAs is refused with a message naming each DUA still to accept
and its id, and succeeds once they are accepted (through the API, as a user would).
"""

import gzip
import json
import tracemalloc
import zipfile
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from neurodepot.access.models import AuditEvent, User
from neurodepot.api.app import create_app
from neurodepot.catalog import hierarchy, resources
from neurodepot.catalog.target import Target
from neurodepot.consent import dua, shared_view
from neurodepot.consent.dua import NO_SITE_DUA
from neurodepot.deid import linkage
from neurodepot.deid.models import SubjectPseudonym
from neurodepot.deid.overrides import add_override
from neurodepot.depot.folder import Depot
from neurodepot.errors import Conflict, NotFound
from tests.consent.test_sharing_matrix import (
    MARKER,
    add_caller,
    add_imaged_subject,
    bearer,
    participants,
    set_access,
    set_consent,
    zip_contents,
)

# Subject label → its consent; each has one imaged session, A a second one without scans.
CONSENT = {"a": "internal", "b": "open", "c": "none", "d": "withdrawn"}


def label(short: str) -> str:
    return f"{MARKER}-{short}"


@pytest.fixture
def shared(depot: Depot) -> Depot:
    """Project P (internal) with subjects a (internal), b (open), c (none), d (withdrawn)."""
    with depot.transaction() as db:
        hierarchy.create_project(db, "P", "Sleep study", "Sleep and memory.")
    for short in CONSENT:
        add_imaged_subject(depot, "P", label(short), label(f"sess-{short}"))
    with depot.transaction() as db:
        hierarchy.create_session(db, "P", label("a"), label("sess-a2"), modality="eeg")
        for short, level in CONSENT.items():
            if level == "withdrawn":
                set_consent(db, "P", label(short), "open")
            set_consent(db, "P", label(short), level)
        set_access(db, "P", "internal")
    return depot


def pseudonyms(depot: Depot) -> dict[str, str]:
    with depot.reading() as db:
        return linkage.subject_pseudonyms(db, "P")


def test_shared_subjects_are_named_by_pseudonym_only_with_their_sessions(shared: Depot) -> None:
    with shared.transaction() as db:
        listed = shared_view.shared_subjects_for(db, "member", "P")
    names = pseudonyms(shared)
    assert {s.pseudonym for s in listed} == {names[label("a")], names[label("b")]}
    assert [s.pseudonym for s in listed] == sorted(s.pseudonym for s in listed)
    a = next(s for s in listed if s.pseudonym == names[label("a")])
    assert sorted((s.modality, s.scans) for s in a.sessions) == [("EEG", 0), ("MR", 1)]
    assert MARKER not in repr(listed)
    with shared.reading() as db:
        # No pseudonym is drawn for a subject that is not shared.
        assert set(names) == {label("a"), label("b")}
        session_names = {
            linkage.session_pseudonym(db, "P", label("a"), label(s)) for s in ("sess-a", "sess-a2")
        }
    assert {s.pseudonym for s in a.sessions} == session_names


def test_the_same_subject_keeps_its_pseudonym_across_requests(shared: Depot) -> None:
    with shared.transaction() as db:
        first = shared_view.shared_subjects_for(db, "member", "P")
    with shared.transaction() as db:
        again = shared_view.shared_subjects_for(db, "member", "P")
        assert db.scalar(select(func.count()).select_from(SubjectPseudonym)) == 2
    assert first == again


def test_external_researchers_see_nothing_of_an_internal_project_then_only_open_consent(
    shared: Depot,
) -> None:
    with shared.transaction() as db:
        assert shared_view.shared_subjects_for(db, "external", "P") == []
        set_access(db, "P", "public")
        external = shared_view.shared_subjects_for(db, "external", "P")
        member = shared_view.shared_subjects_for(db, "member", "P")
        team = shared_view.shared_subjects_for(db, None, "P")
    names = pseudonyms(shared)
    assert [s.pseudonym for s in external] == [names[label("b")]]
    assert team == member and len(member) == 2


def test_the_summary_counts_the_shared_subjects_and_names_the_duas_to_accept(
    shared: Depot,
) -> None:
    with shared.transaction() as db:
        add_caller(db, "mia", "member")
        site = dua.publish(db, "admin", "Site DUA", "Research only.")
        project = dua.publish(db, "admin", "Sleep DUA", "Cite the study.", project="P")
        user_id = db.scalar(select(User.id).where(User.username == "mia"))
        before = shared_view.shared_summary(db, "P", "member", user_id)
        dua.accept(db, "mia", site.id)
        dua.accept(db, "mia", project.id)
        after = shared_view.shared_summary(db, "P", "member", user_id)
        team = shared_view.shared_summary(db, "P", None, user_id)
    assert (before.project, before.name, before.access, before.subjects) == (
        "P", "Sleep study", "internal", 2,
    )  # fmt: skip
    assert before.dua_required and before.to_accept == (site.name, project.name)
    assert [(d.scope, d.accepted) for d in before.duas] == [("site", False), ("P", False)]
    assert after.to_accept == () and all(d.accepted for d in after.duas)
    assert not team.dua_required and team.to_accept == () and team.subjects == 2
    assert MARKER not in repr((before, after, team))


def test_nothing_shared_is_refused_rather_than_exporting_the_whole_project(
    shared: Depot, tmp_path: Path
) -> None:
    out = tmp_path / "dataset"
    with shared.transaction() as db:
        set_access(db, "P", "private")
        labels = shared_view.shared_labels(db, "member", "P")
        assert labels == []
        with pytest.raises(Conflict, match="nothing is shared from project P yet"):
            shared_view.build_shared_dataset(db, shared.blobs, "P", labels, out)
    assert not out.exists()


def test_the_dataset_holds_exactly_the_shared_subjects_by_pseudonym(
    shared: Depot, tmp_path: Path
) -> None:
    out = tmp_path / "dataset"
    with shared.transaction() as db:
        labels = shared_view.shared_labels(db, "external", "P")
        assert labels == []
        set_access(db, "P", "public")
        labels = shared_view.shared_labels(db, "external", "P")
        summary = shared_view.build_shared_dataset(db, shared.blobs, "P", labels, out)
    assert labels == [label("b")]
    assert summary.subjects == 1
    table = (out / "participants.tsv").read_text()
    assert table == f"participant_id\nsub-{pseudonyms(shared)[label('b')]}\n"
    for path in out.rglob("*"):
        assert MARKER not in str(path.relative_to(out))
        if path.is_file():
            assert MARKER.encode() not in path.read_bytes()


def test_a_zip_of_a_folder_streams_in_chunks_and_keeps_memory_flat(tmp_path: Path) -> None:
    folder = tmp_path / "dataset"
    (folder / "sub-X").mkdir(parents=True)
    big = bytes(range(256)) * (48 * 1024)  # 12 MiB
    (folder / "sub-X" / "big.nii.gz").write_bytes(big)
    (folder / "participants.tsv").write_text("participant_id\nsub-X\n")
    tracemalloc.start()
    try:
        chunks = 0
        with (tmp_path / "out.zip").open("wb") as sink:
            for chunk in shared_view.zip_folder(folder, "root"):
                sink.write(chunk)
                chunks += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024 and chunks > 6
    with zipfile.ZipFile(tmp_path / "out.zip") as archive:
        assert sorted(archive.namelist()) == ["root/participants.tsv", "root/sub-X/big.nii.gz"]
        assert archive.read("root/sub-X/big.nii.gz") == big


def test_a_stream_stopped_early_still_removes_its_folder(tmp_path: Path) -> None:
    work = tmp_path / "shared-1"
    (work / "dataset").mkdir(parents=True)
    (work / "dataset" / "f.nii.gz").write_bytes(b"x" * (3 << 20))
    stream = shared_view.stream_and_remove(work / "dataset", "root", work)
    next(stream)
    stream.close()  # the client went away
    assert not work.exists()


# --- over the API ----------------------------------------------------------------------------


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def work_leftovers(depot: Depot) -> list[Path]:
    return sorted(depot.settings.work_root.glob("shared-*"))


@pytest.mark.anyio
async def test_a_download_without_the_current_dua_is_refused_naming_it_and_succeeds_after(
    shared: Depot,
) -> None:
    with shared.transaction() as db:
        set_access(db, "P", "public")
        secret = add_caller(db, "eve", "external")
    app = create_app(shared)
    url = "/api/v1/shared/P/dataset.zip"
    async with bearer(app, secret) as client:
        refused = await client.get(url)
        assert refused.status_code == 403
        assert NO_SITE_DUA in refused.json()["message"]
        with shared.transaction() as db:
            site = dua.publish(db, "admin", "Site DUA", "Research only.")
            project = dua.publish(db, "admin", "Sleep DUA", "Cite the study.", project="P")
        refused = await client.get(url)
        message = refused.json()["message"]
        assert refused.status_code == 403
        assert f"the site DUA 'Site DUA' version 1 (id {site.id})" in message
        assert f"project P's DUA 'Sleep DUA' version 1 (id {project.id})" in message
        assert (await client.post(f"/api/v1/duas/{site.id}/accept")).status_code == 200
        refused = await client.get(url)
        assert refused.status_code == 403
        assert f"(id {project.id})" in refused.json()["message"]
        assert f"(id {site.id})" not in refused.json()["message"]
        assert (await client.post(f"/api/v1/duas/{project.id}/accept")).status_code == 200
        allowed = await client.get(url)
        assert allowed.status_code == 200, allowed.text
        assert allowed.headers["content-type"] == "application/zip"
        assert 'filename="P-shared.zip"' in allowed.headers["content-disposition"]
        assert participants(zip_contents(allowed.content)) == {pseudonyms(shared)[label("b")]}
        with shared.transaction() as db:  # a new version needs accepting again
            newer = dua.publish(db, "admin", "Site DUA", "Research only; no re-identification.")
        refused = await client.get(url)
        assert refused.status_code == 403
        assert f"version 2 (id {newer.id})" in refused.json()["message"]
        assert (await client.post(f"/api/v1/duas/{newer.id}/accept")).status_code == 200
        assert (await client.get(url)).status_code == 200
    assert work_leftovers(shared) == []


@pytest.mark.anyio
async def test_every_shared_response_says_no_store_and_reads_are_audited(
    shared: Depot,
) -> None:
    with shared.transaction() as db:
        secret = add_caller(db, "mia", "member")
        site = dua.publish(db, "admin", "Site DUA", "Research only.")
        dua.accept(db, "mia", site.id)
    app = create_app(shared)
    async with bearer(app, secret) as client:
        for path in ("", "/subjects", "/dataset.zip"):
            response = await client.get(f"/api/v1/shared/P{path}")
            assert response.status_code == 200, (path, response.text)
            assert response.headers["cache-control"] == "no-store", path
            if path != "/dataset.zip":
                assert MARKER not in response.text
        listed = (await client.get("/api/v1/shared/P/subjects")).json()
    names = pseudonyms(shared)
    assert sorted(s["pseudonym"] for s in listed) == sorted(names.values())
    assert all(set(s) == {"pseudonym", "sessions"} for s in listed)
    with shared.reading() as db:
        kinds = list(
            db.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.actor == "mia", AuditEvent.target == "P")
                .order_by(AuditEvent.id)
            )
        )
    assert kinds == ["data_read", "data_read", "download", "data_read"]
    assert work_leftovers(shared) == []


@pytest.mark.anyio
async def test_the_operator_sees_the_centre_members_view_and_errors_say_what_is_wrong(
    shared: Depot,
) -> None:
    transport = httpx.ASGITransport(app=create_app(shared), client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as operator:
        listed = (await operator.get("/api/v1/shared/P/subjects")).json()
        summary = (await operator.get("/api/v1/shared/P")).json()
        unknown = await operator.get("/api/v1/shared/Nope/subjects")
        malformed = await operator.get("/api/v1/shared/not.a.label")
        with shared.transaction() as db:
            set_access(db, "P", "private")
        empty = await operator.get("/api/v1/shared/P/dataset.zip")
    assert len(listed) == 2 and summary["view"] == "member" and summary["subjects"] == 2
    assert summary["dua_required"] is False
    assert unknown.status_code == 404 and "Nope" in unknown.json()["message"]
    assert malformed.status_code == 422
    assert empty.status_code == 409 and "nothing is shared" in empty.json()["message"]
    assert work_leftovers(shared) == []


@pytest.mark.anyio
async def test_a_destroyed_linkage_refuses_the_shared_view_rather_than_naming_anyone(
    shared: Depot,
) -> None:
    with shared.transaction() as db:
        linkage.destroy_linkage(db, "P", "owner")
    transport = httpx.ASGITransport(app=create_app(shared), client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as operator:
        listing = await operator.get("/api/v1/shared/P/subjects")
        dataset = await operator.get("/api/v1/shared/P/dataset.zip")
    for response in (listing, dataset):
        assert response.status_code == 409
        assert "linkage of project P was destroyed" in response.json()["message"]
        assert MARKER not in response.text
    assert work_leftovers(shared) == []


def test_an_error_while_exporting_never_names_a_subject_by_its_internal_label(
    shared: Depot, tmp_path: Path
) -> None:
    # As if the subject were erased between choosing the shared subjects and exporting them.
    gone = label("erased")
    with shared.transaction() as db, pytest.raises(NotFound) as raised:
        shared_view.build_shared_dataset(db, shared.blobs, "P", [gone], tmp_path / "out")
    assert MARKER not in raised.value.message
    assert "changed meanwhile" in raised.value.message


@pytest.mark.anyio
async def test_what_an_external_researcher_downloads_must_pass_the_release_check(
    shared: Depot,
) -> None:
    """Beyond the centre, data leaves only checked: an anatomical image not verified defaced
    stops the download (409 naming the criterion) until a steward overrides it."""
    scan = Target("P", label("b"), label("sess-b"), "2")
    with shared.transaction() as db:
        hierarchy.create_scan(db, "P", label("b"), label("sess-b"), "2", type="T1w", modality="mr")
    sidecar = {"SeriesDescription": "T1w_MPRAGE", "Modality": "MR"}
    resources.add_file(shared, scan, "NIFTI", "t1.nii.gz", [gzip.compress(b"face", mtime=0)])
    resources.add_file(shared, scan, "NIFTI", "t1.json", [json.dumps(sidecar).encode()])
    with shared.transaction() as db:
        set_access(db, "P", "public")
        eve = add_caller(db, "eve", "external")
        mia = add_caller(db, "mia", "member")
        add_caller(db, "sam", "member", site_role="steward")
        site = dua.publish(db, "admin", "Site DUA", "Research only.")
        for name in ("eve", "mia"):
            dua.accept(db, name, site.id)
    app = create_app(shared)
    url = "/api/v1/shared/P/dataset.zip"
    async with bearer(app, eve) as client:
        refused = await client.get(url)
    assert refused.status_code == 409, refused.text
    assert "DEID-FACE" in refused.json()["message"] and MARKER not in refused.text
    async with bearer(app, mia) as client:  # within the centre: not a release
        assert (await client.get(url)).status_code == 200
    with shared.transaction() as db:
        add_override(db, "P", "DEID-FACE", "Phantom data: there is no face.", "sam", "test")
    async with bearer(app, eve) as client:
        allowed = await client.get(url)
    assert allowed.status_code == 200, allowed.text
    assert participants(zip_contents(allowed.content)) == {pseudonyms(shared)[label("b")]}
    with shared.reading() as db:
        checks = db.scalar(
            select(func.count()).where(
                AuditEvent.action == "deid_checked", AuditEvent.actor == "eve"
            )
        )
    assert checks == 2
    assert work_leftovers(shared) == []
