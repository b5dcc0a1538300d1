"""`neurodepot run`, `pipelines` and `jobs` as a user runs them, on a real local Dask cluster."""

import json
from pathlib import Path

import pytest

from tests.cli.conftest import Run
from tests.cli.test_end_to_end import assert_one_line_error


@pytest.fixture
def study(cli: Run, tmp_path: Path) -> Run:
    assert cli("init").code == 0
    assert cli("project", "create", "P").code == 0
    assert cli("subject", "create", "P/S").code == 0
    notes = tmp_path / "notes.txt"
    notes.write_text("calm participant\n")
    assert cli("resource", "add", "P/S", "notes", str(notes)).code == 0
    return cli


@pytest.mark.slow
def test_run_wait_executes_the_job_and_commits_its_outputs(study: Run, tmp_path: Path) -> None:
    result = study("run", "manifest", "P/S", "--wait", "--json")
    assert result.code == 0, result.err
    job = json.loads(result.out)
    assert job["status"] == "succeeded" and job["outputs"] == ["P/S/MANIFEST"]
    got = study("resource", "get", "P/S", "MANIFEST", "manifest.json", "-o", "-")
    manifest = json.loads(got.out)
    assert [(f["resource"], f["path"]) for f in manifest["files"]] == [("notes", "notes.txt")]
    assert study("fsck").code == 0


@pytest.mark.slow
def test_a_failing_job_exits_non_zero_with_its_error(study: Run) -> None:
    result = study("run", "wait", "P", "--param", "seconds=0.1", "--param", "fail=true", "--wait")
    assert result.code == 1
    assert "failed on request" in result.out
    shown = json.loads(study("jobs", "show", "1", "--json").out)
    assert shown["status"] == "failed" and shown["attempt"] == 2
    assert "Traceback" in shown["log"]
    retried = json.loads(study("jobs", "retry", "1", "--json").out)
    assert retried["status"] == "queued" and retried["max_attempts"] == 4


def test_a_job_queued_without_wait_can_be_listed_and_cancelled(study: Run) -> None:
    queued = study("run", "wait", "P", "--param", "seconds=5", "--json")
    assert queued.code == 0, queued.err
    job_id = json.loads(queued.out)["id"]
    listed = json.loads(study("jobs", "list", "--status", "queued", "--json").out)
    assert [j["id"] for j in listed] == [job_id]
    cancelled = json.loads(study("jobs", "cancel", str(job_id), "--json").out)
    assert cancelled["status"] == "cancelled"
    assert_one_line_error(study("jobs", "cancel", str(job_id)), 4, "already cancelled")
    names = [p["name"] for p in json.loads(study("pipelines", "--json").out)]
    assert names == sorted(names) and {"convert", "manifest"} <= set(names)


def test_bad_job_requests_give_one_clear_line_and_queue_nothing(study: Run) -> None:
    assert_one_line_error(study("run", "nope", "P"), 3, "known pipelines")
    assert_one_line_error(study("run", "wait", "P", "--param", "seconds=-1"), 2, "seconds")
    assert_one_line_error(study("run", "wait", "P", "--param", "seconds"), 2, "KEY=VALUE")
    assert_one_line_error(study("run", "noop", "P/Ghost"), 3, "Ghost")
    assert_one_line_error(study("jobs", "show", "77"), 3, "77")
    assert json.loads(study("jobs", "list", "--json").out) == []
