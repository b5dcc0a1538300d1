"""Retention dates and their report; the record of processing as JSON and Markdown."""

from datetime import date

import pytest
from sqlalchemy import select, update

from neurodepot.access import accounts
from neurodepot.access.models import AuditEvent
from neurodepot.catalog.hierarchy import (
    create_project,
    create_scan,
    create_session,
    create_subject,
)
from neurodepot.catalog.models import Project
from neurodepot.catalog.resources import add_file
from neurodepot.catalog.target import Target
from neurodepot.consent import dua
from neurodepot.consent.processing import (
    MAX_CATEGORIES,
    get_processing,
    processing_markdown,
    processing_summary,
    set_processing,
)
from neurodepot.consent.records import set_consent, withdraw_consent
from neurodepot.consent.retention import parse_day, retention_report, set_retention
from neurodepot.depot.folder import Depot
from neurodepot.errors import Invalid, NotFound

DAY = date(2031, 6, 30)


@pytest.fixture
def study(depot: Depot) -> Depot:
    """Project P: subjects with each consent level, an MR and an EEG session, files at levels."""
    with depot.transaction() as db:
        create_project(db, "P", "Memory study")
        create_project(db, "Q")
        create_project(db, "R")
        for label in ("a", "b", "c", "d", "e"):
            create_subject(db, "P", label)
        set_consent(db, "rec", "P", "a", "internal")
        set_consent(db, "rec", "P", "b", "open")
        set_consent(db, "rec", "P", "c", "open")
        set_consent(db, "rec", "P", "d", "open")
        withdraw_consent(db, "rec", "P", "d")
        create_session(db, "P", "a", "mr1", modality="MR")
        create_scan(db, "P", "a", "mr1", "1", modality="MR")
        create_session(db, "P", "b", "eeg1", modality="EEG")
        create_subject(db, "Q", "q1")
        for name, role in (
            ("olly", "owner"),
            ("mia", "member"),
            ("max", "member"),
            ("cole", "collaborator"),
        ):
            accounts.add_user(db, "test", name, f"{name}@example.org")
            accounts.set_project_role(db, "test", name, "P", role)
    add_file(depot, Target("P"), "docs", "protocol.pdf", [b"12345"])
    add_file(depot, Target("P", "a"), "beh", "x.csv", [b"123"])
    add_file(depot, Target("P", "a", "mr1"), "notes", "n.txt", [b"1234567"])
    add_file(depot, Target("P", "a", "mr1", "1"), "NIFTI", "t1.nii.gz", [b"12"])
    add_file(depot, Target("Q", "q1"), "beh", "x.csv", [b"123"])
    return depot


class TestRetention:
    def test_report_lists_projects_past_their_date_with_what_they_hold(self, study: Depot) -> None:
        with study.transaction() as db:
            set_retention(db, "cli:dpo", "P", date(2031, 1, 1))
            set_retention(db, "cli:dpo", "Q", DAY)  # the last day: not past yet
        with study.reading() as db:
            report = retention_report(db, DAY)
        assert report.on == DAY
        (entry,) = report.past
        assert (entry.project, entry.retention_until) == ("P", date(2031, 1, 1))
        assert (entry.days_past, entry.subjects, entry.files, entry.bytes) == (180, 5, 4, 17)
        assert report.without_date == ["R"]
        with study.reading() as db:
            later = retention_report(db, date(2031, 7, 1))
        assert [(e.project, e.days_past, e.subjects, e.files) for e in later.past] == [
            ("P", 181, 5, 4), ("Q", 1, 1, 1),
        ]  # fmt: skip

    def test_report_defaults_to_today(self, study: Depot) -> None:
        with study.transaction() as db:
            set_retention(db, "cli:dpo", "P", date(2000, 1, 1))
            set_retention(db, "cli:dpo", "Q", date(2999, 1, 1))
        with study.reading() as db:
            report = retention_report(db)
        assert report.on == date.today() and [e.project for e in report.past] == ["P"]

    def test_setting_and_clearing_is_audited(self, study: Depot) -> None:
        with study.transaction() as db:
            assert set_retention(db, "cli:dpo", "P", DAY).retention_until == DAY
            assert get_processing(db, "P").retention_until == DAY
            assert set_retention(db, "cli:dpo", "P", None).retention_until is None
        with study.reading() as db:
            events = db.scalars(select(AuditEvent).where(AuditEvent.action == "retention_set"))
            assert [(e.target, e.detail) for e in events] == [
                ("P", {"until": "2031-06-30"}), ("P", {"until": None}),
            ]  # fmt: skip

    def test_unknown_project_is_not_found(self, study: Depot) -> None:
        with study.transaction() as db, pytest.raises(NotFound, match="project 'Nope'"):
            set_retention(db, "cli:dpo", "Nope", DAY)

    @pytest.mark.parametrize(
        "text", ["2031-13-01", "2031-02-30", "tomorrow", "2031-1-1", "", "1e9"]
    )
    def test_malformed_days_are_refused(self, text: str) -> None:
        with pytest.raises(Invalid, match="YYYY-MM-DD"):
            parse_day(text, "retention date")

    def test_a_future_day_is_a_fine_retention_date(self) -> None:
        assert parse_day(" 2999-12-31 ") == date(2999, 12, 31)


class TestProcessing:
    def test_given_fields_are_stored_and_only_field_names_are_audited(self, study: Depot) -> None:
        with study.transaction() as db:
            set_processing(
                db, "cli:dpo", "P", purpose="Memory research", lawful_basis="GDPR 6(1)(e)",
                data_categories=["MRI", " health data ", "mri", "Health Data"],
                controller="Centre for Brains",
            )  # fmt: skip
            info = set_processing(db, "cli:dpo", "P", controller="Brain Centre")
        assert (info.purpose, info.lawful_basis) == ("Memory research", "GDPR 6(1)(e)")
        assert info.data_categories == ["MRI", "health data"]
        assert (info.controller, info.updated_by) == ("Brain Centre", "cli:dpo")
        with study.reading() as db:
            details = [
                e.detail
                for e in db.scalars(
                    select(AuditEvent).where(AuditEvent.action == "processing_changed")
                )
            ]
        assert details == [
            {"fields": ["controller", "data_categories", "lawful_basis", "purpose"]},
            {"fields": ["controller"]},
        ]

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            ({"purpose": "x" * 4001}, "purpose is 4001 characters"),
            ({"controller": "Brain\nCentre"}, "line breaks or control characters"),
            ({"lawful_basis": "basis\x00"}, "control characters"),
            ({"data_categories": [""]}, "a data category is empty"),
            ({"data_categories": ["x"] * (MAX_CATEGORIES + 1)}, "at most 50"),
            ({"data_categories": ["a" * 65]}, "category is 65 characters"),
        ],
    )
    def test_bad_values_are_refused_and_change_nothing(
        self, study: Depot, change: dict[str, object], message: str
    ) -> None:
        with study.transaction() as db:
            set_processing(db, "cli:dpo", "P", purpose="kept")
        with study.transaction() as db, pytest.raises(Invalid, match=message):
            set_processing(db, "cli:dpo", "P", **change)  # type: ignore[arg-type]
        with study.reading() as db:
            assert get_processing(db, "P").purpose == "kept"

    def test_summary_derives_categories_and_counts_subjects_by_consent(self, study: Depot) -> None:
        with study.transaction() as db:
            set_processing(db, "cli:dpo", "P", data_categories=["MRI", "health data"])
            create_session(db, "P", "c", "odd", modality="XYZ")
            summary = processing_summary(db, "P")
        categories = summary["data_categories"]
        assert categories["given"] == ["MRI", "health data"]
        assert categories["derived"] == ["EEG", "MRI", "other (XYZ)"]
        assert categories["all"] == ["MRI", "health data", "EEG", "other (XYZ)"]
        assert summary["modalities"] == ["EEG", "MR", "XYZ"]
        assert summary["subjects"] == {
            "total": 5, "by_consent": {"none": 1, "internal": 1, "open": 2, "withdrawn": 1},
        }  # fmt: skip

    def test_recipients_follow_the_sharing_level(self, study: Depot) -> None:
        def recipients(access: str) -> list[dict[str, object]]:
            with study.transaction() as db:
                db.execute(update(Project).where(Project.label == "P").values(access=access))
                return processing_summary(db, "P")["recipients"]

        (team,) = recipients("private")
        assert team["recipient"] == "named team" and team["people"] == 4
        assert team["by_role"] == {"owner": 1, "member": 2, "collaborator": 1}
        assert team["subjects"] == 5
        _, centre = recipients("internal")
        assert (centre["recipient"], centre["subjects"]) == ("centre members", 3)
        assert centre["consent_levels"] == ["internal", "open"]
        _, centre, external = recipients("public")
        assert (external["recipient"], external["subjects"]) == ("external researchers", 2)
        assert "none published yet" in external["receives"]
        with study.transaction() as db:
            dua.publish(db, "admin", "Site terms", "Be nice.")
        _, _, external = recipients("public")
        assert "'Site terms' version 1" in external["receives"]

    def test_retention_in_the_summary_says_whether_it_is_past(self, study: Depot) -> None:
        with study.transaction() as db:
            set_retention(db, "cli:dpo", "P", date(2031, 1, 1))
            assert processing_summary(db, "P", on=DAY)["retention"] == {
                "until": "2031-01-01", "past": True,
            }  # fmt: skip
            assert not processing_summary(db, "P", on=date(2030, 1, 1))["retention"]["past"]

    def test_an_empty_record_reads_as_not_given(self, study: Depot) -> None:
        with study.reading() as db:
            summary = processing_summary(db, "R")
            info = get_processing(db, "R")
        assert (info.purpose, info.data_categories, info.updated_at) == ("", [], None)
        text = processing_markdown(summary)
        assert "*not given*" in text and "*none given, and no sessions held*" in text

    def test_markdown_holds_every_part_and_escapes_given_text(self, study: Depot) -> None:
        hostile = "<script>alert(1)</script> [click](http://evil) | *bold*\n# Fake heading"
        with study.transaction() as db:
            set_processing(
                db, "cli:dpo", "P", purpose=hostile, lawful_basis="GDPR 6(1)(e)",
                data_categories=["health data"], controller="Brain <Centre>",
            )  # fmt: skip
            set_retention(db, "cli:dpo", "P", date(2031, 1, 1))
            text = processing_markdown(processing_summary(db, "P", on=DAY))
        assert text.startswith("# Record of processing: P\n")
        parts = ("## Purpose", "## Lawful basis", "## Data categories", "## Recipients",
                 "## Subjects by consent", "| withdrawn | 1 |", "(**past**)")  # fmt: skip
        assert all(part in text for part in parts)
        assert "- Retention until: 2031-01-01 (**past**)" in text
        assert "<script>" not in text and "\\<script\\>" in text
        assert "[click](" not in text and "Brain \\<Centre\\>" in text
        assert "\n# Fake" not in text and "\\# Fake heading" in text
        assert "- EEG (held in the project's sessions)" in text and "- health data\n" in text
        assert "| named team |" in text
