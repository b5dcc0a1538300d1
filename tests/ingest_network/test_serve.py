"""`neurodepot serve` end to end: its listener and sweeper archive what storescu sends, and a
server killed mid-transfer loses nothing once the study is sent again.

SQLite only: the server runs in a process of its own and these tests are slow; the same ingest
code runs on PostgreSQL in the in-process tests of this folder.
"""

import json
import subprocess
from pathlib import Path

import pytest

from neurodepot.config import CONFIG_FILE
from neurodepot.depot.folder import Depot
from tests.ingest_network.archived import (
    archived_instances,
    differences_from_sent,
    received_count,
    studies,
)
from tests.ingest_network.dicom_files import Instance
from tests.ingest_network.polling import wait_for
from tests.ingest_network.processes import (
    STARTUP_S,
    STOP_S,
    free_port,
    group_alive,
    group_size,
    neurodepot,
    neurodepot_json,
    serving,
)
from tests.ingest_network.senders import storescu, storescu_command, storescu_env

pytestmark = pytest.mark.parametrize("database_url", [None], ids=["sqlite"])

ROUTE = '\n[[dicom.routes]]\nname = "3T scanner"\ncalled_aet = "MRI3T"\nproject = "alpha"\n'
ARCHIVE_S = 60
SENDER_EXIT_S = 60


@pytest.fixture
def served_depot(alpha: Depot) -> Depot:
    """Project `alpha`, and a route sending what is called `MRI3T` there (neurodepot.toml)."""
    config = alpha.settings.root / CONFIG_FILE
    config.write_text(config.read_text(encoding="utf-8") + ROUTE, encoding="utf-8")
    return alpha


def all_archived(depot: Depot) -> tuple[int, list[str]]:
    return len(archived_instances(depot)), [study.state for study in studies(depot)]


def test_what_storescu_sends_to_serve_is_archived_once_quiet(
    served_depot: Depot,
    depot_env: dict[str, str],
    siemens_folder: Path,
    siemens_instances: list[Instance],
    tmp_path: Path,
) -> None:
    root, log = served_depot.settings.root, tmp_path / "serve.log"
    with serving(root, depot_env, log, free_port()) as server:
        result = storescu(server.dicom_port, siemens_folder, "MRI3T")
        assert result.returncode == 0, result.stdout + result.stderr
        wait_for(
            lambda: all_archived(served_depot),
            lambda seen: seen == (8, ["archived"]),
            ARCHIVE_S,
            "the study archived by the sweeper",
        )
        [listed] = neurodepot_json(root, depot_env, "prearchive", "list")
    assert (listed["state"], listed["archived_to"]) == ("archived", "alpha/DEV/DEV_20180918")
    assert differences_from_sent(served_depot, siemens_instances) == []
    assert '"msg": "study archived"' in log.read_text(), "the operator sees what was archived"


def test_serve_stopped_with_sigterm_stops_its_listener_and_cluster_first(
    served_depot: Depot, depot_env: dict[str, str], tmp_path: Path
) -> None:
    log = tmp_path / "serve.log"
    with serving(served_depot.settings.root, depot_env, log, free_port()) as server:
        wait_for(
            lambda: group_size(server),
            lambda processes: processes >= 3,  # server, Dask's resource tracker, a worker
            STARTUP_S,
            "the local Dask cluster started",
        )
        server.process.terminate()
        server.process.wait(timeout=STOP_S)
        # Dask's resource tracker reports what was left open once the server has gone.
        wait_for(lambda: group_alive(server), lambda alive: not alive, STOP_S, "children gone")
    text = log.read_text()
    assert "leaked semaphore" not in text, text
    assert "Traceback" not in text, text


@pytest.mark.slow
def test_a_server_killed_mid_transfer_loses_nothing_once_the_study_is_sent_again(
    served_depot: Depot,
    depot_env: dict[str, str],
    ge_folder: Path,
    ge_instances: list[Instance],
    tmp_path: Path,
) -> None:
    root, log, dicom_port = served_depot.settings.root, tmp_path / "serve.log", free_port()
    sender_log = tmp_path / "storescu.log"
    with serving(root, depot_env, log, dicom_port) as server:
        with sender_log.open("wb") as output:
            sender = subprocess.Popen(
                [*storescu_command(dicom_port, ge_folder, "MRI3T"), "-v"],
                env=storescu_env(),
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_for(
                lambda: received_count(served_depot),
                lambda count: count >= 60,
                ARCHIVE_S,
                "instances received before the kill",
            )
            server.kill()
            sender.wait(timeout=SENDER_EXIT_S)
        finally:
            if sender.poll() is None:
                sender.kill()
                sender.wait(timeout=SENDER_EXIT_S)
        wait_for(lambda: group_alive(server), lambda alive: not alive, STOP_S, "children gone")
    assert sender.returncode != 0, "storescu did not notice the server died"
    recorded = received_count(served_depot)
    acknowledged = sender_log.read_text().count("Received Store Response (Success)")
    assert 60 <= recorded < 600
    assert acknowledged <= recorded, "an instance is acknowledged only once it is recorded"
    checked = json.loads(neurodepot(root, depot_env, "fsck", "--json", expect=None).stdout)
    damage = [p for p in checked["problems"] if p["kind"] in {"missing", "corrupt", "dangling"}]
    assert damage == [], "the kill left a row without its blob, or a damaged blob"

    with serving(root, depot_env, log, dicom_port) as server:
        result = storescu(dicom_port, ge_folder, "MRI3T")
        assert result.returncode == 0, result.stdout + result.stderr
        archived, _ = wait_for(
            lambda: all_archived(served_depot),
            lambda seen: seen[0] >= 600 and set(seen[1]) == {"archived"},
            ARCHIVE_S,
            "the whole study archived after the restart",
        )
    assert archived == 600
    assert received_count(served_depot) == 0
    assert differences_from_sent(served_depot, ge_instances) == []
    fsck = neurodepot(root, depot_env, "fsck", expect=None)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
