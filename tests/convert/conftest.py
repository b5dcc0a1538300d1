"""Real DICOM archived into a project, and the `convert` job run on it in this process.

`studies` copies chosen series of dcm_qa_nih into a folder (import does not follow links), so
a test imports exactly the series it needs; `convert` runs the recorded job as
`neurodepot convert` does, without a cluster.
"""

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from neurodepot.catalog.hierarchy import create_project, list_projects
from neurodepot.catalog.target import Target
from neurodepot.depot.folder import Depot
from neurodepot.ingest.bulk import import_dicom
from neurodepot.ingest.receive import Override
from neurodepot.jobs import records
from neurodepot.jobs.executor import execute_job_here
from neurodepot.jobs.registry import load_registry
from tests.api.conftest import anonymous_client, anyio_backend, operator_client  # noqa: F401
from tests.cli.conftest import cli  # noqa: F401

GE = "20180918GE"
SIEMENS = "20180918Si"
SIEMENS_SERIES = ("mr_0003", "mr_0004", "mr_0005", "mr_0006")
GE_SERIES = ("mr_0004", "mr_0005", "mr_0006", "mr_0007")
# PatientID DEV, StudyDate 20180918: the GE study is archived first (its session takes the
# plain label), the Siemens study second.
GE_SESSION = Target("P", "DEV", "DEV_20180918")
SIEMENS_SESSION = Target("P", "DEV", "DEV_20180918_2")

Convert = Callable[..., records.JobInfo]
Studies = Callable[..., Path]


@pytest.fixture
def studies(testdata: Path, tmp_path: Path) -> Studies:
    """A folder with copies of the named series: `studies(GE=("mr_0004",), Si=SIEMENS_SERIES)`."""

    def make(ge: tuple[str, ...] = (), siemens: tuple[str, ...] = (), name: str = "in") -> Path:
        root = tmp_path / name
        for study, series in ((GE, ge), (SIEMENS, siemens)):
            for one in series:
                folder = root / study / one
                folder.mkdir(parents=True)
                for file in sorted((testdata / "dcm_qa_nih" / "In" / study / one).glob("*.dcm")):
                    shutil.copyfile(file, folder / file.name)
        return root

    return make


def archive(depot: Depot, folder: Path, project: str = "P") -> None:
    """Import a folder of DICOM into `project` (created if needed) and archive it."""
    with depot.transaction() as db:
        if project not in {p.label for p in list_projects(db)}:
            create_project(db, project, name=f"Project {project}")
    summary = import_dicom(depot, folder, Override(project), registry=load_registry())
    assert summary.imported and not summary.unreadable and not summary.not_archived, summary


@pytest.fixture
def convert(depot: Depot) -> Convert:
    """Run the `convert` pipeline on a target now, as a recorded job; returns the finished job."""

    def run(target: Target | str, **params: object) -> records.JobInfo:
        registry = load_registry()
        t = Target.parse(target) if isinstance(target, str) else target
        with depot.transaction() as db:
            job = records.create_job(db, registry, "convert", t, dict(params), "test")
        execute_job_here(depot, job.id, depot.settings.job_heartbeat_s)
        with depot.transaction() as db:
            return records.get_job(db, job.id)

    return run
