"""Date shifting: one offset per subject keeps every interval; invalid dates are blanked; the
basic profile removes dates, Full Dates keeps them, Modified Dates shifts them."""

import shutil
from datetime import date, timedelta
from pathlib import Path

import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurodepot.deid.date_shift import shift_da, shift_dt, shift_values
from neurodepot.deid.dicom_headers import deidentify_dataset, deidentify_file
from neurodepot.deid.profile import ProfileOption
from tests.deid.conftest import SIEMENS_SERIES, instance, make_keys, make_recipe, write

MODIFIED = ProfileOption.RETAIN_MODIFIED_DATES
FULL = ProfileOption.RETAIN_FULL_DATES
dates = st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 12, 31))
offsets = st.integers(-3650, 3650)


def _da(day: date) -> str:
    return day.strftime("%Y%m%d")


def _parse(text: str) -> date:
    return date(int(text[:4]), int(text[4:6]), int(text[6:8]))


class TestValues:
    @pytest.mark.parametrize(
        ("value", "days", "shifted"),
        [
            ("20180918", 0, "20180918"),
            ("20180918", -137, "20180504"),
            ("20200228", 1, "20200229"),  # leap year
            ("20191231", 1, "20200101"),
            ("20180918 ", 10, "20180928"),  # padding
            ("", 10, ""),
        ],
    )
    def test_da_values_move_by_whole_days(self, value, days, shifted):
        assert shift_da(value, days) == shifted

    @pytest.mark.parametrize(
        "value", ["2018-09-18", "20181332", "20180230", "abc", "2018091", "201809180", "0000"]
    )
    def test_invalid_da_values_are_refused(self, value):
        assert shift_da(value, 5) is None

    @pytest.mark.parametrize(
        ("value", "shifted"),
        [
            ("20180918123456.123456+0100", "20180928123456.123456+0100"),
            ("20180918123456", "20180928123456"),
            ("201809181234", "201809281234"),
            ("20180918-0500", "20180928-0500"),
            ("201809", "201809"),  # month precision: moved from the 1st, written back
            ("2018", "2018"),
            ("20181225", "20190104"),
        ],
    )
    def test_dt_values_keep_their_time_precision_and_timezone(self, value, shifted):
        assert shift_dt(value, 10) == shifted

    @pytest.mark.parametrize(
        "value", ["20180918250000", "20180918126000", "20180918123456+2500", "2018-09-18T12:00",
                  "20180918123456.1234567", "2018091812", "20180918123456+01"],
    )  # fmt: skip
    def test_invalid_dt_values_are_refused(self, value):
        hour_only = value == "2018091812"  # HH alone is valid DT precision
        assert (shift_dt(value, 1) is None) != hour_only

    def test_multiple_values_shift_together_or_not_at_all(self):
        assert shift_values("20180101\\20180201", "DA", 1) == "20180102\\20180202"
        assert shift_values("20180101\\nonsense", "DA", 1) is None
        assert shift_values("120000", "TM", 1) == "120000"

    @settings(max_examples=50, deadline=None)
    @given(first=dates, second=dates, days=offsets)
    def test_intervals_are_kept(self, first, second, days):
        a, b = shift_da(_da(first), days), shift_da(_da(second), days)
        assert a is not None and b is not None
        assert _parse(b) - _parse(a) == second - first
        assert _parse(a) - first == timedelta(days=days)


class TestInHeaders:
    def _dated(self, **attributes):
        return instance(
            StudyDate="20180918",
            AcquisitionDateTime="20180918122458.1025+0200",
            AcquisitionTime="122458.1025",
            PatientBirthDate="19700101",
            InstanceCreationDate="20180918",
            StudyUpdateDateTime="20180919080000",  # DT not in the table
            **attributes,
        )

    def test_the_basic_profile_removes_or_blanks_every_date(self):
        ds = self._dated()
        deidentify_dataset(ds, make_recipe(), make_keys())
        assert ds.StudyDate == "" and ds.AcquisitionDateTime == "" and ds.PatientBirthDate == ""
        assert ds.AcquisitionTime == ""  # X/Z
        assert ds.InstanceCreationDate == "19000101"  # X/D: a dummy, not the date
        assert ds.StudyUpdateDateTime == ""  # unlisted dates are blanked too
        assert ds.LongitudinalTemporalInformationModified == "REMOVED"

    def test_modified_dates_shift_dates_and_keep_times(self):
        ds = self._dated()
        deidentify_dataset(ds, make_recipe(MODIFIED), make_keys(offset=-30))
        assert ds.StudyDate == "20180819"
        assert ds.AcquisitionDateTime == "20180819122458.1025+0200"
        assert ds.AcquisitionTime == "122458.1025"
        assert ds.InstanceCreationDate == "20180819"
        assert ds.StudyUpdateDateTime == "20180820080000"
        assert ds.PatientBirthDate == ""  # the table blanks it under every option
        assert ds.LongitudinalTemporalInformationModified == "MODIFIED"
        assert "113107" in {item.CodeValue for item in ds.DeidentificationMethodCodeSequence}

    def test_full_dates_keep_dates(self):
        ds = self._dated()
        deidentify_dataset(ds, make_recipe(FULL), make_keys())
        assert ds.StudyDate == "20180918" and ds.StudyUpdateDateTime == "20180919080000"
        assert ds.AcquisitionDateTime == "20180918122458.1025+0200"
        assert ds.LongitudinalTemporalInformationModified == "UNMODIFIED"

    @pytest.mark.parametrize("options", [(MODIFIED,), (FULL,)])
    def test_invalid_dates_are_blanked_never_kept(self, options, tmp_path: Path):
        path = write(self._dated(), tmp_path / "in.dcm")
        raw = path.read_bytes().replace(b"20180918", b"18/09/18")  # every StudyDate-like value
        path.write_bytes(raw)
        out = deidentify_file(path, tmp_path / "out.dcm", make_recipe(*options), make_keys())
        ds = pydicom.dcmread(out.path)
        assert ds.StudyDate == "" and ds.InstanceCreationDate == ""
        assert ds.AcquisitionDateTime == ""
        assert b"18/09/18" not in out.path.read_bytes()

    def test_dates_in_nested_sequences_shift_too(self):
        item = pydicom.Dataset()
        item.ObservationDateTime = "20180918100000"
        ds = instance(ContentSequence=[item])
        deidentify_dataset(ds, make_recipe(MODIFIED, ProfileOption.CLEAN_STRUCTURED_CONTENT),
                           make_keys(offset=1))  # fmt: skip
        assert ds.ContentSequence[0].ObservationDateTime == "20180919100000"

    def test_two_files_of_a_subject_keep_their_interval(self, tmp_path: Path):
        source = next(iter(sorted(SIEMENS_SERIES.glob("*.dcm"))))
        later = pydicom.dcmread(shutil.copy(source, tmp_path / "later.dcm"))
        later.StudyDate = later.SeriesDate = later.AcquisitionDate = "20190302"
        later.save_as(tmp_path / "later.dcm")
        keys = make_keys(offset=-4000)
        first = deidentify_file(source, tmp_path / "a.dcm", make_recipe(MODIFIED), keys)
        second = deidentify_file(tmp_path / "later.dcm", tmp_path / "b.dcm", make_recipe(MODIFIED),
                                 keys)  # fmt: skip
        a, b = pydicom.dcmread(first.path), pydicom.dcmread(second.path)
        original = date(2019, 3, 2) - date(2018, 9, 18)
        for keyword in ("StudyDate", "SeriesDate", "AcquisitionDate"):
            assert _parse(getattr(b, keyword)) - _parse(getattr(a, keyword)) == original
        assert _parse(a.StudyDate) == date(2018, 9, 18) - timedelta(days=4000)
        assert a.AcquisitionTime == pydicom.dcmread(source).AcquisitionTime
        assert b"20180918" not in first.path.read_bytes()
