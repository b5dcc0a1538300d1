"""Importing a centre's consent spreadsheet (CSV): every line checked, then all of it or nothing.

The file is read as a stream of lines, so its size and row count are bounded before anything is
held: at most `MAX_BYTES` of UTF-8 (a byte order mark is allowed, as spreadsheets write one) and
`MAX_ROWS` data rows. The header names the columns (`COLUMNS`, any case and order; `subject` and
`level` are required); `,` or `;` separates values (spreadsheets in many European locales write
`;`), whichever the header uses. Line numbers in errors are those of the file, the header being
line 1, so a person can find each one in their spreadsheet.

Nothing is written until every line checks out. A subject may appear on several lines: its
records are added in the file's order, and the last one is its current consent. A line with
`withdrawn_on` records the consent it gives, then its withdrawal. The records are inserted in
bulk, in the file's order, and the import is audited as one event (`consent_imported`, with
counts only): each record names who recorded it and when, and stays in its subject's history.
"""

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import BinaryIO, TextIO

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from neurodepot.access import audit
from neurodepot.catalog.hierarchy import find_project
from neurodepot.catalog.identifiers import check_label
from neurodepot.catalog.models import Subject
from neurodepot.consent.models import CONSENT_LEVELS, ConsentRecord
from neurodepot.consent.records import (
    WITHDRAWN,
    check_text,
    parse_date,
)
from neurodepot.errors import Conflict, Invalid, NeurodepotError

MAX_BYTES = 10 * 1024 * 1024
MAX_ROWS = 100_000
# How many bad lines an error names; the count of the others is given.
MAX_ERRORS = 20
REQUIRED = ("subject", "level")
COLUMNS = (*REQUIRED, "form", "form_version", "given_on", "restrictions", "withdrawn_on")
BOM = "\ufeff"

Source = bytes | BinaryIO | TextIO


@dataclass(frozen=True)
class ImportSummary:
    """What an import recorded: `records` consent records, of which `withdrawals` withdraw."""

    project: str
    rows: int
    records: int
    withdrawals: int
    subjects: int
    created_subjects: tuple[str, ...]


@dataclass(frozen=True)
class _Row:
    subject: str
    level: str
    form: str
    form_version: str
    given_on: date | None
    restrictions: str
    withdrawn_on: date | None


def import_consent_csv(
    db: Session, actor: str, project: str, source: Source, create_subjects: bool = False
) -> ImportSummary:
    """Check every line of `source`, then record them all in the caller's transaction.

    Raises `Invalid` naming every bad line (up to `MAX_ERRORS`) and stores nothing when any
    line is wrong; an unknown subject is wrong unless `create_subjects`, which creates it.
    """
    owner = find_project(db, project)
    known = set(db.scalars(select(Subject.label).where(Subject.project_id == owner.id)))
    rows, errors = _read(_lines(source), known, create_subjects)
    if errors:
        shown = "; ".join(errors[:MAX_ERRORS])
        more = f" (and {len(errors) - MAX_ERRORS} more)" if len(errors) > MAX_ERRORS else ""
        raise Invalid(
            f"consent CSV not imported, nothing was recorded: {len(errors)} line(s) to fix: "
            f"{shown}{more}"
        )
    if not rows:
        raise Invalid("the consent CSV has a header but no rows: nothing to import")
    created = sorted({r.subject for r in rows} - known)
    if created:
        try:
            with db.begin_nested():
                db.execute(insert(Subject), [{"project_id": owner.id, "label": c} for c in created])
        except IntegrityError:
            raise Conflict(
                f"another writer added subjects to {project!r} meanwhile: import again"
            ) from None
    subjects = select(Subject.label, Subject.id).where(Subject.project_id == owner.id)
    ids = {label: subject_id for label, subject_id in db.execute(subjects)}
    records = [r for row in rows for r in _records(row, ids[row.subject], owner.id, actor)]
    # Inserted in the file's order: ids rise with it, so a subject's last line is current.
    db.execute(insert(ConsentRecord), records)
    withdrawals = sum(1 for row in rows if row.withdrawn_on is not None)
    summary = ImportSummary(
        project=project,
        rows=len(rows),
        records=len(records),
        withdrawals=withdrawals,
        subjects=len({r.subject for r in rows}),
        created_subjects=tuple(created),
    )
    levels = {level: sum(1 for r in rows if r.level == level) for level in CONSENT_LEVELS}
    audit.record(
        db, actor, "consent_imported", project,
        {"rows": summary.rows, "withdrawals": withdrawals, "created_subjects": len(created),
         "levels": levels},
    )  # fmt: skip
    return summary


def _records(row: _Row, subject_id: int, project_id: int, actor: str) -> list[dict[str, object]]:
    """The consent record of `row`, and its withdrawal if it has one (as `withdraw_consent`)."""
    given = {
        "subject_id": subject_id,
        "project_id": project_id,
        "level": row.level,
        "form": row.form,
        "form_version": row.form_version,
        "given_on": row.given_on,
        "restrictions": row.restrictions,
        "withdrawn_on": None,
        "recorded_by": actor,
    }
    if row.withdrawn_on is None:
        return [given]
    return [given, {**given, "restrictions": "", "withdrawn_on": row.withdrawn_on}]


def _lines(source: Source) -> Iterator[str]:
    """The text lines of `source`, line ends kept; refuses more than `MAX_BYTES` or bad UTF-8."""
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    size = 0
    number = 0
    while True:
        raw = source.readline(MAX_BYTES + 1 - size)
        if not raw:
            return
        number += 1
        if isinstance(raw, str):
            size += len(raw.encode("utf-8", "surrogatepass"))
            line = raw
        else:
            size += len(raw)
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise Invalid(
                    f"line {number}: not UTF-8 text: save the spreadsheet as CSV UTF-8 "
                    "(nothing was imported)"
                ) from None
        if size > MAX_BYTES:
            raise Invalid(
                f"the consent CSV is over {MAX_BYTES // (1024 * 1024)} MB: split it into "
                "smaller files, nothing was imported"
            )
        yield line.removeprefix(BOM) if number == 1 else line


def _header(first: str) -> tuple[str, list[str]]:
    """The delimiter and the normalised column names of the header line; raises if unusable."""
    delimiter = ";" if first.count(";") > first.count(",") else ","
    names = next(csv.reader([first], delimiter=delimiter), [])
    columns = [n.strip().lower().replace(" ", "_").replace("-", "_") for n in names]
    unknown = [n for n in columns if n not in COLUMNS]
    missing = [n for n in REQUIRED if n not in columns]
    twice = sorted({n for n in columns if columns.count(n) > 1})
    problems = []
    if unknown:
        problems.append("unknown column(s) " + ", ".join(repr(n[:40]) for n in unknown[:10]))
    if missing:
        problems.append("no column " + " or ".join(repr(n) for n in missing))
    if twice:
        problems.append("column(s) given twice: " + ", ".join(twice))
    if problems:
        raise Invalid(
            f"line 1 (the header): {'; '.join(problems)}; the columns are "
            f"{', '.join(COLUMNS)} (subject and level required): nothing was imported"
        )
    return delimiter, columns


def _read(
    lines: Iterator[str], known: set[str], create_subjects: bool
) -> tuple[list[_Row], list[str]]:
    first = next(lines, None)
    if first is None or not first.strip():
        raise Invalid(
            f"the consent CSV is empty: its first line must name the columns ({', '.join(COLUMNS)})"
        )
    delimiter, columns = _header(first)
    reader = csv.reader(lines, delimiter=delimiter)
    rows: list[_Row] = []
    errors: list[str] = []
    start = 2
    while True:
        try:
            values = next(reader, None)
        except csv.Error as exc:
            errors.append(f"line {start}: cannot be read as CSV ({exc})")
            break
        if values is None:
            break
        line, start = start, reader.line_num + 2  # the header line was read apart
        if not any(v.strip() for v in values):
            continue
        if len(rows) + len(errors) >= MAX_ROWS:
            raise Invalid(
                f"the consent CSV has more than {MAX_ROWS} rows: split it, nothing was imported"
            )
        if len(values) != len(columns):
            errors.append(
                f"line {line}: {len(values)} value(s), but the header names {len(columns)}"
            )
            continue
        try:
            rows.append(_row(dict(zip(columns, values, strict=True)), known, create_subjects))
        except NeurodepotError as exc:
            errors.append(f"line {line}: {exc.message}")
    return rows, errors


def _row(values: dict[str, str], known: set[str], create_subjects: bool) -> _Row:
    """One data line, checked; raises `Invalid` with what is wrong in it (first problem)."""
    subject = values["subject"].strip()
    if not subject:
        raise Invalid("no subject")
    if subject not in known:
        if not create_subjects:
            raise Invalid(
                f"no subject {subject[:64]!r} in the project: create it first, or import with "
                "--create-subjects (create_subjects=true over the API)"
            )
        check_label(subject, "subject")
    level = values["level"].strip().lower()
    if level == WITHDRAWN:
        raise Invalid(
            "'withdrawn' is not a consent level: give the level that was consented to and the "
            "withdrawal date in withdrawn_on"
        )
    if level not in CONSENT_LEVELS:
        shown = f"level {level[:40]!r}" if level else "no level"
        raise Invalid(f"{shown}: give one of {', '.join(CONSENT_LEVELS)}")
    text = {k: values.get(k, "").strip() for k in ("form", "form_version", "restrictions")}
    check_text(**text)
    given_on = _day(values, "given_on")
    withdrawn_on = _day(values, "withdrawn_on")
    if given_on and withdrawn_on and withdrawn_on < given_on:
        raise Invalid(f"withdrawn_on {withdrawn_on} is before given_on {given_on}")
    return _Row(subject, level, given_on=given_on, withdrawn_on=withdrawn_on, **text)


def _day(values: dict[str, str], column: str) -> date | None:
    value = values.get(column, "").strip()
    return parse_date(value, column) if value else None
