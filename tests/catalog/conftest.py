"""Fixtures for catalog tests: a depot with a small hierarchy to hang things on."""

import pytest

from neurodepot.catalog.hierarchy import create_project, create_scan, create_session, create_subject
from neurodepot.depot.folder import Depot


@pytest.fixture
def tree(depot: Depot) -> Depot:
    """The test's depot with project `p`, its subject `s`, session `v` and scan `1`."""
    with depot.transaction() as db:
        create_project(db, "p")
        create_subject(db, "p", "s")
        create_session(db, "p", "s", "v", modality="mr")
        create_scan(db, "p", "s", "v", "1", type="T1w", modality="mr")
    return depot
