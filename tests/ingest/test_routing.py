"""Routing: checking `[[dicom.routes]]`, and where a study goes (pure functions, no depot)."""

import re
from collections.abc import Mapping
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurodepot.catalog.identifiers import check_label
from neurodepot.errors import Invalid
from neurodepot.ingest.header import ROUTING_FIELDS
from neurodepot.ingest.routing import (
    XNAT_RULE,
    Destination,
    Route,
    compile_routes,
    derived_session,
    route,
    sanitize_label,
)

STUDY_UID = "1.2.840.113619.6.408.28831229784644470934771902094312156645"
SCANNED = date(2018, 9, 18)
UNASSIGNED = Destination(None, None, None, "")
LABEL = re.compile(r"[A-Za-z0-9_-]{0,64}")


def fields(**given_fields: str) -> dict[str, str]:
    """Routing fields as the header gives them: every field present, empty unless given."""
    return {name: given_fields.get(name, "") for name in ROUTING_FIELDS}


def where(
    routes: tuple[Route, ...],
    called_aet: str = "NEURODEPOT",
    patient_id: str = "DEV",
    patient_name: str = "Test^Regression",
    study_date: date | None = SCANNED,
    **given_fields: str,
) -> Destination:
    return route(
        routes, called_aet, fields(**given_fields), patient_id, patient_name, study_date, STUDY_UID
    )


class TestCompileRoutes:
    def test_a_valid_table_compiles_in_order(self) -> None:
        routes = compile_routes(
            [
                {"name": "research", "called_aet": " RESEARCH ", "project": "R"},
                {"match": {"StudyDescription": r"^(?P<project>\w+)\^"}, "subject": "S"},
            ]
        )
        assert [r.name for r in routes] == ["research", "route 2"]
        assert routes[0].called_aet == "RESEARCH"
        assert routes[1].labels == {"subject": "S"}
        assert [name for name, _ in routes[1].patterns] == ["StudyDescription"]

    @pytest.mark.parametrize(
        ("table", "fragments"),
        [
            pytest.param(
                {"name": "r", "match": {"StudyDescription": "(unclosed"}, "project": "P"},
                ["'r'", "bad regular expression for StudyDescription"],
                id="bad-regex",
            ),
            pytest.param(
                {"match": {"PatientID": "DEV"}, "project": "P"},
                ["'route 1'", "cannot match on 'PatientID'", "StudyComments"],
                id="unknown-field",
            ),
            pytest.param(
                {"called_aet": "X", "projet": "P"},
                ["unknown key(s) projet"],
                id="unknown-key",
            ),
            pytest.param(
                {"called_aet": "X", "subject": "S"},
                ["name a project", "(?P<project>"],
                id="missing-project",
            ),
            pytest.param(
                {"match": {"StudyDescription": "(?P<subject>.+)"}},
                ["name a project"],
                id="pattern-without-project-group",
            ),
            pytest.param(
                {"called_aet": "X", "project": "bad label!"},
                ["project label 'bad label!' is not valid"],
                id="bad-project-label",
            ),
            pytest.param(
                {"called_aet": "X", "project": "P", "session": "a/b"},
                ["session label 'a/b' is not valid"],
                id="bad-session-label",
            ),
            pytest.param({"project": "P"}, ["give called_aet, match, or both"], id="no-condition"),
            pytest.param(
                {"called_aet": "", "project": "P"},
                ["'route 1'", "called_aet"],
                id="empty-called-aet-would-match-everything",
            ),
            pytest.param(
                {"match": "StudyDescription", "project": "P"},
                ["match must be a table"],
                id="match-not-a-table",
            ),
        ],
    )
    def test_a_bad_rule_is_refused_naming_it_and_the_fault(
        self, table: Mapping[str, object], fragments: list[str]
    ) -> None:
        with pytest.raises(Invalid) as raised:
            compile_routes([table])
        assert raised.value.message.startswith("[[dicom.routes]] ")
        for fragment in fragments:
            assert fragment in raised.value.message

    def test_the_faulty_rule_is_named_among_several(self) -> None:
        good = {"called_aet": "A", "project": "P"}
        with pytest.raises(Invalid, match=r"'route 3'"):
            compile_routes([good, good, {"called_aet": "B"}])

    @pytest.mark.parametrize("label", ["pilot_", "_pilot", "a-b_c"])
    def test_a_rule_may_name_any_label_the_catalog_accepts(self, label: str) -> None:
        assert check_label(label, "project") == label
        (compiled,) = compile_routes([{"called_aet": "X", "project": label}])
        assert compiled.labels["project"] == label


class TestRoute:
    def test_called_ae_title_rule_ignores_case_and_spaces(self) -> None:
        routes = compile_routes([{"name": "by-aet", "called_aet": "research", "project": "R"}])
        assert where(routes, called_aet="RESEARCH ") == Destination(
            "R", "DEV", "DEV_20180918", "by-aet", session_derived=True
        )
        assert where(routes, called_aet="CLINICAL") == UNASSIGNED

    def test_named_groups_give_the_labels(self) -> None:
        routes = compile_routes(
            [
                {
                    "name": "description",
                    "match": {"StudyDescription": r"^(?P<project>\w+)\^(?P<session>\w+)$"},
                }
            ]
        )
        assert where(routes, StudyDescription="FMRIF^QA") == Destination(
            "FMRIF", "DEV", "QA", "description", session_derived=False
        )
        assert where(routes, StudyDescription="no caret") == UNASSIGNED

    def test_every_pattern_of_a_rule_must_match_and_its_labels_fill_the_rest(self) -> None:
        routes = compile_routes(
            [
                {
                    "called_aet": "MRI",
                    "match": {"AccessionNumber": r"^A\d+$", "StudyComments": r"(?P<subject>s\d+)"},
                    "project": "P",
                    "session": "baseline",
                }
            ]
        )
        assert where(routes, called_aet="MRI", AccessionNumber="A17", StudyComments="s04") == (
            Destination("P", "s04", "baseline", "route 1")
        )
        assert where(routes, called_aet="MRI", AccessionNumber="B17", StudyComments="s04") == (
            UNASSIGNED
        )
        assert where(routes, called_aet="CT", AccessionNumber="A17", StudyComments="s04") == (
            UNASSIGNED
        )

    def test_the_first_matching_rule_wins(self) -> None:
        routes = compile_routes(
            [
                {"name": "first", "match": {"StudyDescription": "FMRIF"}, "project": "A"},
                {"name": "second", "match": {"StudyDescription": "QA"}, "project": "B"},
            ]
        )
        assert where(routes, StudyDescription="FMRIF^QA").project == "A"
        assert where(routes, StudyDescription="QA only").rule == "second"

    def test_configured_rules_come_before_the_xnat_convention(self) -> None:
        routes = compile_routes([{"called_aet": "NEURODEPOT", "project": "RULED"}])
        destination = where(routes, StudyComments="Project: XNAT Subject: S Session: E")
        assert (destination.project, destination.rule) == ("RULED", "route 1")

    @pytest.mark.parametrize("field", ["StudyComments", "PatientComments"])
    def test_xnat_convention(self, field: str) -> None:
        text = "Project: P Subject: S01 Session: S01_MR1"
        assert where((), **{field: text}) == Destination(
            "P", "S01", "S01_MR1", XNAT_RULE, session_derived=False
        )

    def test_xnat_convention_tolerates_case_spacing_and_separators(self) -> None:
        destination = where((), StudyComments="project:P;subject : S01, SESSION:E1")
        assert (destination.project, destination.subject, destination.session) == (
            "P",
            "S01",
            "E1",
        )

    def test_xnat_convention_prefers_study_comments(self) -> None:
        destination = where(
            (), StudyComments="Project: FROMSTUDY", PatientComments="Project: FROMPATIENT"
        )
        assert destination.project == "FROMSTUDY"

    def test_xnat_convention_without_project_is_not_routing(self) -> None:
        assert where((), StudyComments="Subject: S Session: E") == UNASSIGNED

    def test_xnat_project_alone_takes_subject_and_session_from_the_patient(self) -> None:
        assert where((), PatientComments="Project: P") == Destination(
            "P", "DEV", "DEV_20180918", XNAT_RULE, session_derived=True
        )

    def test_unmatched_study_is_unassigned(self) -> None:
        assert where((), StudyComments="nothing to see") == UNASSIGNED

    def test_subject_falls_back_to_the_patient_name(self) -> None:
        destination = where((), patient_id="", StudyComments="Project: P")
        assert (destination.subject, destination.session) == (
            "Test_Regression",
            "Test_Regression_20180918",
        )

    def test_a_study_without_a_date_gets_the_last_uid_component(self) -> None:
        destination = where((), study_date=None, StudyComments="Project: P")
        assert destination.session == "DEV_28831229784644470934771902094312156645"

    def test_odd_characters_in_captured_labels_are_sanitized(self) -> None:
        routes = compile_routes(
            [{"match": {"StudyDescription": r"^(?P<project>[^/]+)/(?P<subject>.+)$"}}]
        )
        destination = where(routes, StudyDescription="Brain Study (2018)/Dr. Who^Test ")
        assert (destination.project, destination.subject) == ("Brain_Study_2018", "Dr_Who_Test")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("DEV", "DEV"),
        ("  Test^Regression  ", "Test_Regression"),
        ("a/b\\c:d", "a_b_c_d"),
        ("__x__", "x"),
        ("ÄÖÜ", ""),
        ("Müller", "M_ller"),
        ("x" * 80, "x" * 64),
        ("a-b_c", "a-b_c"),
    ],
)
def test_sanitize_label(value: str, expected: str) -> None:
    assert sanitize_label(value) == expected


def test_derived_session_is_subject_and_date() -> None:
    assert derived_session("DEV", SCANNED, STUDY_UID) == "DEV_20180918"
    assert derived_session("DEV", None, "1.2.3.999") == "DEV_999"


@settings(deadline=None)  # pure and quick, but a loaded CI machine must not make it flaky
@given(st.text(max_size=120))
def test_a_sanitized_label_is_empty_or_valid(value: str) -> None:
    label = sanitize_label(value)
    assert LABEL.fullmatch(label)
    if label:
        assert check_label(label, "subject") == label


@settings(deadline=None)
@given(st.text(max_size=200), st.text(max_size=80), st.dates() | st.none())
def test_a_routed_destination_only_holds_valid_labels(
    comments: str, patient_id: str, study_date: date | None
) -> None:
    destination = where((), patient_id=patient_id, study_date=study_date, StudyComments=comments)
    for label in (destination.project, destination.subject, destination.session):
        assert label is None or check_label(label, "label") == label
