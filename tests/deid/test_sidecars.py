"""Sidecar and TSV scrubbing: real dcm2niix sidecars, the field list against the profile table,
planted identifiers at any depth (hypothesis), BIDS TSVs relabelled, and bad input."""

import json
import subprocess
import tomllib
from datetime import date, timedelta
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.datadict import dictionary_VR, tag_for_keyword

from neurodepot.convert.dcm2niix import binary
from neurodepot.deid.profile import ProfileOption, load_profile
from neurodepot.deid.sidecars import (
    TsvKind,
    load_fields,
    scrub_sidecar,
    scrub_sidecar_bytes,
    scrub_tsv_text,
    tsv_kind_for,
)
from neurodepot.errors import Invalid
from tests.conftest import TESTDATA

NIH = TESTDATA / "dcm_qa_nih"
SERIES = [NIH / "In" / "20180918Si" / "mr_0003", NIH / "In" / "20180918GE" / "mr_0004"]
NONE: frozenset[ProfileOption] = frozenset()
OFFSET = -40
# What dcm2niix copies from the headers that identifies a person, a site, a device or a time.
IDENTIFYING = frozenset(
    {
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "PatientAge",
        "PatientWeight",
        "PatientSize",
        "AccessionNumber",
        "StudyID",
        "ReferringPhysicianName",
        "InstitutionName",
        "InstitutionAddress",
        "InstitutionalDepartmentName",
        "StationName",
        "DeviceSerialNumber",
        "SeriesDescription",
        "ProtocolName",
        "StudyDescription",
        "ImageComments",
        "ProcedureStepDescription",
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "AcquisitionDateTime",
        "AcquisitionTime",
        "SeriesTime",
    }
)


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> list[dict[str, object]]:
    """Sidecars dcm2niix writes for real series when it is told not to anonymise (`-ba n`)."""
    out = tmp_path_factory.mktemp("dcm2niix")
    for series in SERIES:
        subprocess.run(
            [str(binary()), "-z", "n", "-b", "y", "-ba", "n", "-f", "%s", "-o", str(out), series],
            check=True,
            capture_output=True,
            timeout=120,
        )
    sidecars = [json.loads(path.read_text()) for path in sorted(out.glob("*.json"))]
    assert len(sidecars) == 2
    return sidecars


def reference_sidecars() -> list[Path]:
    return sorted((NIH / "Ref").glob("*.json"))


class TestRealSidecars:
    def test_dcm2niix_identifiers_are_removed_byte_for_byte(self, converted):
        for sidecar in converted:
            others = " ".join(str(v) for k, v in sidecar.items() if k not in IDENTIFYING)
            planted = {
                str(sidecar[key])
                for key in IDENTIFYING
                if key in sidecar
                and len(str(sidecar[key])) >= 5
                and str(sidecar[key]) not in others
            }  # a value also found in a kept field (GE's "Gradient Echo") proves nothing
            assert {"Test^Regression", "1970-01-01"} & planted or "NIH FMRIF" in planted
            out = scrub_sidecar_bytes(json.dumps(sidecar).encode(), "x.json", NONE, OFFSET)
            text = out.decode()
            assert [value for value in planted if value in text] == []
            assert "2018" not in text  # no date of any kind survives
            kept = json.loads(out)
            assert set(kept).isdisjoint(IDENTIFYING)
            for key in ("EchoTime", "RepetitionTime", "SliceTiming", "ImageType", "Manufacturer"):
                if key in sidecar:
                    assert kept[key] == sidecar[key]

    @pytest.mark.parametrize("path", reference_sidecars(), ids=lambda p: p.name)
    def test_reference_sidecars_lose_every_listed_field(self, path):
        original = json.loads(path.read_text())
        scrubbed = scrub_sidecar(original, NONE, OFFSET)
        assert set(scrubbed).isdisjoint(load_fields().fields)
        assert set(original) - set(scrubbed) <= set(IDENTIFYING)

    def test_every_profile_attribute_dcm2niix_writes_is_listed(self, converted):
        """The field list is complete for what dcm2niix emits (and all of it maps to rows)."""
        profile = load_profile()
        for sidecar in converted:
            for key in sidecar:
                tag = tag_for_keyword(key)
                if tag is not None and profile.rule_for(tag) is not None:
                    assert key in load_fields().fields, key
        for key, keyword in load_fields().fields.items():
            tag = tag_for_keyword(keyword)
            assert tag is not None and profile.rule_for(tag) is not None, key

    def test_the_package_copy_of_the_field_list_parses(self):
        text = resources.files("neurodepot.deid").joinpath("data", "sidecar_fields.toml")
        data = tomllib.loads(text.read_text("utf-8"))
        assert set(data["tsv"]) == {kind.value for kind in TsvKind}


class TestOptions:
    def sidecar(self, converted) -> dict[str, object]:
        return converted[0]  # the Siemens series: it has every patient field

    def test_patient_characteristics_are_kept_only_with_their_option(self, converted):
        sidecar = self.sidecar(converted)
        keys = {"PatientSex", "PatientAge", "PatientWeight", "PatientSize"}
        assert keys <= set(sidecar)
        assert keys.isdisjoint(scrub_sidecar(sidecar, NONE, 0))
        kept = scrub_sidecar(sidecar, frozenset({ProfileOption.RETAIN_PATIENT_CHARACTERISTICS}), 0)
        assert {key: kept[key] for key in keys} == {key: sidecar[key] for key in keys}
        assert "PatientBirthDate" not in kept and "PatientName" not in kept

    @pytest.mark.parametrize(
        ("option", "keys"),
        [
            (
                ProfileOption.RETAIN_INSTITUTION_IDENTITY,
                {"InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName"},
            ),
            (ProfileOption.RETAIN_DEVICE_IDENTITY, {"StationName", "DeviceSerialNumber"}),
            (ProfileOption.RETAIN_UIDS, {"StudyInstanceUID", "SeriesInstanceUID"}),
            (ProfileOption.RETAIN_FULL_DATES, {"AcquisitionDateTime", "AcquisitionTime"}),
        ],
    )
    def test_each_option_keeps_its_fields_and_nothing_else(self, converted, option, keys):
        sidecar = self.sidecar(converted)
        kept = scrub_sidecar(sidecar, frozenset({option}), OFFSET)
        assert {key: kept[key] for key in keys} == {key: sidecar[key] for key in keys}
        assert set(kept).isdisjoint(set(IDENTIFYING) - keys)

    def test_clean_descriptors_drops_descriptors_as_the_dicom_header_blanks_them(self, converted):
        kept = scrub_sidecar(
            self.sidecar(converted), frozenset({ProfileOption.CLEAN_DESCRIPTORS}), 0
        )
        assert {"SeriesDescription", "ProtocolName", "StudyDescription"}.isdisjoint(kept)

    def test_modified_dates_shift_by_the_offset_and_keep_times(self, converted):
        sidecar = self.sidecar(converted)
        kept = scrub_sidecar(sidecar, frozenset({ProfileOption.RETAIN_MODIFIED_DATES}), OFFSET)
        moved = date(2018, 9, 18) + timedelta(days=OFFSET)
        assert kept["AcquisitionDateTime"] == f"{moved:%Y-%m-%d}T12:24:58.102500"
        assert kept["AcquisitionTime"] == sidecar["AcquisitionTime"]
        assert "PatientBirthDate" not in kept

    @pytest.mark.parametrize(
        ("value", "shifted"),
        [
            ("20180918", "20180809"),
            ("2018-09-18", "2018-08-09"),
            ("20180918122458.5+0100", "20180809122458.5+0100"),
            ("2018-02-30", None),
            ("yesterday", None),
        ],
    )
    def test_date_formats_keep_their_layout_and_bad_dates_go(self, value, shifted):
        options = frozenset({ProfileOption.RETAIN_MODIFIED_DATES})
        out = scrub_sidecar({"StudyDate": value, "ContentDate": [value]}, options, OFFSET)
        assert out.get("StudyDate") == shifted
        assert out.get("ContentDate") == (None if shifted is None else [shifted])

    def test_unlisted_dicom_date_follows_the_date_options(self):
        vr = dictionary_VR(tag_for_keyword("DateOfGainCalibration"))
        assert (
            vr == "DA" and load_profile().rule_for(tag_for_keyword("DateOfGainCalibration")) is None
        )
        sidecar = {"DateOfGainCalibration": "20180918"}
        assert scrub_sidecar(sidecar, NONE, OFFSET) == {}
        full = frozenset({ProfileOption.RETAIN_FULL_DATES})
        assert scrub_sidecar(sidecar, full, OFFSET) == sidecar
        modified = frozenset({ProfileOption.RETAIN_MODIFIED_DATES})
        assert scrub_sidecar(sidecar, modified, OFFSET) == {"DateOfGainCalibration": "20180809"}

    def test_uids_are_remapped_when_a_remapper_is_given(self, converted):
        sidecar = self.sidecar(converted)
        kept = scrub_sidecar(sidecar, NONE, 0, remap_uid=lambda uid: f"2.25.{len(uid)}")
        assert kept["SeriesInstanceUID"] == f"2.25.{len(sidecar['SeriesInstanceUID'])}"
        assert kept["StudyInstanceUID"] == f"2.25.{len(sidecar['StudyInstanceUID'])}"

    def test_unknown_uid_keys_go_unless_uids_are_retained(self):
        sidecar = {"VendorSessionUID": "1.2.3.4", "EchoTime": 0.03}
        assert scrub_sidecar(sidecar, NONE, 0) == {"EchoTime": 0.03}
        assert scrub_sidecar(sidecar, frozenset({ProfileOption.RETAIN_UIDS}), 0) == sidecar

    def test_nested_objects_and_lists_are_scrubbed_by_key(self):
        sidecar = {
            "EchoTime": 0.03,
            "Extra": {"PatientName": "Doe^John", "Nested": [{"OperatorsName": "Smith"}, 3]},
            "Items": [{"PatientID": "MCH-1", "Keep": "yes"}],
        }
        assert scrub_sidecar(sidecar, NONE, 0) == {
            "EchoTime": 0.03,
            "Extra": {"Nested": [{}, 3]},
            "Items": [{"Keep": "yes"}],
        }

    @pytest.mark.parametrize(
        ("age", "kept"),
        [(48, 48), (88.9, 88), (89, "89+"), (104, "89+"), ("045Y", 45), ("006M", 0),
         ("89+", "89+"), ("old", None), (-3, None), (True, None)],
    )  # fmt: skip
    def test_kept_ages_are_whole_years_top_coded(self, age, kept):
        options = frozenset({ProfileOption.RETAIN_PATIENT_CHARACTERISTICS})
        assert scrub_sidecar({"PatientAge": age}, options, 0).get("PatientAge") == kept


class TestSidecarBytes:
    @pytest.mark.parametrize(
        ("data", "problem"),
        [
            (
                b'{"EchoTime": 0.03,\n "PatientName": }',
                r"sub-01_T1w\.json: not valid JSON \(line 2",
            ),
            (b"[1, 2]", r"sub-01_T1w\.json: a JSON sidecar must hold an object"),
            (b'{"PatientName": "\xff"}', r"sub-01_T1w\.json: not UTF-8"),
        ],
        ids=["syntax", "array", "encoding"],
    )
    def test_bad_json_is_invalid_naming_the_file(self, data, problem):
        with pytest.raises(Invalid, match=problem):
            scrub_sidecar_bytes(data, "sub-01_T1w.json", NONE, 0)

    def test_output_is_utf8_json_and_a_bom_is_accepted(self):
        data = '\ufeff{"TaskName": "rêve", "PatientName": "Doe^John"}'.encode()
        out = scrub_sidecar_bytes(data, "x.json", NONE, 0)
        assert json.loads(out.decode("utf-8")) == {"TaskName": "rêve"}
        assert out.endswith(b"}\n")


# --- property: planted identifiers never survive -----------------------------------------------


def removed_keywords() -> list[str]:
    """Every keyword the basic profile removes, blanks, replaces or remaps."""
    rules = load_profile().rules
    return sorted({r.keyword for r in rules if r.keyword and r.action in "XZDU"})


REMOVED = removed_keywords()
BENIGN = ["EchoTime", "TaskName", "SliceTiming", "Manufacturer", "Custom", "Notes"]
token = st.text("ABCDEFGHJKLMNPQRSTUVWXYZ23456789", min_size=8, max_size=8).map(
    lambda t: f"LEAK{t}"
)


@st.composite
def planted_sidecar(draw, depth: int = 0) -> dict[str, object]:
    out: dict[str, object] = {}
    for _ in range(draw(st.integers(1, 5))):
        if draw(st.booleans()):
            key = draw(st.sampled_from(REMOVED))
            out[key] = draw(st.one_of(token, st.lists(token, min_size=1, max_size=3)))
        else:
            key = draw(st.sampled_from(BENIGN)) + str(draw(st.integers(0, 9)))
            if depth < 3 and draw(st.booleans()):
                child = draw(planted_sidecar(depth + 1))
                out[key] = [child, 1] if draw(st.booleans()) else child
            else:
                out[key] = draw(st.sampled_from([0.03, "rest", [1, 2], None, True]))
    return out


ALL_OPTIONS = st.sets(st.sampled_from(list(ProfileOption))).filter(
    lambda chosen: (
        not {ProfileOption.RETAIN_FULL_DATES, ProfileOption.RETAIN_MODIFIED_DATES} <= chosen
    )
)


class TestPlantedIdentifiers:
    @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(sidecar=planted_sidecar())
    def test_no_planted_value_survives_under_the_basic_profile(self, sidecar):
        out = scrub_sidecar_bytes(json.dumps(sidecar).encode(), "x.json", NONE, OFFSET)
        assert b"LEAK" not in out

    @settings(max_examples=100, deadline=None)
    @given(sidecar=planted_sidecar(), options=ALL_OPTIONS)
    def test_benign_keys_survive_under_any_options(self, sidecar, options):
        out = scrub_sidecar(sidecar, frozenset(options), OFFSET)

        def benign(tree: object) -> object:
            if isinstance(tree, dict):
                return {k: benign(v) for k, v in tree.items() if k[:-1] in BENIGN}
            if isinstance(tree, list):
                return [benign(item) for item in tree]
            return tree

        assert benign(out) == benign(sidecar)

    @settings(max_examples=100, deadline=None)
    @given(sidecar=planted_sidecar(), options=ALL_OPTIONS)
    def test_names_and_birth_dates_never_survive_any_options(self, sidecar, options):
        for key in ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber"):
            sidecar[key] = "LEAKDIRECT1"
        out = scrub_sidecar_bytes(json.dumps(sidecar).encode(), "x.json", frozenset(options), 0)
        assert b"LEAKDIRECT1" not in out


# --- TSV ---------------------------------------------------------------------------------------

RELABEL = {"sub-01": "sub-7KQ2M9XD", "sub-02": "sub-P3W8N4RT", "ses-pre": "ses-H6J2"}


class TestParticipants:
    TEXT = (
        "participant_id\tage\tsex\thandedness\tname\tdob\n"
        "sub-01\t34.7\tF\tR\tJane Doe\t1984-02-01\n"
        "sub-02\t93\tM\tn/a\tJohn Doe\t1925-07-04\n"
    )

    def test_labels_relabelled_unknown_columns_dropped_ages_top_coded(self):
        out = scrub_tsv_text(self.TEXT, TsvKind.PARTICIPANTS, NONE, 0, RELABEL, "participants.tsv")
        assert out == (
            "participant_id\tage\tsex\thandedness\n"
            "sub-7KQ2M9XD\t34\tF\tR\n"
            "sub-P3W8N4RT\t89+\tM\tn/a\n"
        )

    def test_allowed_columns_are_kept(self):
        text = "participant_id\tgroup\nsub-01\tcontrol\r\n"
        out = scrub_tsv_text(text, TsvKind.PARTICIPANTS, NONE, 0, RELABEL, keep_columns=["group"])
        assert out == "participant_id\tgroup\nsub-7KQ2M9XD\tcontrol\n"

    @pytest.mark.parametrize(
        ("text", "problem"),
        [
            ("participant_id\tage\nsub-01\t3\nsub-02\n", r"participants\.tsv: line 3: 1 cells"),
            ("participant_id\tage\nsub-01\t3\n\nsub-02\t4\n", r"participants\.tsv: line 3"),
            ("participant_id\tage\nsub-09\t3\n", r"line 2: participant_id has no pseudonym"),
            ("participant_id\tage\nsub-01\tforty\n", r"line 2: age must be a number"),
            ("subject\tage\nsub-01\t3\n", r"line 1: no `participant_id` column"),
            ("participant_id\tage\tage\nsub-01\t3\t4\n", r"line 1: a column name appears twice"),
            ("", r"participants\.tsv: empty"),
        ],
        ids=["ragged", "blank-line", "no-pseudonym", "bad-age", "no-id", "dup", "empty"],
    )
    def test_bad_tables_are_invalid_naming_file_and_line(self, text, problem):
        with pytest.raises(Invalid, match=problem):
            scrub_tsv_text(text, TsvKind.PARTICIPANTS, NONE, 0, RELABEL, "participants.tsv")

    def test_error_message_never_quotes_the_label(self):
        with pytest.raises(Invalid) as raised:
            scrub_tsv_text("participant_id\nsub-JaneDoe\n", TsvKind.PARTICIPANTS, NONE, 0, {})
        assert "JaneDoe" not in raised.value.message


def test_tables_already_written_with_pseudonyms_keep_their_labels():
    text = "filename\tacq_time\nanat/sub-7KQ2M9XD_T1w.nii.gz\t2018-09-18T12:24:58\n"
    options = frozenset({ProfileOption.RETAIN_MODIFIED_DATES})
    out = scrub_tsv_text(text, "scans", options, OFFSET, name="sub-7KQ2M9XD_scans.tsv")
    assert out == "filename\tacq_time\nanat/sub-7KQ2M9XD_T1w.nii.gz\t2018-08-09T12:24:58\n"


class TestScans:
    TEXT = (
        "filename\tacq_time\toperator\n"
        "anat/sub-01_ses-pre_T1w.nii.gz\t2018-09-18T12:24:58\tDr Smith\n"
        "func/sub-01_ses-pre_task-rest_bold.nii.gz\tn/a\tDr Smith\n"
    )

    def test_filenames_relabelled_and_acq_time_shifted(self):
        options = frozenset({ProfileOption.RETAIN_MODIFIED_DATES})
        out = scrub_tsv_text(self.TEXT, TsvKind.SCANS, options, OFFSET, RELABEL, "x_scans.tsv")
        assert out == (
            "filename\tacq_time\n"
            "anat/sub-7KQ2M9XD_ses-H6J2_T1w.nii.gz\t2018-08-09T12:24:58\n"
            "func/sub-7KQ2M9XD_ses-H6J2_task-rest_bold.nii.gz\tn/a\n"
        )

    def test_acq_time_is_kept_with_full_dates_and_dropped_without_a_date_option(self):
        full = scrub_tsv_text(
            self.TEXT, TsvKind.SCANS, frozenset({ProfileOption.RETAIN_FULL_DATES}), OFFSET, RELABEL
        )
        assert "2018-09-18T12:24:58" in full
        none = scrub_tsv_text(self.TEXT, TsvKind.SCANS, NONE, OFFSET, RELABEL)
        assert none.splitlines()[0] == "filename"
        assert "2018" not in none

    def test_folder_labels_are_relabelled_too(self):
        text = "filename\nsub-01/ses-pre/anat/sub-01_ses-pre_T1w.nii.gz\n"
        out = scrub_tsv_text(text, TsvKind.SCANS, NONE, 0, RELABEL)
        assert out.splitlines()[1] == "sub-7KQ2M9XD/ses-H6J2/anat/sub-7KQ2M9XD_ses-H6J2_T1w.nii.gz"

    @pytest.mark.parametrize(
        ("text", "problem"),
        [
            (
                "filename\nanat/sub-03_T1w.nii.gz\n",
                "line 2: filename has a label with no pseudonym",
            ),
            ("filename\tacq_time\nanat/sub-01_T1w.nii.gz\t18/09/2018\n", "line 2: acq_time"),
        ],
    )
    def test_bad_rows_are_invalid(self, text, problem):
        options = frozenset({ProfileOption.RETAIN_MODIFIED_DATES})
        with pytest.raises(Invalid, match=rf"sub-01_scans\.tsv: {problem}"):
            scrub_tsv_text(text, TsvKind.SCANS, options, 0, RELABEL, "sub-01_scans.tsv")


class TestSessions:
    def test_session_labels_relabelled_and_acq_time_shifted(self):
        text = "session_id\tacq_time\tsite\nses-pre\t2018-09-18T08:00:00Z\tNIH\n"
        options = frozenset({ProfileOption.RETAIN_MODIFIED_DATES})
        out = scrub_tsv_text(text, TsvKind.SESSIONS, options, OFFSET, RELABEL)
        assert out == "session_id\tacq_time\nses-H6J2\t2018-08-09T08:00:00Z\n"


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("participants.tsv", TsvKind.PARTICIPANTS),
        ("sub-01_sessions.tsv", TsvKind.SESSIONS),
        ("sub-01_ses-pre_scans.tsv", TsvKind.SCANS),
        ("sub-01_task-rest_events.tsv", None),
    ],
)
def test_tsv_kind_is_told_by_the_file_name(name, kind):
    assert tsv_kind_for(name) is kind


@settings(max_examples=100, deadline=None)
@given(
    labels=st.lists(
        st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=10),
        min_size=1,
        max_size=6,
        unique=True,
    )
)
def test_no_internal_label_survives_a_participants_table(labels):
    relabel = {f"sub-{label}": f"sub-P{index:07d}" for index, label in enumerate(labels)}
    rows = "".join(f"sub-{label}\tsub-{label} notes\t30\n" for label in labels)
    out = scrub_tsv_text(f"participant_id\tnotes\tage\n{rows}", TsvKind.PARTICIPANTS, NONE, 0,
                         relabel)  # fmt: skip
    cells = {cell for line in out.splitlines()[1:] for cell in line.split("\t")}
    assert cells.isdisjoint(relabel)
    assert [line.split("\t")[0] for line in out.splitlines()[1:]] == list(relabel.values())
