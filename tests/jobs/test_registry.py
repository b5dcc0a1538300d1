"""Pipelines: the built-ins, finding one by name, checking a request's target and parameters."""

from importlib.metadata import EntryPoint

import pytest
from pydantic import BaseModel

from neurodepot.catalog.target import Level, Target
from neurodepot.errors import Invalid, NotFound
from neurodepot.jobs import registry as registry_module
from neurodepot.jobs.context import JobContext
from neurodepot.jobs.registry import ENTRY_POINT_GROUP, Pipeline, PipelineRegistry, load_registry

PROJECT, SESSION = Target("p"), Target("p", "s", "v")


def _run(context: JobContext) -> None:
    context.check_cancelled()


EXTRA = Pipeline("extra", "2", _run, description="Installed by another package.")
EXTRA_LIST = [Pipeline("extra-a", "1", _run), Pipeline("extra-b", "1", _run)]
NOT_A_PIPELINE = "wait"
CLASHING = Pipeline("noop", "9", _run)


def installed(monkeypatch: pytest.MonkeyPatch, *values: str) -> None:
    """Pretend the entry point group lists `values` (objects in this module)."""
    entries = [
        EntryPoint(name=f"entry-{i}", value=f"{__name__}:{value}", group=ENTRY_POINT_GROUP)
        for i, value in enumerate(values)
    ]
    monkeypatch.setattr(registry_module, "entry_points", lambda group: entries)


def test_builtin_pipelines_are_registered() -> None:
    pipelines = {p.name: p for p in load_registry()}
    # `convert` ships through the entry point group, as other packages' pipelines do.
    assert sorted(pipelines) == ["convert", "manifest", "noop", "wait"]
    assert pipelines["convert"].outputs == ("NIFTI",)
    assert pipelines["wait"].max_attempts == 2
    assert pipelines["manifest"].outputs == ("MANIFEST",)
    assert all(p.idempotent for p in pipelines.values())


def test_unknown_pipeline_is_not_found_and_the_known_ones_are_listed() -> None:
    with pytest.raises(
        NotFound, match=r"no pipeline 'nope'; known pipelines: convert, manifest, noop, wait"
    ):
        load_registry().get("nope")


def test_empty_registry_says_it_knows_none() -> None:
    with pytest.raises(NotFound, match="known pipelines: none"):
        PipelineRegistry().get("noop")


def test_two_pipelines_with_one_name_are_refused() -> None:
    registry = PipelineRegistry()
    registry.register(Pipeline("x", "1", _run))
    with pytest.raises(Invalid, match="two pipelines are called 'x'"):
        registry.register(Pipeline("x", "2", _run))
    assert registry.get("x").version == "1"


class TestCheck:
    def test_defaults_fill_in_missing_parameters(self) -> None:
        wait = load_registry().get("wait")
        assert wait.check(PROJECT, {"seconds": "2.5"}) == {
            "seconds": 2.5,
            "steps": 10,
            "fail": False,
        }

    def test_pipeline_without_parameters_stores_none(self) -> None:
        assert load_registry().get("noop").check(PROJECT, {}) == {}

    @pytest.mark.parametrize(
        ("params", "named"),
        [
            ({"seconds": -1}, "seconds"),
            ({"seconds": "soon"}, "seconds"),
            ({"seconds": 7200}, "seconds"),
            ({"steps": 0}, "steps"),
            ({"fail": "perhaps"}, "fail"),
            ({"secs": 5}, "secs"),
        ],
        ids=["negative", "not-a-number", "too-long", "no-steps", "not-a-bool", "unknown-name"],
    )
    def test_invalid_parameter_is_named(self, params: dict[str, object], named: str) -> None:
        with pytest.raises(Invalid, match=rf"invalid parameters for pipeline 'wait': {named}: "):
            load_registry().get("wait").check(PROJECT, params)

    def test_unknown_parameter_of_a_pipeline_without_any_is_refused(self) -> None:
        with pytest.raises(Invalid, match="pipeline 'noop': seconds: "):
            load_registry().get("noop").check(PROJECT, {"seconds": 1})

    def test_pipeline_refuses_a_level_it_does_not_run_on(self) -> None:
        pipeline = Pipeline("per-session", "1", _run, levels=frozenset({Level.SESSION}))
        assert pipeline.check(SESSION, {}) == {}
        with pytest.raises(Invalid, match="'per-session' runs on a session, not on a project"):
            pipeline.check(PROJECT, {})

    def test_custom_parameter_model_is_used(self) -> None:
        class Threshold(BaseModel):
            level: int

        pipeline = Pipeline("threshold", "1", _run, params=Threshold)
        assert pipeline.check(PROJECT, {"level": "3"}) == {"level": 3}
        with pytest.raises(Invalid, match="threshold': level: Field required"):
            pipeline.check(PROJECT, {})


class TestEntryPoints:
    def test_installed_pipelines_are_found_beside_the_builtins(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        installed(monkeypatch, "EXTRA", "EXTRA_LIST")
        names = [p.name for p in load_registry()]
        assert names == ["extra", "extra-a", "extra-b", "manifest", "noop", "wait"]
        assert load_registry().get("extra").version == "2"

    def test_entry_point_naming_something_else_is_refused(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        installed(monkeypatch, "NOT_A_PIPELINE")
        with pytest.raises(
            Invalid, match="entry point 'entry-0' does not name a neurodepot Pipeline"
        ):
            load_registry()

    def test_installed_pipeline_may_not_replace_a_builtin(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        installed(monkeypatch, "CLASHING")
        with pytest.raises(Invalid, match="two pipelines are called 'noop'"):
            load_registry()
