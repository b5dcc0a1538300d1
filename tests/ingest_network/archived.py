"""What a depot holds after ingest, read from its database and blob store."""

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select

from neurodepot.catalog.models import ImagingSession, Project, Resource, ResourceFile, Scan
from neurodepot.depot.folder import Depot
from neurodepot.depot.orm import utcnow
from neurodepot.ingest.models import PrearchiveConflict, PrearchiveInstance, ScanInstance
from neurodepot.ingest.prearchive import StudyEntry, SweepReport, list_studies, sweep
from tests.ingest_network.dicom_files import Instance, dataset_sha256


@dataclass(frozen=True)
class ArchivedInstance:
    """One row of `scan_instances` with the file it names."""

    project: str
    session: str
    scan: str
    sop_instance_uid: str
    dataset_digest: str
    path: str
    resource: str
    digest: str


def archived_instances(depot: Depot) -> list[ArchivedInstance]:
    with depot.reading() as db:
        rows = db.execute(
            select(
                Project.label,
                ImagingSession.label,
                Scan.label,
                ScanInstance.sop_instance_uid,
                ScanInstance.dataset_digest,
                ResourceFile.path,
                Resource.label,
                ResourceFile.digest,
            )
            .join(Scan, Scan.id == ScanInstance.scan_id)
            .join(ImagingSession, ImagingSession.id == Scan.session_id)
            .join(Project, Project.id == ImagingSession.project_id)
            .join(ResourceFile, ResourceFile.id == ScanInstance.file_id)
            .join(Resource, Resource.id == ResourceFile.resource_id)
            .order_by(ScanInstance.id)
        ).all()
    return [ArchivedInstance(*row) for row in rows]


def stored_dataset_sha256(depot: Depot, digest: str) -> str:
    """SHA-256 of the dataset part of a stored blob (what the sender sent)."""
    return dataset_sha256(depot.blobs.path(digest).read_bytes())


def studies(depot: Depot) -> list[StudyEntry]:
    with depot.reading() as db:
        return list_studies(db)


def received_count(depot: Depot) -> int:
    """Instances held in the prearchive (received, not yet archived)."""
    with depot.reading() as db:
        return db.scalar(select(func.count()).select_from(PrearchiveInstance)) or 0


def conflict_uids(depot: Depot) -> list[tuple[str, str]]:
    """(SOPInstanceUID, what it clashed with) of every instance kept aside."""
    with depot.reading() as db:
        rows = db.execute(
            select(PrearchiveConflict.sop_instance_uid, PrearchiveConflict.against).order_by(
                PrearchiveConflict.id
            )
        ).all()
    return [(uid, against) for uid, against in rows]


def sweep_now(depot: Depot) -> SweepReport:
    """What the server's sweeper does once every study has been quiet long enough."""
    return sweep(depot, None, quiet_s=1, now=utcnow() + timedelta(hours=1))


def differences_from_sent(depot: Depot, sent: list[Instance]) -> list[str]:
    """How the archive differs from `sent`: each instance once, as file `<UID>.dcm` of resource
    DICOM, recorded and stored with the dataset that was sent. Empty when it does not."""
    archived = archived_instances(depot)
    by_uid = {row.sop_instance_uid: row for row in archived}
    problems = []
    if len(by_uid) != len(archived):
        problems.append(f"{len(archived) - len(by_uid)} instance(s) archived more than once")
    unexpected = by_uid.keys() - {instance.sop_instance_uid for instance in sent}
    if unexpected:
        problems.append(f"{len(unexpected)} instance(s) archived that were not sent")
    for instance in sent:
        row = by_uid.get(instance.sop_instance_uid)
        if row is None:
            problems.append(f"{instance.path}: not archived")
            continue
        if (row.resource, row.path) != ("DICOM", f"{instance.sop_instance_uid}.dcm"):
            problems.append(f"{instance.path}: archived as {row.resource}/{row.path}")
        if row.dataset_digest != instance.dataset_sha256:
            problems.append(f"{instance.path}: recorded dataset digest {row.dataset_digest}")
        if stored_dataset_sha256(depot, row.digest) != instance.dataset_sha256:
            problems.append(f"{instance.path}: stored blob {row.digest} holds another dataset")
    return problems
