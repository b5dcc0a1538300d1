"""UID remapping: valid syntax under the project's root, the same output for the same input,
and references across a whole study that still resolve after de-identification."""

import shutil
from pathlib import Path

import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom import Dataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage

from neurodepot.deid.dicom_headers import DicomRecipe, deidentify_file
from neurodepot.deid.profile import ProfileOption
from neurodepot.deid.uid_remap import (
    MAX_UID_LENGTH,
    is_valid_uid,
    remap_uid,
    validate_uid_root,
)
from neurodepot.errors import Invalid
from tests.deid.conftest import (
    GE_SERIES,
    SIEMENS_SERIES,
    UID_KEY,
    UID_ROOT,
    instance,
    make_keys,
    make_recipe,
    write,
)

uid_components = st.one_of(st.just(0), st.integers(1, 10**12))
uids = st.lists(uid_components, min_size=2, max_size=12).map(lambda c: ".".join(map(str, c)))
roots = st.lists(st.integers(0, 99999), min_size=1, max_size=5).map(
    lambda c: ".".join(map(str, [2, *c]))
)


class TestRoot:
    @pytest.mark.parametrize("root", ["2.25", "1.2.826.0.1.3680043.10.543", "0.1", "2"])
    def test_valid_roots_are_accepted(self, root):
        assert validate_uid_root(root) == root

    @pytest.mark.parametrize(
        ("root", "problem"),
        [
            ("", "not a valid UID"),
            ("abc", "not a valid UID"),
            ("1..2", "not a valid UID"),
            ("1.02.3", "not a valid UID"),
            ("2.25.", "not a valid UID"),
            (" 2.25", "not a valid UID"),
            ("3.4.5", "first number must be 0, 1 or 2"),
            ("1.2." + "1234567890." * 4 + "1", "at most 39"),
        ],
    )
    def test_invalid_roots_say_why(self, root, problem):
        with pytest.raises(Invalid, match=problem):
            validate_uid_root(root)

    def test_a_recipe_with_a_bad_root_or_key_is_refused(self):
        with pytest.raises(Invalid, match="not a valid UID"):
            DicomRecipe(frozenset(), "1.2.x", UID_KEY)
        with pytest.raises(Invalid, match="at least 16 random bytes"):
            DicomRecipe(frozenset(), UID_ROOT, b"short")


class TestRemap:
    @settings(max_examples=50, deadline=None)
    @given(uid=uids, root=roots)
    def test_remapped_uids_are_valid_and_fit_64_characters(self, uid, root):
        new = remap_uid(uid, UID_KEY, root)
        assert new.startswith(root + ".")
        assert is_valid_uid(new) and len(new) <= MAX_UID_LENGTH
        assert len(new) - len(root) - 1 >= 24  # digits enough to stay unique

    @settings(max_examples=50, deadline=None)
    @given(a=uids, b=uids)
    def test_same_input_same_output_and_different_inputs_differ(self, a, b):
        assert remap_uid(a, UID_KEY, UID_ROOT) == remap_uid(a, UID_KEY, UID_ROOT)
        if a != b:
            assert remap_uid(a, UID_KEY, UID_ROOT) != remap_uid(b, UID_KEY, UID_ROOT)

    def test_another_project_key_gives_other_uids(self):
        assert remap_uid("1.2.3", UID_KEY, UID_ROOT) != remap_uid("1.2.3", b"\x01" * 32, UID_ROOT)

    def test_padding_is_not_part_of_the_uid(self):
        assert remap_uid("1.2.3\x00", UID_KEY, UID_ROOT) == remap_uid("1.2.3", UID_KEY, UID_ROOT)

    def test_the_original_does_not_show_in_the_new_uid(self):
        original = "1.3.12.2.1107.5.2.19.45160.2018091812250026676990470"
        assert "20180918" not in remap_uid(original, UID_KEY, UID_ROOT)[len(UID_ROOT) :]


def _deidentify_tree(src: Path, dst: Path, recipe: DicomRecipe) -> dict[Path, Path]:
    done = {}
    for index, path in enumerate(sorted(src.rglob("*.dcm"))):
        out = dst / f"{index:05d}.dcm"
        deidentify_file(path, out, recipe, make_keys())
        done[path] = out
    return done


class TestStudy:
    def test_uids_stay_consistent_across_a_whole_study(self, tmp_path: Path):
        done = _deidentify_tree(GE_SERIES.parent, tmp_path, make_recipe())
        before = [pydicom.dcmread(p, stop_before_pixels=True) for p in done]
        after = [pydicom.dcmread(p, stop_before_pixels=True) for p in done.values()]
        mapping: dict[str, str] = {}
        for old, new in zip(before, after, strict=True):
            for keyword in ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID",
                            "FrameOfReferenceUID"):  # fmt: skip
                original, remapped = getattr(old, keyword), getattr(new, keyword)
                assert mapping.setdefault(original, remapped) == remapped
                assert remapped == remap_uid(original, UID_KEY, UID_ROOT) != original
            assert new.file_meta.MediaStorageSOPInstanceUID == new.SOPInstanceUID
            assert new.SOPClassUID == old.SOPClassUID == MRImageStorage  # well-known: kept
            assert new.file_meta.TransferSyntaxUID == old.file_meta.TransferSyntaxUID
            for ref_old, ref_new in zip(old.ReferencedImageSequence,
                                        new.ReferencedImageSequence, strict=True):  # fmt: skip
                assert ref_new.ReferencedSOPClassUID == ref_old.ReferencedSOPClassUID
                expected = remap_uid(ref_old.ReferencedSOPInstanceUID, UID_KEY, UID_ROOT)
                assert ref_new.ReferencedSOPInstanceUID == expected
        assert len({a.StudyInstanceUID for a in after}) == 1
        assert len({a.SeriesInstanceUID for a in after}) == 4
        assert len({a.SOPInstanceUID for a in after}) == len(after) == 600

    def test_a_reference_resolves_to_the_remapped_instance_it_names(self, tmp_path: Path):
        source = shutil.copy(next(iter(sorted(SIEMENS_SERIES.glob("*.dcm")))), tmp_path / "a.dcm")
        referenced = pydicom.dcmread(source)
        item = Dataset()
        item.ReferencedSOPClassUID = referenced.SOPClassUID
        item.ReferencedSOPInstanceUID = referenced.SOPInstanceUID
        item.ReferencedFrameOfReferenceUID = referenced.FrameOfReferenceUID
        nested = Dataset()
        nested.ReferencedImageSequence = [item]  # two levels deep
        referring = instance("1.2.826.0.1.3680043.8.498.9", SourceImageSequence=[item],
                             ReferencedSeriesSequence=[nested])  # fmt: skip
        write(referring, tmp_path / "b.dcm")
        out_a = deidentify_file(source, tmp_path / "a.out", make_recipe(), make_keys())
        out_b = deidentify_file(tmp_path / "b.dcm", tmp_path / "b.out", make_recipe(), make_keys())
        a = pydicom.dcmread(out_a.path)
        b = pydicom.dcmread(out_b.path)
        assert out_a.sop_instance_uid == a.SOPInstanceUID
        for ref in (b.SourceImageSequence[0],
                    b.ReferencedSeriesSequence[0].ReferencedImageSequence[0]):  # fmt: skip
            assert ref.ReferencedSOPInstanceUID == a.SOPInstanceUID
            assert ref.ReferencedFrameOfReferenceUID == a.FrameOfReferenceUID

    def test_retain_uids_keeps_them_all(self, tmp_path: Path):
        source = next(iter(sorted(SIEMENS_SERIES.glob("*.dcm"))))
        out = deidentify_file(source, tmp_path / "x.dcm", make_recipe(ProfileOption.RETAIN_UIDS),
                              make_keys())  # fmt: skip
        old, new = pydicom.dcmread(source), pydicom.dcmread(out.path)
        assert new.SOPInstanceUID == old.SOPInstanceUID == new.file_meta.MediaStorageSOPInstanceUID
        assert new.SeriesInstanceUID == old.SeriesInstanceUID
        assert new.SourceImageSequence[0].ReferencedSOPInstanceUID == (
            old.SourceImageSequence[0].ReferencedSOPInstanceUID
        )
        assert "113110" in {item.CodeValue for item in new.DeidentificationMethodCodeSequence}

    def test_an_implicit_vr_file_is_remapped_too(self, tmp_path: Path):
        ds = instance()
        ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2"
        path = tmp_path / "implicit.dcm"
        ds.save_as(path, enforce_file_format=True)
        out = deidentify_file(path, tmp_path / "out.dcm", make_recipe(), make_keys())
        new = pydicom.dcmread(out.path)
        assert new.SOPInstanceUID == remap_uid(ds.SOPInstanceUID, UID_KEY, UID_ROOT)
        assert new.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2"
        assert new.file_meta.TransferSyntaxUID != ExplicitVRLittleEndian
