"""Mapping a series to a BIDS name, telling images apart, numbering runs (pure, no depot)."""

import re
from collections.abc import Mapping
from textwrap import dedent
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from neurodepot.convert.bids_mapping import (
    PE_DIRECTIONS,
    BidsMatch,
    RunItem,
    bids_label,
    bids_stem,
    distinguish_images,
    map_series,
    number_runs,
    with_derived_fields,
)
from neurodepot.convert.rules import ENTITY_ORDER, RuleSet, default_rules, parse_rules

DEFAULTS = default_rules()
BIDS_STEM = re.compile(r"sub-[A-Za-z0-9]+(_ses-[A-Za-z0-9]+)?(_[a-z]+-[A-Za-z0-9]+)*_[A-Za-z0-9]+")
ORIGINAL_M = ["ORIGINAL", "PRIMARY", "M", "ND"]


def series(description: str, protocol: str | None = None, **fields: Any) -> dict[str, Any]:
    """Sidecar fields of a series; the protocol is the description unless told otherwise."""
    return {
        "SeriesDescription": description,
        "ProtocolName": description if protocol is None else protocol,
        **fields,
    }


def named(fields: Mapping[str, Any], rules: RuleSet = DEFAULTS) -> str | None:
    """What the rules make of a series: `datatype/entity-value_…_suffix`, `skip`, or None."""
    match = map_series(rules, fields)
    if match is None:
        return None
    if match.skip:
        return "skip"
    assert not match.problem, match.problem
    return match.datatype + "/" + "_".join([*(f"{k}-{v}" for k, v in match.entities), match.suffix])


def rules(toml: str) -> RuleSet:
    return parse_rules(dedent(toml), "test.toml", "toml")


class TestDefaultRulesOnVendorSeries:
    @pytest.mark.parametrize(
        ("fields", "expected"),
        [
            (series("t1_mprage_sag_p2", ImageType=[*ORIGINAL_M, "NORM"]), "anat/T1w"),
            (series("MPRAGE_GRAPPA2"), "anat/T1w"),
            (series("Sag T1 BRAVO"), "anat/T1w"),
            (series("T1W_3D_TFE", "WIP T1W_3D_TFE"), "anat/T1w"),
            (series("Sag CUBE T2", ImageType=["ORIGINAL", "PRIMARY", "OTHER"]), "anat/T2w"),
            (series("t2_space_sag_p2_iso"), "anat/T2w"),
            (series("t2_tse_tra"), "anat/T2w"),
            (series("T2W_TSE"), "anat/T2w"),
            (series("t2_flair_tra"), "anat/FLAIR"),
            (series("Ax T2 FLAIR"), "anat/FLAIR"),
            (series("PD_tse"), "anat/PDw"),
            (series("PD TSE COR"), "anat/PDw"),
            (series("Ax PD FSE"), "anat/PDw"),
        ],
        ids=[
            "siemens-mprage",
            "mprage",
            "ge-bravo",
            "philips-tfe",
            "ge-cube-t2",
            "siemens-space",
            "siemens-tse",
            "philips-t2w-tse",
            "siemens-flair",
            "ge-flair",
            "pd-tse-underscored",
            "pd-tse-spaced",
            "ge-pd-fse",
        ],
    )
    def test_anatomical_series_get_their_weighting(
        self, fields: dict[str, Any], expected: str
    ) -> None:
        assert named(fields) == expected

    def test_a_flair_is_not_taken_for_a_t2w(self) -> None:
        assert named(series("t2_flair_tra")) == "anat/FLAIR"
        assert named(series("t2_flair_tra")) != named(series("t2_tse_tra"))

    @pytest.mark.parametrize(
        "description", ["t2_tirm_tra_dark-fluid", "t2_spc_da-fl_sag_p2_iso", "T2 DARK FLUID"]
    )
    def test_a_siemens_dark_fluid_series_is_a_flair(self, description: str) -> None:
        assert named(series(description)) == "anat/FLAIR"

    def test_a_susceptibility_weighted_series_is_not_taken_for_a_t2w(self) -> None:
        assert named(series("t2_swi_tra_p2_1.5mm", ImageType=ORIGINAL_M)) is None

    def test_a_t2_star_series_is_not_taken_for_a_t2w(self) -> None:
        assert named(series("T2*_GRE")) is None
        assert named(series("t2star_me_gre")) is None

    def test_a_multiband_bold_gets_its_task_and_direction(self) -> None:
        fields = series(
            "cmrr_mbep2d_bold_task-nback",
            PhaseEncodingDirection="j-",
            ImageType=["ORIGINAL", "PRIMARY", "M", "MB", "ND", "MOSAIC"],
        )
        assert named(fields) == "func/task-nback_dir-AP_bold"

    @pytest.mark.parametrize(
        "description", ["rest_fMRI", "Resting_State_fMRI", "rfMRI_REST_AP", "fMRI rest"]
    )
    def test_a_resting_state_series_gets_task_rest(self, description: str) -> None:
        fields = series(description, PhaseEncodingDirection="j-")
        assert named(fields) == "func/task-rest_dir-AP_bold"

    def test_a_word_that_contains_rest_is_no_rest_task(self) -> None:
        assert with_derived_fields(series("interest_bold")).get("Task") is None
        assert with_derived_fields(series("forest_bold")).get("Task") is None

    def test_a_single_band_reference_is_an_sbref_of_its_task(self) -> None:
        fields = series(
            "cmrr_mbep2d_bold_task-nback_SBRef",
            "cmrr_mbep2d_bold_task-nback",
            PhaseEncodingDirection="j-",
            ImageType=[*ORIGINAL_M, "MOSAIC"],
        )
        assert named(fields) == "func/task-nback_dir-AP_sbref"

    def test_a_diffusion_series_gets_its_direction_from_the_phase_encoding(self) -> None:
        assert named(series("ep2d_diff_mddw_30", PhaseEncodingDirection="j-")) == "dwi/dir-AP_dwi"
        assert named(series("ep2d_diff_mddw_30", PhaseEncodingDirection="j")) == "dwi/dir-PA_dwi"
        assert named(series("DTI_high_iso")) == "dwi/dwi"

    def test_a_diffusion_epi_is_not_taken_for_a_bold(self) -> None:
        assert named(series("ep2d_diff_epi_64dir")) == "dwi/dwi"

    def test_the_phase_image_of_a_gre_fieldmap_is_the_phasediff(self) -> None:
        fields = series("gre_field_mapping", ImageType=["ORIGINAL", "PRIMARY", "P", "ND"])
        assert named(fields) == "fmap/phasediff"
        fields = series("gre_field_mapping", ImageType=["ORIGINAL", "PRIMARY", "PHASE"])
        assert named(fields) == "fmap/phasediff"

    def test_the_magnitude_images_of_a_gre_fieldmap_are_numbered_by_echo(self) -> None:
        fields = series("gre_field_mapping", ImageType=ORIGINAL_M, EchoNumber=2)
        assert named(fields) == "fmap/magnitude2"
        assert named({**fields, "EchoNumber": 1}) == "fmap/magnitude1"
        assert named({k: v for k, v in fields.items() if k != "EchoNumber"}) == "fmap/magnitude1"

    @pytest.mark.parametrize(
        ("description", "pe", "expected"),
        [
            ("se_epi_AP", "j-", "fmap/dir-AP_epi"),
            ("SpinEchoFieldMap_PA", "j", "fmap/dir-PA_epi"),
            ("SpinEchoFieldMap_AP", "j-", "fmap/dir-AP_epi"),
            ("TOPUP_LR", "i-", "fmap/dir-LR_epi"),
        ],
    )
    def test_a_spin_echo_fieldmap_is_an_epi_with_its_direction(
        self, description: str, pe: str, expected: str
    ) -> None:
        assert named(series(description, PhaseEncodingDirection=pe)) == expected

    def test_a_spin_echo_fieldmap_is_not_taken_for_a_bold(self) -> None:
        match = map_series(DEFAULTS, series("se_epi_AP", PhaseEncodingDirection="j-"))
        assert match is not None and match.rule == "fieldmap: spin-echo EPI (PEpolar)"

    @pytest.mark.parametrize(
        "fields",
        [
            series("AAHead_Scout_32ch-head-coil", "AAHead_Scout"),
            series("localizer"),
            series("3Plane Loc SSFSE"),
            series("Survey_SHC"),
            series("whatever", "Localiser"),
        ],
        ids=["siemens-aahead", "localizer", "ge-3plane", "philips-survey", "protocol-only"],
    )
    def test_localizers_are_skipped(self, fields: dict[str, Any]) -> None:
        match = map_series(DEFAULTS, fields)
        assert match is not None and match.skip and match.rule == "localizer"
        assert not match.named

    def test_a_derived_image_is_skipped(self) -> None:
        fields = series("MPR Tra", "t1_mprage_sag_p2", ImageType=["DERIVED", "PRIMARY", "MPR"])
        match = map_series(DEFAULTS, fields)
        assert match is not None and match.skip and match.rule == "derived image"

    def test_a_derived_sbref_is_not_skipped(self) -> None:
        fields = series(
            "cmrr_mbep2d_bold_task-nback_SBRef",
            "cmrr_mbep2d_bold_task-nback",
            ImageType=["DERIVED", "PRIMARY", "M", "ND", "MOSAIC"],
        )
        assert named(fields) == "func/task-nback_sbref"

    def test_the_ge_regression_epi_is_a_bold_named_by_its_protocol(self) -> None:
        # dcm_qa_nih 20180918GE series 4, as its reference sidecar has it.
        fields = {
            "Manufacturer": "GE",
            "SeriesDescription": "Axial EPI-FMRI (Interleaved I to S)",
            "ProtocolName": "DCM2NIIX regression test",
            "ImageType": ["ORIGINAL", "PRIMARY", "EPI", "NONE", "MAGNITUDE"],
            "SeriesNumber": 4,
            "EchoTime": 0.03,
            "PhaseEncodingDirection": "j-",
        }
        match = map_series(DEFAULTS, fields)
        assert match is not None and match.rule == "functional: BOLD"
        assert named(fields) == "func/task-DCM2NIIXregressiontest_dir-AP_bold"

    @pytest.mark.parametrize(
        "fields", [series("foo"), {"SeriesDescription": "foo"}, {}, series("", "")]
    )
    def test_a_series_no_rule_recognises_is_unmatched(self, fields: dict[str, Any]) -> None:
        assert map_series(DEFAULTS, fields) is None


class TestMatching:
    ORDERED = """
        [[rules]]
        name = "first"
        datatype = "anat"
        suffix = "T1w"
        [rules.match]
        SeriesDescription = "t1"

        [[rules]]
        name = "second"
        datatype = "anat"
        suffix = "T2w"
        [rules.match]
        SeriesDescription = "t"
        """

    def test_the_first_rule_that_holds_names_the_series(self) -> None:
        ordered = rules(self.ORDERED)
        assert map_series(ordered, {"SeriesDescription": "t1_x"}) == BidsMatch(
            "first", datatype="anat", suffix="T1w"
        )
        match = map_series(ordered, {"SeriesDescription": "t2_x"})
        assert match is not None and match.rule == "second"

    def test_a_pattern_is_searched_and_case_sensitive_unless_it_says_otherwise(self) -> None:
        ordered = rules(self.ORDERED)
        assert map_series(ordered, {"SeriesDescription": "T1"}) is None
        assert map_series(ordered, {"SeriesDescription": "abc_t1_def"}) is not None

    def test_every_criterion_must_hold_and_no_exclusion(self) -> None:
        both = rules(
            """
            [[rules]]
            name = "both"
            datatype = "anat"
            suffix = "T1w"
            [rules.match]
            SeriesDescription = "t1"
            EchoNumber = 1
            [rules.exclude]
            ImageType = "^DERIVED$"
            """
        )
        assert named(series("t1", EchoNumber=1), both) == "anat/T1w"
        assert named(series("t1", EchoNumber=2), both) is None
        assert named(series("t1"), both) is None
        assert named(series("t1", EchoNumber=1, ImageType=["DERIVED", "PRIMARY"]), both) is None
        assert named(series("t1", EchoNumber=1, ImageType=["ORIGINAL"]), both) == "anat/T1w"

    def test_a_number_matches_an_equal_number_written_any_way(self) -> None:
        echo = rules(
            """
            [[rules]]
            datatype = "anat"
            suffix = "T1w"
            match = { EchoNumber = 2 }
            """
        )
        for value in (2, 2.0, "2", " 2 "):
            assert map_series(echo, {"EchoNumber": value}) is not None, value
        for value in (3, "2a", None, 2.5):
            assert map_series(echo, {"EchoNumber": value}) is None, value

    def test_a_list_criterion_holds_if_any_item_does(self) -> None:
        either = rules(
            """
            [[rules]]
            datatype = "anat"
            suffix = "T1w"
            match = { SeriesDescription = ["^a$", "^b$"], EchoNumber = [1, 3] }
            """
        )
        assert map_series(either, {"SeriesDescription": "b", "EchoNumber": 3}) is not None
        assert map_series(either, {"SeriesDescription": "c", "EchoNumber": 3}) is None
        assert map_series(either, {"SeriesDescription": "a", "EchoNumber": 2}) is None

    def test_fields_joined_by_a_bar_match_if_any_does(self) -> None:
        any_field = rules(
            """
            [[rules]]
            datatype = "anat"
            suffix = "T1w"
            match = { "SeriesDescription|ProtocolName" = "mprage" }
            """
        )
        assert map_series(any_field, {"ProtocolName": "mprage"}) is not None
        assert map_series(any_field, {"SeriesDescription": "mprage"}) is not None
        assert map_series(any_field, {"SequenceName": "mprage"}) is None

    def test_a_list_field_matches_if_one_of_its_items_does(self) -> None:
        phase = rules(
            """
            [[rules]]
            datatype = "fmap"
            suffix = "phasediff"
            match = { ImageType = "^P$" }
            """
        )
        assert map_series(phase, {"ImageType": ["ORIGINAL", "PRIMARY", "P", "ND"]}) is not None
        assert map_series(phase, {"ImageType": ["ORIGINAL", "PRIMARY", "M", "ND"]}) is None

    def test_a_task_is_taken_from_the_description_before_the_protocol(self) -> None:
        assert with_derived_fields(series("task-nback", "task_memory"))["Task"] == "nback"
        assert with_derived_fields(series("bold", "task_memory"))["Task"] == "memory"
        assert with_derived_fields(series("bold TASK motor"))["Task"] == "motor"
        assert "Task" not in with_derived_fields(series("bold"))

    def test_a_task_the_fields_already_name_is_kept(self) -> None:
        assert with_derived_fields(series("task-nback", Task="given"))["Task"] == "given"


class TestTemplates:
    def test_the_first_alternative_with_a_value_is_taken(self) -> None:
        acq = rules(
            """
            [[rules]]
            datatype = "anat"
            suffix = "T1w"
            match = { SeriesDescription = "t1" }
            entities = { acq = "{Coil|Sequence}" }
            """
        )
        assert named({"SeriesDescription": "t1", "Coil": "HEA", "Sequence": "tfl"}, acq) == (
            "anat/acq-HEA_T1w"
        )
        assert named({"SeriesDescription": "t1", "Sequence": "tfl"}, acq) == "anat/acq-tfl_T1w"
        assert named({"SeriesDescription": "t1", "Coil": "", "Sequence": "tfl"}, acq) == (
            "anat/acq-tfl_T1w"
        )

    def test_a_literal_fallback_is_used_when_the_field_has_no_value(self) -> None:
        magnitude = rules(
            """
            [[rules]]
            datatype = "fmap"
            suffix = "magnitude{EchoNumber|=1}"
            match = { SeriesDescription = "fmap" }
            """
        )
        assert named({"SeriesDescription": "fmap"}, magnitude) == "fmap/magnitude1"
        assert named({"SeriesDescription": "fmap", "EchoNumber": 2}, magnitude) == (
            "fmap/magnitude2"
        )
        assert named({"SeriesDescription": "fmap", "EchoNumber": 2.0}, magnitude) == (
            "fmap/magnitude2"
        )

    @pytest.mark.parametrize(("pe", "label"), sorted(PE_DIRECTIONS.items()))
    def test_a_phase_encoding_direction_becomes_a_dir_label(self, pe: str, label: str) -> None:
        assert named(series("ep2d_diff", PhaseEncodingDirection=pe)) == f"dwi/dir-{label}_dwi"

    @pytest.mark.parametrize("pe", ["", "x", "J-", "ROW", None])
    def test_an_unknown_phase_encoding_direction_leaves_dir_out(self, pe: str | None) -> None:
        assert named(series("ep2d_diff", PhaseEncodingDirection=pe)) == "dwi/dwi"

    def test_values_are_reduced_to_letters_and_digits(self) -> None:
        fields = series("bold", "n-back task (v2)_ü")
        assert named(fields) == "func/task-nbacktaskv2_bold"
        assert named(series("MB8 bold", "Faces.v2 (new)")) == "func/task-Facesv2new_bold"

    def test_an_entity_with_no_value_is_left_out(self) -> None:
        both = rules(
            """
            [[rules]]
            datatype = "func"
            suffix = "bold"
            match = { SeriesDescription = "bold" }
            [rules.entities]
            task = "{Task|=unknown}"
            acq = "{Missing}"
            rec = "{Blank}"
            ce = "{Dash}"
            """
        )
        fields = {"SeriesDescription": "bold", "Blank": "  ", "Missing": None, "Dash": "-_-"}
        assert named(fields, both) == "func/task-unknown_bold"
        assert named({**fields, "Missing": "x"}, both) == "func/task-unknown_acq-x_bold"

    def test_named_groups_of_a_pattern_fill_the_template(self) -> None:
        plane = rules(
            r"""
            [[rules]]
            datatype = "anat"
            suffix = "T1w"
            match = { SeriesDescription = "(?i)mprage_(?P<plane>sag|cor|tra)" }
            entities = { acq = "{plane}", rec = "{norm|=raw}" }
            """
        )
        assert named({"SeriesDescription": "mprage_sag"}, plane) == "anat/acq-sag_rec-raw_T1w"
        assert named({"SeriesDescription": "MPRAGE_COR"}, plane) == "anat/acq-COR_rec-raw_T1w"

    def test_a_list_value_is_joined(self) -> None:
        kinds = rules(
            """
            [[rules]]
            datatype = "anat"
            suffix = "T1w"
            match = { SeriesDescription = "t1" }
            entities = { acq = "{ImageType}" }
            """
        )
        assert named({"SeriesDescription": "t1", "ImageType": ["M", "ND"]}, kinds) == (
            "anat/acq-MND_T1w"
        )

    def test_entities_are_given_in_bids_order_whatever_the_rule_says(self) -> None:
        reordered = rules(
            """
            [[rules]]
            datatype = "func"
            suffix = "bold"
            match = { SeriesDescription = "bold" }
            entities = { part = "mag", echo = "{EchoNumber}", dir = "AP", task = "x", acq = "y" }
            """
        )
        match = map_series(reordered, {"SeriesDescription": "bold", "EchoNumber": 2})
        assert match is not None
        assert [k for k, _ in match.entities] == ["task", "acq", "dir", "echo", "part"]

    def test_a_suffix_with_no_value_is_a_problem_not_an_exception(self) -> None:
        suffix = rules(
            """
            [[rules]]
            name = "by field"
            datatype = "anat"
            suffix = "{Weighting}"
            match = { SeriesDescription = "anat" }
            """
        )
        match = map_series(suffix, {"SeriesDescription": "anat"})
        assert match is not None
        assert match.problem == "suffix '{Weighting}': none of Weighting has a value"
        assert (match.rule, match.datatype, match.suffix, match.skip) == (
            "by field",
            "anat",
            "",
            False,
        )
        assert not match.named
        assert named({"SeriesDescription": "anat", "Weighting": "T1w"}, suffix) == "anat/T1w"


def item(
    key: str,
    group: str,
    match: BidsMatch,
    series_number: float = float("inf"),
    time: str = "",
    session: str = "s1",
) -> RunItem:
    return RunItem(key, group, session, match, (series_number, time))


BOLD = BidsMatch("bold", datatype="func", suffix="bold", entities=(("task", "rest"),))
T1W = BidsMatch("t1", datatype="anat", suffix="T1w")


def runs_of(numbered: Mapping[str, BidsMatch]) -> dict[str, str | None]:
    return {key: dict(m.entities).get("run") for key, m in numbered.items()}


class TestNumberRuns:
    def test_scans_with_the_same_name_are_numbered_in_series_number_order(self) -> None:
        items = [
            item("c", "scan-c", BOLD, 12),
            item("a", "scan-a", BOLD, 3),
            item("b", "scan-b", BOLD, 7),
        ]
        assert runs_of(number_runs(items)) == {"a": "1", "b": "2", "c": "3"}

    def test_acquisition_time_orders_scans_of_the_same_series_number(self) -> None:
        items = [
            item("late", "scan-1", BOLD, 5, "10:30:00"),
            item("early", "scan-2", BOLD, 5, "09:15:00"),
            item("unnumbered", "scan-3", BOLD, float("inf"), "08:00:00"),
        ]
        assert runs_of(number_runs(items)) == {"early": "1", "late": "2", "unnumbered": "3"}

    def test_images_of_one_scan_share_its_run(self) -> None:
        echo1 = BOLD.with_entity("echo", "1")
        echo2 = BOLD.with_entity("echo", "2")
        items = [
            item("a1", "scan-a", echo1, 4),
            item("a2", "scan-a", echo2, 4),
            item("b1", "scan-b", echo1, 9),
            item("b2", "scan-b", echo2, 9),
        ]
        assert runs_of(number_runs(items)) == {"a1": "1", "a2": "1", "b1": "2", "b2": "2"}

    def test_images_of_one_scan_acquired_apart_still_count_as_one_run(self) -> None:
        items = [
            item("a1", "scan-a", BOLD, 4, "10:00:00"),
            item("a2", "scan-a", BOLD, 4, "10:05:00"),
            item("b", "scan-b", BOLD, 9, "11:00:00"),
        ]
        assert runs_of(number_runs(items)) == {"a1": "1", "a2": "1", "b": "2"}
        alone = [item("a1", "scan-a", BOLD, 4, "10:00:00"), item("a2", "scan-a", BOLD, 4, "10:05")]
        assert runs_of(number_runs(alone)) == {"a1": None, "a2": None}

    def test_each_session_is_numbered_on_its_own(self) -> None:
        items = [
            item("s1-a", "scan-1", BOLD, 3, session="ses-1"),
            item("s1-b", "scan-2", BOLD, 4, session="ses-1"),
            item("s2-a", "scan-3", BOLD, 1, session="ses-2"),
            item("s2-b", "scan-4", BOLD, 2, session="ses-2"),
            item("s3", "scan-5", BOLD, 1, session="ses-3"),
        ]
        assert runs_of(number_runs(items)) == {
            "s1-a": "1",
            "s1-b": "2",
            "s2-a": "1",
            "s2-b": "2",
            "s3": None,
        }

    def test_a_unique_name_gets_no_run(self) -> None:
        items = [item("t1", "scan-1", T1W, 1), item("bold", "scan-2", BOLD, 2)]
        numbered = number_runs(items)
        assert numbered == {"t1": T1W, "bold": BOLD}

    def test_names_differing_in_an_entity_are_not_runs_of_each_other(self) -> None:
        items = [
            item("ap", "scan-1", BOLD.with_entity("dir", "AP"), 1),
            item("pa", "scan-2", BOLD.with_entity("dir", "PA"), 2),
            item("anat-bold", "scan-3", BidsMatch("x", datatype="anat", suffix="bold"), 3),
            item("func-bold", "scan-4", BidsMatch("x", datatype="func", suffix="bold"), 4),
        ]
        assert set(runs_of(number_runs(items)).values()) == {None}

    def test_skipped_and_unnamed_images_are_neither_numbered_nor_counted(self) -> None:
        skipped = BidsMatch("localizer", skip=True)
        problem = BidsMatch("by field", datatype="anat", problem="suffix has no value")
        items = [
            item("s1", "scan-1", skipped, 1),
            item("s2", "scan-2", skipped, 2),
            item("p1", "scan-3", problem, 3),
            item("p2", "scan-4", problem, 4),
            item("bold", "scan-5", BOLD, 5),
        ]
        numbered = number_runs(items)
        assert numbered == {
            "s1": skipped,
            "s2": skipped,
            "p1": problem,
            "p2": problem,
            "bold": BOLD,
        }

    def test_the_run_sits_in_its_bids_place_in_the_name(self) -> None:
        match = BOLD.with_entity("dir", "AP").with_entity("echo", "1")
        numbered = number_runs([item("a", "scan-a", match, 1), item("b", "scan-b", match, 2)])
        assert (
            bids_stem("01", "1", numbered["b"]) == "sub-01_ses-1_task-rest_dir-AP_run-2_echo-1_bold"
        )


def image(key: str, match: BidsMatch, **fields: Any) -> tuple[str, BidsMatch, dict[str, Any]]:
    return (key, match, fields)


class TestDistinguishImages:
    def test_images_of_one_name_are_told_apart_by_echo(self) -> None:
        out = distinguish_images(
            [image("e1", BOLD, EchoNumber=1), image("e2", BOLD, EchoNumber=2.0)]
        )
        assert out == {"e1": BOLD.with_entity("echo", "1"), "e2": BOLD.with_entity("echo", "2")}

    def test_images_without_distinct_echoes_are_told_apart_by_part(self) -> None:
        out = distinguish_images(
            [
                image("m", BOLD, ImageType=["ORIGINAL", "PRIMARY", "M"]),
                image("p", BOLD, ImageType=["ORIGINAL", "PRIMARY", "P"]),
            ]
        )
        assert out == {"m": BOLD.with_entity("part", "mag"), "p": BOLD.with_entity("part", "phase")}
        same_echo = distinguish_images(
            [
                image("m", T1W, EchoNumber=1, ImageType=["MAGNITUDE"]),
                image("p", T1W, EchoNumber=1, ImageType=["phase"]),
            ]
        )
        assert same_echo == {
            "m": T1W.with_entity("part", "mag"),
            "p": T1W.with_entity("part", "phase"),
        }

    def test_images_that_differ_in_echo_and_part_get_both(self) -> None:
        # Philips stores magnitude and phase of every echo in one series.
        out = distinguish_images(
            [
                image(f"{kind}{echo}", BOLD, EchoNumber=echo, ImageType=["ORIGINAL", kind])
                for echo in (1, 2)
                for kind in ("M", "P")
            ]
        )
        stems = {key: bids_stem("01", None, m) for key, m in out.items()}
        assert stems == {
            "M1": "sub-01_task-rest_echo-1_part-mag_bold",
            "P1": "sub-01_task-rest_echo-1_part-phase_bold",
            "M2": "sub-01_task-rest_echo-2_part-mag_bold",
            "P2": "sub-01_task-rest_echo-2_part-phase_bold",
        }

    def test_images_with_different_names_are_left_as_they_are(self) -> None:
        skipped = BidsMatch("derived image", skip=True)
        out = distinguish_images(
            [
                image("bold", BOLD, EchoNumber=1),
                image("t1", T1W, EchoNumber=2),
                image("skip-1", skipped, EchoNumber=1),
                image("skip-2", skipped, EchoNumber=2),
            ]
        )
        assert out == {"bold": BOLD, "t1": T1W, "skip-1": skipped, "skip-2": skipped}


class TestNames:
    def test_a_stem_has_subject_session_entities_and_suffix(self) -> None:
        match = BidsMatch(
            "r", datatype="func", suffix="bold", entities=(("task", "x"), ("dir", "AP"))
        )
        assert bids_stem("01", "pre", match) == "sub-01_ses-pre_task-x_dir-AP_bold"
        assert bids_stem("01", None, match) == "sub-01_task-x_dir-AP_bold"
        assert bids_stem("01", "", T1W) == "sub-01_T1w"

    def test_a_label_keeps_only_letters_and_digits(self) -> None:
        assert bids_label("DEV_2018-09-18 (b)") == "DEV20180918b"
        assert bids_label("abc123") == "abc123"
        assert bids_label("_-") == ""

    def test_an_entity_added_later_takes_its_place_and_replaces_an_old_value(self) -> None:
        match = BOLD.with_entity("echo", "1").with_entity("acq", "mb").with_entity("echo", "2")
        assert match.entities == (("task", "rest"), ("acq", "mb"), ("echo", "2"))


# --- Properties -------------------------------------------------------------------------------

FRAGMENTS = [
    "t1", "T2", "mprage", "space", "flair", "pd", "tse", "bold", "fMRI", "rest", "task-",
    "task_", "nback", "SBRef", "ep2d", "diff", "dti", "se_epi", "SpinEchoFieldMap", "fmap",
    "gre_field_mapping", "AP", "PA", "scout", "localizer", "_", "-", " ", "(", ")", "*", "ü",
]  # fmt: skip
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
NAME_TEXT = st.one_of(TEXT, st.lists(st.sampled_from(FRAGMENTS) | TEXT, max_size=6).map("".join))
OPTIONAL_VALUE = st.none() | st.integers(-3, 10) | st.floats() | TEXT
IMAGE_TYPE = st.none() | st.lists(
    st.sampled_from(["ORIGINAL", "DERIVED", "PRIMARY", "M", "P", "PHASE", "ND", "MOSAIC"]) | TEXT,
    max_size=5,
)
PHASE_ENCODING = st.none() | st.sampled_from([*PE_DIRECTIONS, "", "x"]) | TEXT
LABEL = st.from_regex(r"[A-Za-z0-9]{1,10}", fullmatch=True)


@st.composite
def sidecars(draw: st.DrawFn) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for key, values in (
        ("SeriesDescription", NAME_TEXT),
        ("ProtocolName", NAME_TEXT),
        ("ImageType", IMAGE_TYPE),
        ("EchoNumber", OPTIONAL_VALUE),
        ("PhaseEncodingDirection", PHASE_ENCODING),
        ("Task", st.none() | TEXT),
    ):
        if draw(st.booleans()):
            fields[key] = draw(values)
    return fields


NAMES = [BOLD, T1W, BOLD.with_entity("echo", "1"), BOLD.with_entity("echo", "2")]
TIMES = ["", "09:00", "10:00"]


@st.composite
def sessions_of_scans(draw: st.DrawFn) -> list[RunItem]:
    """Scans in two sessions, each with a series number and 1-3 images of a few names."""
    items = []
    for n in range(draw(st.integers(0, 8))):
        session = draw(st.sampled_from(["ses-1", "ses-2"]))
        number = draw(st.sampled_from([1.0, 2.0, 3.0, float("inf")]))
        for i in range(draw(st.integers(1, 3))):
            match, time = draw(st.sampled_from(NAMES)), draw(st.sampled_from(TIMES))
            items.append(RunItem(f"scan{n}-image{i}", f"scan{n}", session, match, (number, time)))
    return draw(st.permutations(items))


SESSIONS_OF_SCANS = sessions_of_scans()


class TestProperties:
    @settings(max_examples=200, deadline=None)
    @given(sidecars(), LABEL, st.none() | LABEL)
    @example(series("cmrr_mbep2d_bold_task-nback", PhaseEncodingDirection="j-"), "01", "1")
    @example(series("gre_field_mapping", EchoNumber=float("nan")), "01", None)
    @example(series("t1_mprage", "task \u00fc-\u017f"), "S", None)
    def test_every_name_the_default_rules_give_is_a_bids_file_name(
        self, fields: dict[str, Any], subject: str, session: str | None
    ) -> None:
        match = map_series(DEFAULTS, fields)
        if match is None or not match.named:
            return
        stem = bids_stem(subject, session, match)
        assert BIDS_STEM.fullmatch(stem), stem
        keys = [k for k, _ in match.entities]
        assert keys == sorted(set(keys), key=ENTITY_ORDER.index)
        assert "run" not in keys

    @settings(max_examples=200, deadline=None)
    @given(sidecars())
    def test_the_same_fields_always_give_the_same_name(self, fields: dict[str, Any]) -> None:
        assert map_series(DEFAULTS, fields) == map_series(DEFAULTS, dict(fields))

    @settings(max_examples=200, deadline=None)
    @given(SESSIONS_OF_SCANS)
    def test_runs_never_give_two_scans_of_a_session_one_name(self, items: list[RunItem]) -> None:
        numbered = number_runs(items)
        scans_named: dict[tuple[str, str], set[str]] = {}
        for it in items:
            stem = bids_stem("01", it.session, numbered[it.key])
            scans_named.setdefault((it.session, stem), set()).add(it.group)
        assert all(len(scans) == 1 for scans in scans_named.values()), scans_named

    @settings(max_examples=200, deadline=None)
    @given(SESSIONS_OF_SCANS)
    def test_runs_count_the_scans_of_a_name_from_one_in_order(self, items: list[RunItem]) -> None:
        numbered = number_runs(items)
        for session, match in {(it.session, it.match) for it in items}:
            members = [it for it in items if (it.session, it.match) == (session, match)]
            first: dict[str, tuple[float, str]] = {}
            for it in members:
                first[it.group] = min(first.get(it.group, it.order), it.order)
            runs = {it.group: set() for it in members}
            for it in members:
                runs[it.group].add(dict(numbered[it.key].entities).get("run"))
            assert all(len(run) == 1 for run in runs.values()), runs  # a scan's images share one
            in_order = [runs[g].pop() for g in sorted(first, key=lambda g: (first[g], g))]
            if len(first) == 1:
                assert in_order == [None]
            else:
                assert in_order == [str(n) for n in range(1, len(first) + 1)]
