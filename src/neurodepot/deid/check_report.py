"""The checker's findings as values, and the two reports written from them (JSON and Markdown).

Evidence names a file, a place in it and the kind of value found there, never the value: the
reports are read by stewards and may travel further than the data's linkage, so they must not
become a list of the identifiers they protect. The checker redacts identifying text from the
file names and locations it puts in evidence before it gets here.
"""

import json
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from neurodepot import __version__
from neurodepot.errors import Invalid

PASS = "pass"
FAIL = "fail"
OVERRIDDEN = "overridden"
EVIDENCE_CAP = 100


class Criterion(StrEnum):
    """The de-identification criteria of DESIGN.md, by their ids."""

    HEADERS = "DEID-HEADERS"
    DATES = "DEID-DATES"
    FACE = "DEID-FACE"
    LINKAGE = "DEID-LINKAGE"
    BURNEDIN = "DEID-BURNEDIN"
    CONSENT = "DEID-CONSENT"


DESCRIPTIONS = {
    Criterion.HEADERS: "no DICOM attribute the basic profile removes or blanks keeps a value; "
    "no private tag unless allow-listed; UIDs remapped",
    Criterion.DATES: "dates removed or shifted per subject",
    Criterion.FACE: "every anatomical image defaced, and the defacing verified",
    Criterion.LINKAGE: "no internal identifier in any path, file name, DICOM value, JSON/TSV "
    "value or EEG/MEG header",
    Criterion.BURNEDIN: "no image flagged with burned-in annotation, nor secondary capture, "
    "unless a steward cleared it",
    Criterion.CONSENT: "every subject included has current open consent",
}


@dataclass(frozen=True)
class Evidence:
    """Where a criterion failed, and the kind of value found there.

    `location` is a DICOM tag path such as "(0008,1110)[0].(0008,1155)", a JSON pointer,
    "row 3, column age", an EDF field, "file name".
    """

    file: str
    location: str
    kind: str


@dataclass(frozen=True)
class CriterionResult:
    """One criterion's verdict. `evidence` holds the first findings; `omitted` counts the rest."""

    criterion: Criterion
    status: str
    evidence: tuple[Evidence, ...]
    summary: str
    override_reason: str | None = None
    omitted: int = 0

    @property
    def count(self) -> int:
        """How many findings there were in all, listed or not."""
        return len(self.evidence) + self.omitted


@dataclass(frozen=True)
class CheckReport:
    """The verdict on one dataset; `root` is shown with identifying text redacted."""

    root: str
    results: tuple[CriterionResult, ...]
    files: int
    checked_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def passed(self) -> bool:
        """True when every criterion passed or a steward overrode its failure."""
        return all(r.status in (PASS, OVERRIDDEN) for r in self.results)

    def result(self, criterion: Criterion) -> CriterionResult:
        return next(r for r in self.results if r.criterion == criterion)


class Findings:
    """Evidence as the checker finds it, kept within bounds and free of identifying text.

    Each finding counts once per file; the first `cap` are listed per criterion and the rest
    counted; file names and locations pass through `redact` before they are kept.
    """

    def __init__(self, redact: Callable[[str], str], cap: int = EVIDENCE_CAP) -> None:
        self.redact, self.cap = redact, cap
        self._listed: dict[Criterion, list[Evidence]] = {c: [] for c in Criterion}
        self._omitted: Counter[Criterion] = Counter()
        self._files: dict[Criterion, set[str]] = {c: set() for c in Criterion}
        self._seen: set[tuple[Criterion, str, str, str]] = set()

    def next_file(self) -> None:
        """Forget which findings were seen (a finding names its file, so none can repeat)."""
        self._seen.clear()

    def add(self, criterion: Criterion, file: str, location: str, kind: str) -> None:
        key = (criterion, file, location, kind)
        if key in self._seen:
            return
        self._seen.add(key)
        self._files[criterion].add(file)
        listed = self._listed[criterion]
        if len(listed) < self.cap:
            listed.append(Evidence(self.redact(file), self.redact(location), kind))
        else:
            self._omitted[criterion] += 1

    def count(self, criterion: Criterion) -> int:
        return len(self._listed[criterion]) + self._omitted[criterion]

    def files(self, criterion: Criterion) -> int:
        return len(self._files[criterion])

    def listed(self, criterion: Criterion) -> tuple[tuple[Evidence, ...], int]:
        return tuple(self._listed[criterion]), self._omitted[criterion]


def report_json(report: CheckReport) -> dict[str, object]:
    """The JSON report as a plain structure (also what `--json` output can reuse)."""
    return {
        "root": report.root,
        "passed": report.passed,
        "files": report.files,
        "checked_at": report.checked_at.isoformat(),
        "neurodepot_version": __version__,
        "criteria": [
            {
                "id": r.criterion.value,
                "description": DESCRIPTIONS[r.criterion],
                "status": r.status,
                "summary": r.summary,
                "override_reason": r.override_reason,
                "count": r.count,
                "listed": len(r.evidence),
                "evidence": [
                    {"file": e.file, "location": e.location, "kind": e.kind} for e in r.evidence
                ],
            }
            for r in report.results
        ],
    }


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("`", "'")


def report_markdown(report: CheckReport) -> str:
    verdict = "PASSED" if report.passed else "FAILED"
    lines = [
        "# De-identification check",
        "",
        f"- Dataset: `{_cell(report.root)}`",
        f"- Files checked: {report.files}",
        f"- Checked at: {report.checked_at.isoformat()} (neurodepot {__version__})",
        f"- Verdict: **{verdict}**",
        "",
        "| criterion | status | findings | summary |",
        "|---|---|---|---|",
    ]
    for r in report.results:
        status = r.status.upper() if r.status == FAIL else r.status
        lines.append(f"| {r.criterion.value} | {status} | {r.count} | {_cell(r.summary)} |")
    for r in report.results:
        lines += ["", f"## {r.criterion.value}: {r.status}", "", DESCRIPTIONS[r.criterion], ""]
        lines.append(_cell(r.summary))
        if r.override_reason is not None:
            lines += ["", f"Overridden by a steward: {_cell(r.override_reason)}"]
        if r.evidence:
            lines += ["", "| file | location | kind |", "|---|---|---|"]
            lines += [
                f"| {_cell(e.file)} | {_cell(e.location)} | {_cell(e.kind)} |" for e in r.evidence
            ]
            if r.omitted:
                lines += ["", f"… and {r.omitted} more finding(s) not listed."]
    return "\n".join(lines) + "\n"


def _write_atomic(path: Path, chunks: Iterable[str]) -> None:
    """Write beside `path` and rename into place, so a reader never sees half a report."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            for chunk in chunks:
                handle.write(chunk)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_reports(report: CheckReport, json_path: Path, markdown_path: Path) -> None:
    """Write the JSON and the Markdown report, each atomically; `Invalid` if a folder is missing."""
    for path in (json_path, markdown_path):
        if not path.parent.is_dir():
            raise Invalid(f"cannot write the report {path}: folder {path.parent} does not exist")
    _write_atomic(json_path, [json.dumps(report_json(report), indent=2, ensure_ascii=False), "\n"])
    _write_atomic(markdown_path, [report_markdown(report)])
