"""Automatic pipelines on archived sessions: configured per project, queued in order, chained."""

import pytest
from sqlalchemy import update

from neurodepot.catalog import hierarchy
from neurodepot.catalog.target import Level, Target
from neurodepot.depot.folder import Depot
from neurodepot.errors import Invalid, NotFound
from neurodepot.jobs import records, triggers
from neurodepot.jobs.models import Job
from neurodepot.jobs.registry import Pipeline, PipelineRegistry

SESSION = Target("P", "S", "E")


def _nothing(_context: object) -> None:
    return None


@pytest.fixture
def registry() -> PipelineRegistry:
    made = PipelineRegistry()
    made.register(Pipeline("convert", "1", _nothing))
    made.register(Pipeline("qc", "1", _nothing, after=("convert",)))
    made.register(Pipeline("release", "1", _nothing, levels=frozenset({Level.PROJECT})))
    return made


@pytest.fixture
def session(depot: Depot) -> Depot:
    with depot.transaction() as db:
        hierarchy.create_project(db, "P")
        hierarchy.create_subject(db, "P", "S")
        hierarchy.create_session(db, "P", "S", "E", "MR")
    return depot


def test_archived_session_queues_the_project_pipelines_in_order_and_chained(
    session: Depot, registry: PipelineRegistry
) -> None:
    with session.transaction() as db:
        triggers.set_project_pipelines(db, registry, "P", [("convert", {}), ("qc", {})])
        queued = triggers.session_archived(db, registry, SESSION, "ingest")
    convert, qc = queued
    assert (convert.pipeline, qc.pipeline) == ("convert", "qc")
    assert convert.after_job_id is None and qc.after_job_id == convert.id
    assert {job.target for job in queued} == {"P/S/E"}
    assert records.dispatchable(session, 10) == [(convert.id, 0)]


def test_a_chained_job_starts_after_its_parent_succeeds_and_fails_if_it_fails(
    session: Depot, registry: PipelineRegistry
) -> None:
    with session.transaction() as db:
        triggers.set_project_pipelines(db, registry, "P", [("convert", {}), ("qc", {})])
        first = triggers.session_archived(db, registry, SESSION, "ingest")
        second = triggers.session_archived(db, registry, SESSION, "ingest")
        db.execute(update(Job).where(Job.id == first[0].id).values(status="succeeded"))
        db.execute(update(Job).where(Job.id == second[0].id).values(status="failed"))
    assert records.dispatchable(session, 10) == [(first[1].id, 0)]
    with session.reading() as db:
        orphan = records.get_job(db, second[1].id)
    assert orphan.status == "failed"
    assert "waits for failed" in orphan.error


def test_a_project_without_automatic_pipelines_queues_nothing(
    session: Depot, registry: PipelineRegistry
) -> None:
    with session.transaction() as db:
        assert triggers.session_archived(db, registry, SESSION, "ingest") == []


@pytest.mark.parametrize(
    ("chosen", "error", "fragment"),
    [
        ([("qc", {})], Invalid, "runs after convert"),
        ([("release", {})], Invalid, "does not run on sessions"),
        ([("nope", {})], NotFound, "known pipelines"),
    ],
)
def test_an_impossible_list_is_refused_and_the_old_one_kept(
    session: Depot,
    registry: PipelineRegistry,
    chosen: list[tuple[str, dict[str, object]]],
    error: type[Exception],
    fragment: str,
) -> None:
    with session.transaction() as db:
        triggers.set_project_pipelines(db, registry, "P", [("convert", {})])
    with pytest.raises(error, match=fragment), session.transaction() as db:
        triggers.set_project_pipelines(db, registry, "P", chosen)
    with session.reading() as db:
        assert triggers.project_pipelines(db, "P") == [("convert", {})]


def test_setting_the_list_replaces_it(session: Depot, registry: PipelineRegistry) -> None:
    with session.transaction() as db:
        triggers.set_project_pipelines(db, registry, "P", [("convert", {}), ("qc", {})])
        triggers.set_project_pipelines(db, registry, "P", [("convert", {})])
        assert triggers.project_pipelines(db, "P") == [("convert", {})]
        triggers.set_project_pipelines(db, registry, "P", [])
        assert triggers.project_pipelines(db, "P") == []
