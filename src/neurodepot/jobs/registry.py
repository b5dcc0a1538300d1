"""Pipelines: named, versioned callables with declared targets, parameters and outputs.

Built-in pipelines and those of other packages (entry point group `neurodepot.pipelines`, each
entry naming a `Pipeline` or a list of them) are found the same way, in every process that runs
jobs, so a worker on another host knows exactly what the server knows.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, ValidationError

from neurodepot.catalog.target import Level, Target
from neurodepot.errors import Invalid, NotFound

if TYPE_CHECKING:
    from neurodepot.jobs.context import JobContext

ENTRY_POINT_GROUP = "neurodepot.pipelines"


class NoParams(BaseModel):
    """For pipelines that take no parameters (any given is refused, not silently dropped)."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Pipeline:
    """What a pipeline is and how it may be run.

    `run` receives a `JobContext`; it reports progress, checks for cancellation and writes its
    outputs through it. `max_attempts` counts the first run: a job whose worker dies (or that
    raises) is re-queued until it has been tried that often; `idempotent` pipelines are
    re-queued after a server crash, the others are failed with the reason. A `params` model
    should forbid extra fields, so that a misspelt parameter is refused rather than ignored.
    """

    name: str
    version: str
    run: "Callable[[JobContext], None]"
    levels: frozenset[Level] = frozenset(Level)
    params: type[BaseModel] = NoParams
    outputs: tuple[str, ...] = ()
    max_attempts: int = 1
    idempotent: bool = True
    after: tuple[str, ...] = ()
    description: str = ""

    def check(self, target: Target, params: dict[str, Any]) -> dict[str, Any]:
        """Validate a request; return the parameters as they will be stored."""
        if target.level not in self.levels:
            allowed = ", ".join(sorted(level.value for level in self.levels))
            raise Invalid(f"pipeline {self.name!r} runs on a {allowed}, not on a {target.level}")
        try:
            return self.params.model_validate(params).model_dump(mode="json")
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'params'}: {e['msg']}"
                for e in exc.errors()
            )
            raise Invalid(f"invalid parameters for pipeline {self.name!r}: {problems}") from None


@dataclass
class PipelineRegistry:
    pipelines: dict[str, Pipeline] = field(default_factory=dict)

    def register(self, pipeline: Pipeline) -> None:
        if pipeline.name in self.pipelines:
            raise Invalid(f"two pipelines are called {pipeline.name!r}")
        self.pipelines[pipeline.name] = pipeline

    def get(self, name: str) -> Pipeline:
        try:
            return self.pipelines[name]
        except KeyError:
            known = ", ".join(sorted(self.pipelines)) or "none"
            raise NotFound(f"there is no pipeline {name!r}; known pipelines: {known}") from None

    def __iter__(self) -> Iterable[Pipeline]:  # type: ignore[override]
        return iter(sorted(self.pipelines.values(), key=lambda p: p.name))


def load_registry() -> PipelineRegistry:
    """The built-in pipelines plus every one installed under the entry point group."""
    from neurodepot.jobs import builtin

    registry = PipelineRegistry()
    for pipeline in builtin.PIPELINES:
        registry.register(pipeline)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        loaded = entry.load()
        for pipeline in loaded if isinstance(loaded, list | tuple) else [loaded]:
            if not isinstance(pipeline, Pipeline):
                raise Invalid(f"entry point {entry.name!r} does not name a neurodepot Pipeline")
            registry.register(pipeline)
    return registry
