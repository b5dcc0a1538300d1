"""`PROJECT[/SUBJECT[/SESSION[/SCAN]]]`: how CLI and API name a place in the hierarchy."""

from dataclasses import dataclass
from enum import StrEnum

from neurodepot.catalog.identifiers import check_label
from neurodepot.errors import Invalid


class Level(StrEnum):
    PROJECT = "project"
    SUBJECT = "subject"
    SESSION = "session"
    SCAN = "scan"


@dataclass(frozen=True)
class Target:
    """A validated path to a project, subject, session or scan (labels, not database IDs)."""

    project: str
    subject: str | None = None
    session: str | None = None
    scan: str | None = None

    def __post_init__(self) -> None:
        check_label(self.project, "project")
        parts = (self.subject, self.session, self.scan)
        for part, level in zip(parts, ("subject", "session", "scan"), strict=True):
            if part is not None:
                check_label(part, level)
        seen_gap = False
        for part in parts:
            if part is None:
                seen_gap = True
            elif seen_gap:
                raise Invalid(f"target {self} skips a level of the hierarchy")

    @classmethod
    def parse(cls, text: str) -> "Target":
        parts = text.strip("/").split("/")
        if not text.strip("/") or len(parts) > 4:
            raise Invalid(f"target {text!r} is not PROJECT[/SUBJECT[/SESSION[/SCAN]]]")
        return cls(*parts)  # type: ignore[arg-type]

    @property
    def level(self) -> Level:
        if self.scan is not None:
            return Level.SCAN
        if self.session is not None:
            return Level.SESSION
        if self.subject is not None:
            return Level.SUBJECT
        return Level.PROJECT

    def __str__(self) -> str:
        parts = (self.project, self.subject, self.session, self.scan)
        return "/".join(part for part in parts if part is not None)
