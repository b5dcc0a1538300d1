"""Fixtures for ingest over the network: a listener in this process, the test data, a sender.

Most tests talk to an in-process `DicomListener` on a free loopback port (fast, and it sees the
test's depot on SQLite and PostgreSQL); `test_serve.py` runs the real `neurodepot serve`
(see `processes.py`).
"""

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pynetdicom
import pytest

from neurodepot.catalog.hierarchy import create_project
from neurodepot.depot.folder import Depot
from neurodepot.ingest.listener import DicomListener
from neurodepot.ingest.routing import compile_routes
from tests.ingest_network.dicom_files import Instance, instances_in
from tests.ingest_network.senders import HOST, Scu

AE_TITLE = "NEURODEPOT"
MRI3T_ROUTE = {"name": "3T scanner", "called_aet": "MRI3T", "project": "alpha"}

Listen = Callable[..., DicomListener]


@pytest.fixture(scope="session")
def ge_folder(testdata: Path) -> Path:
    """GE: one study, 4 series of 150 instances."""
    return testdata / "dcm_qa_nih" / "In" / "20180918GE"


@pytest.fixture(scope="session")
def siemens_folder(testdata: Path) -> Path:
    """Siemens: one study, 4 series of 2 instances."""
    return testdata / "dcm_qa_nih" / "In" / "20180918Si"


@pytest.fixture(scope="session")
def ge_instances(ge_folder: Path) -> list[Instance]:
    return instances_in(ge_folder)


@pytest.fixture(scope="session")
def siemens_instances(siemens_folder: Path) -> list[Instance]:
    return instances_in(siemens_folder)


@pytest.fixture
def listen(depot: Depot) -> Iterator[Listen]:
    """Start a listener on the test's depot on a free port; every one started is stopped."""
    started: list[DicomListener] = []

    def start(routes: tuple[Mapping[str, object], ...] = ()) -> DicomListener:
        listener = DicomListener(depot, compile_routes(routes), HOST, 0, AE_TITLE)
        started.append(listener)
        listener.start()
        return listener

    yield start
    for listener in started:
        listener.stop()


@pytest.fixture
def scu(monkeypatch: pytest.MonkeyPatch) -> Scu:
    """pynetdicom's SCU, sending files byte for byte as they are on disk."""
    monkeypatch.setattr(pynetdicom._config, "STORE_SEND_CHUNKED_DATASET", True)
    return Scu()


@pytest.fixture
def alpha(depot: Depot) -> Depot:
    """The test's depot with project `alpha` (archived automatically when quiet)."""
    with depot.transaction() as db:
        create_project(db, "alpha")
    return depot
