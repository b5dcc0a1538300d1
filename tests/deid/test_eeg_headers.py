"""EEG/MEG header anonymisation on recordings written here in each format and read back by MNE.

The MNE wheel ships no test recordings, so each test writes a small one (EDF/BDF and
BrainVision byte by byte after their specifications, FIF through MNE, EEGLAB through scipy)
with identifying strings planted in every header field a person could type into.
"""

import tracemalloc
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import mne
import numpy as np
import pytest
import scipy.io

from neurodepot.deid.eeg_headers import anonymize_eeg
from neurodepot.errors import Invalid

PSEUDONYM = "sub-7KQ2M9XD"
OFFSET = -123
PLANTED = ("JohnDoe", "Doe_John", "MCH-0234567", "Haagse", "Telemetry03", "Dr Smith", "S0042")
START = datetime(2018, 9, 18, 12, 24, 58)


def leaks(folder: Path) -> dict[str, list[str]]:
    """Every planted string found, byte for byte, in any file under `folder` (or its names)."""
    found = {}
    for path in (p for p in folder.rglob("*") if p.is_file()):
        content = path.read_bytes() + path.name.encode()
        hits = [word for word in PLANTED if word.encode() in content]
        hits += [word for word in PLANTED if word.encode("utf-16-le") in content]
        if hits:
            found[path.name] = hits
    return found


def signal(n_channels: int, n_samples: int) -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.integers(-2000, 2000, size=(n_channels, n_samples), dtype=np.int32)


# --- EDF / BDF ---------------------------------------------------------------------------------


def write_edf(
    path: Path,
    *,
    bdf: bool = False,
    plus: bool = False,
    start: datetime = START,
    records: int = 5,
    annotation: str = "",
) -> np.ndarray:
    """A 2-channel EDF(+)/BDF(+) of `records` one-second records at 64 Hz; returns its samples."""
    rate, width = 64, 3 if bdf else 2
    data = signal(2, rate * records)
    labels = ["Fz", "Cz"]
    annotation_bytes = 60
    if plus:
        labels.append("BDF Annotations" if bdf else "EDF Annotations")
        patient = "MCH-0234567 F 02-MAY-1951 Haagse_JohnDoe"
        recording = f"Startdate {START:%d}-{START:%b}-{START:%Y} ADM-S0042 Dr_Smith Telemetry03"
        recording = recording.upper().replace("STARTDATE", "Startdate")
        reserved = "BDF+C" if bdf else "EDF+C"
    else:
        patient, recording, reserved = "JohnDoe 1951 Haagse", "Dr Smith Telemetry03", "24BIT"
    ns = len(labels)
    header = b"\xffBIOSEMI" if bdf else b"0       "
    fixed = (
        f"{patient:<80}{recording:<80}{start:%d.%m.%y}{start:%H.%M.%S}"
        f"{256 * (ns + 1):<8}{reserved if bdf or plus else '':<44}{records:<8}{1:<8}{ns:<4}"
    )
    header += fixed.encode("ascii")
    digital = 2**23 if bdf else 2**15
    per_signal = [
        [f"{label:<16}" for label in labels],
        [f"{'AgAgCl electrode':<80}"] * ns,
        [f"{'uV':<8}"] * ns,
        [f"{-digital:<8}"] * ns,
        [f"{digital - 1:<8}"] * ns,
        [f"{-digital:<8}"] * ns,
        [f"{digital - 1:<8}"] * ns,
        [f"{'HP:0.1Hz':<80}"] * ns,
        [f"{rate:<8}"] * 2 + ([f"{annotation_bytes // width:<8}"] if plus else []),
        [" " * 32] * ns,
    ]
    header += "".join("".join(field) for field in per_signal).encode("ascii")
    body = bytearray()
    for record in range(records):
        chunk = data[:, record * rate : (record + 1) * rate]
        for channel in chunk:
            body += b"".join(int(v).to_bytes(width, "little", signed=True) for v in channel)
        if plus:
            tal = f"+{record}\x14\x14\x00".encode()
            if record == 1 and annotation:
                tal += f"+1.5\x150.5\x14{annotation}\x14\x00".encode()
            body += tal.ljust(annotation_bytes, b"\x00")
    path.write_bytes(header + bytes(body))
    return data


def read_edf(path: Path) -> mne.io.BaseRaw:
    reader = mne.io.read_raw_bdf if path.suffix == ".bdf" else mne.io.read_raw_edf
    return reader(path, preload=True, verbose="error")


class TestEdf:
    @pytest.mark.parametrize("bdf", [False, True], ids=["edf", "bdf"])
    @pytest.mark.parametrize("plus", [False, True], ids=["plain", "plus"])
    def test_identifiers_go_and_signal_and_date_survive(self, tmp_path, bdf, plus):
        suffix = ".bdf" if bdf else ".edf"
        src, out = tmp_path / f"JohnDoe{suffix}", tmp_path / "out"
        out.mkdir()
        data = write_edf(src, bdf=bdf, plus=plus, annotation="stimulus A")
        assert leaks(tmp_path)  # the planted strings are there to find
        dst = out / f"{PSEUDONYM}_task-rest_eeg{suffix}"
        anonymize_eeg(src, dst, PSEUDONYM, OFFSET)

        assert leaks(out) == {}
        assert [p.name for p in out.iterdir()] == [dst.name]
        before, after = read_edf(src), read_edf(dst)
        np.testing.assert_array_equal(after.get_data(), before.get_data())
        header = 256 * (4 if plus else 3)
        assert dst.read_bytes()[header:] == src.read_bytes()[header:]  # records byte-exact
        assert after.info["meas_date"] - before.info["meas_date"] == timedelta(days=OFFSET)
        assert after.info["subject_info"]["his_id"] == PSEUDONYM
        assert "birthday" not in after.info["subject_info"]
        assert after.info["ch_names"] == before.info["ch_names"]
        np.testing.assert_array_equal(
            np.round(data[0, :5]), np.round(after.get_data()[0, :5] * 1e6)
        )
        if plus:
            assert list(after.annotations.description) == ["stimulus A"]

    def test_edf_plus_fields_hold_only_pseudonym_and_shifted_date(self, tmp_path):
        src, dst = tmp_path / "in.edf", tmp_path / "out.edf"
        write_edf(src, plus=True)
        anonymize_eeg(src, dst, PSEUDONYM, OFFSET)
        head = dst.read_bytes()[:256].decode("ascii")
        moved = START.date() + timedelta(days=OFFSET)
        assert head[8:88].rstrip() == f"{PSEUDONYM} X X X"
        month = moved.strftime("%b").upper()
        assert head[88:168].rstrip() == f"Startdate {moved.day:02d}-{month}-{moved.year} X X X"
        assert head[168:176] == f"{moved:%d.%m.%y}"
        assert head[176:184] == f"{START:%H.%M.%S}"  # time of day kept
        assert head[192:197] == "EDF+C"

    def test_shift_outside_edf_years_is_refused(self, tmp_path):
        src, dst = tmp_path / "in.edf", tmp_path / "out.edf"
        write_edf(src, start=datetime(1985, 3, 1, 10, 0, 0))
        with pytest.raises(Invalid, match=r"in\.edf.*1985-2084"):
            anonymize_eeg(src, dst, PSEUDONYM, -365)
        assert list(tmp_path.iterdir()) == [src]

    @pytest.mark.parametrize(
        ("damage", "problem"),
        [
            (lambda b: b[:200], "truncated EDF header"),
            (lambda b: b[: 256 + 100], "truncated EDF header"),
            (lambda b: b[:-10], "truncated EDF data"),
            (lambda b: b"1       " + b[8:], "not an EDF file"),
            (lambda b: b[:168] + b"18.xx.18" + b[176:], "malformed EDF header"),
            (lambda b: b[:252] + b"abcd" + b[256:], "malformed EDF header"),
        ],
        ids=["short-fixed", "short-signals", "short-data", "version", "date", "count"],
    )
    def test_malformed_file_is_invalid_naming_it_and_leaves_nothing(
        self, tmp_path, damage, problem
    ):
        src, out = tmp_path / "broken.edf", tmp_path / "out"
        out.mkdir()
        write_edf(src)
        src.write_bytes(damage(src.read_bytes()))
        with pytest.raises(Invalid, match=rf"broken\.edf: {problem}"):
            anonymize_eeg(src, out / "x.edf", PSEUDONYM, OFFSET)
        assert list(out.iterdir()) == []


# --- BrainVision -------------------------------------------------------------------------------

VHDR = """Brain Vision Data Exchange Header File Version 1.0
; Data created by the Vision Recorder for JohnDoe

[Common Infos]
Codepage=UTF-8
DataFile=JohnDoe_visit1.eeg
MarkerFile=JohnDoe_visit1.vmrk
DataFormat=BINARY
; Data orientation: MULTIPLEXED=ch1,pt1, ch2,pt1 ...
DataOrientation=MULTIPLEXED
NumberOfChannels=2
; Sampling interval in microseconds
SamplingInterval=4000

[Binary Infos]
BinaryFormat=INT_16

[Channel Infos]
Ch1=Fp1,,0.1,µV
Ch2=Cz,,0.1,µV

[Comment]

A m p l i f i e r  S e t u p
============================
Number of channels: 2
Sampling Rate [Hz]: 250
Sampling Interval [µS]: 4000

Channels
--------
#     Name      Phys. Chn.    Resolution / Unit   Low Cutoff [s]   High Cutoff [Hz]   Notch [Hz]
1     Fp1         1                0.1 µV             10              250              Off
2     Cz          2                0.1 µV             10              250              Off

Subject: Doe_John, referred by Dr Smith
S o f t w a r e  F i l t e r s
==============================
Disabled

Impedance [kOhm] at 12:20:01 :
Fp1:          2
Cz:           5

[User Infos]
Operator=Dr Smith
"""

VMRK = f"""Brain Vision Data Exchange Marker File, Version 1.0
; written for JohnDoe

[Common Infos]
Codepage=UTF-8
DataFile=JohnDoe_visit1.eeg

[Marker Infos]
Mk1=New Segment,,1,1,0,{START:%Y%m%d%H%M%S}000000
Mk2=Stimulus,S  1,100,1,0
Mk3=Comment,Doe_John fell asleep,300,1,0
Mk4=Response,R  2,400,1,0
"""


def write_brainvision(folder: Path, vhdr: str = VHDR, vmrk: str = VMRK) -> tuple[Path, np.ndarray]:
    data = signal(2, 1000).astype("<i2")
    (folder / "JohnDoe_visit1.eeg").write_bytes(data.T.tobytes())
    (folder / "JohnDoe_visit1.vmrk").write_text(vmrk, encoding="utf-8")
    header = folder / "JohnDoe_visit1.vhdr"
    header.write_text(vhdr, encoding="utf-8")
    return header, data


class TestBrainVision:
    def test_trio_is_renamed_scrubbed_and_still_reads(self, tmp_path):
        src_dir, out = tmp_path / "in", tmp_path / "out"
        src_dir.mkdir()
        out.mkdir()
        src, _ = write_brainvision(src_dir)
        assert leaks(src_dir)
        dst = out / f"{PSEUDONYM}_task-rest_eeg.vhdr"
        anonymize_eeg(src, dst, PSEUDONYM, OFFSET)

        assert sorted(p.name for p in out.iterdir()) == sorted(
            f"{PSEUDONYM}_task-rest_eeg{ext}" for ext in (".eeg", ".vhdr", ".vmrk")
        )
        assert leaks(out) == {}
        before = mne.io.read_raw_brainvision(src, preload=True, verbose="error")
        after = mne.io.read_raw_brainvision(dst, preload=True, verbose="error")
        np.testing.assert_array_equal(after.get_data(), before.get_data())
        assert dst.with_suffix(".eeg").read_bytes() == (src_dir / "JohnDoe_visit1.eeg").read_bytes()
        assert after.info["meas_date"] - before.info["meas_date"] == timedelta(days=OFFSET)
        # the Recorder's own tables survive: MNE still finds the filter settings
        assert after.info["highpass"] == pytest.approx(before.info["highpass"])
        assert after.info["lowpass"] == pytest.approx(before.info["lowpass"])
        assert before.info["highpass"] > 0
        # the Comment marker keeps its place, not its text
        assert list(after.annotations.description) == ["Stimulus/S  1", "Comment/", "Response/R  2"]
        np.testing.assert_allclose(after.annotations.onset, before.annotations.onset)

    def test_missing_data_file_is_invalid(self, tmp_path):
        src, _ = write_brainvision(tmp_path)
        (tmp_path / "JohnDoe_visit1.eeg").unlink()
        out = tmp_path / "out"
        out.mkdir()
        with pytest.raises(Invalid, match=r"JohnDoe_visit1\.vhdr: its data file .* is missing"):
            anonymize_eeg(src, out / "x.vhdr", PSEUDONYM, OFFSET)
        assert list(out.iterdir()) == []

    @pytest.mark.parametrize(
        ("vhdr", "vmrk", "problem"),
        [
            ("Not a header\n" + VHDR, VMRK, r"JohnDoe_visit1\.vhdr: not a BrainVision header"),
            (VHDR.replace("DataFile=JohnDoe_visit1.eeg\n", ""), VMRK, "no DataFile="),
            (VHDR, VMRK.replace("Mk4=Response,R  2,400,1,0", "Mk4=Response"), "malformed marker"),
            (VHDR, VMRK.replace("000000\n", "0000\n").replace("0918", "0931"), "New Segment"),
        ],
        ids=["first-line", "no-datafile", "marker", "segment-date"],
    )
    def test_malformed_text_is_invalid_and_leaves_nothing(self, tmp_path, vhdr, vmrk, problem):
        src, _ = write_brainvision(tmp_path, vhdr, vmrk)
        out = tmp_path / "out"
        out.mkdir()
        with pytest.raises(Invalid, match=problem):
            anonymize_eeg(src, out / "x.vhdr", PSEUDONYM, OFFSET)
        assert list(out.iterdir()) == []


# --- FIF ---------------------------------------------------------------------------------------


def write_fif(path: Path) -> mne.io.RawArray:
    info = mne.create_info(["EEG 001", "EEG 002", "STI 014"], 200.0, ["eeg", "eeg", "stim"])
    raw = mne.io.RawArray(signal(3, 2000) * 1e-6, info, verbose="error")
    raw.set_meas_date(START.replace(tzinfo=UTC))
    with raw.info._unlock():
        raw.info["subject_info"] = {
            "id": 42,
            "his_id": "MCH-0234567",
            "last_name": "Doe_John",
            "first_name": "JohnDoe",
            "birthday": date(1951, 5, 2),
            "sex": 2,
            "hand": 1,
        }
        raw.info["experimenter"] = "Dr Smith"
        raw.info["description"] = "JohnDoe resting state"
        raw.info["proj_name"] = "S0042"
    raw.save(path, overwrite=True, verbose="error")
    return raw


class TestFif:
    def test_subject_info_goes_dates_shift_and_data_survive(self, tmp_path):
        src, out = tmp_path / "JohnDoe_raw.fif", tmp_path / "out"
        out.mkdir()
        write_fif(src)
        assert leaks(tmp_path)
        dst = out / f"{PSEUDONYM}_task-rest_meg.fif"
        anonymize_eeg(src, dst, PSEUDONYM, OFFSET)

        assert [p.name for p in out.iterdir()] == [dst.name]
        assert leaks(out) == {}
        before = mne.io.read_raw_fif(src, preload=True, verbose="error")
        after = mne.io.read_raw_fif(dst, preload=True, verbose="error")
        np.testing.assert_array_equal(after.get_data(), before.get_data())
        assert after.info["meas_date"] - before.info["meas_date"] == timedelta(days=OFFSET)
        assert after.info["subject_info"] == {"his_id": PSEUDONYM}
        assert after.info["experimenter"] != "Dr Smith"

    def test_not_a_fif_file_is_invalid(self, tmp_path):
        src = tmp_path / "bogus_raw.fif"
        src.write_bytes(b"this is not a FIF file at all" * 10)
        out = tmp_path / "out"
        out.mkdir()
        with pytest.raises(Invalid, match=r"bogus_raw\.fif: not a readable FIF recording"):
            anonymize_eeg(src, out / "x_meg.fif", PSEUDONYM, OFFSET)
        assert list(out.iterdir()) == []


# --- EEGLAB ------------------------------------------------------------------------------------


def eeglab_fields(data: np.ndarray | str) -> dict[str, object]:
    n_channels, n_samples = 2, 500
    chanlocs = np.zeros((1, n_channels), dtype=[("labels", object), ("type", object)])
    for index, name in enumerate(["Fz", "Cz"]):
        chanlocs[0, index] = (name, "")
    event = np.zeros((1, 1), dtype=[("type", object), ("latency", object), ("duration", object)])
    event[0, 0] = ("stim", 100.0, 0.0)
    empty = np.zeros((0, 0))
    return {
        "setname": "JohnDoe resting",
        "filename": "JohnDoe.set",
        "filepath": "/home/Doe_John/eeg",
        "subject": "JohnDoe",
        "group": "",
        "condition": "rest",
        "session": "S0042",
        "comments": "recorded by Dr Smith",
        "nbchan": float(n_channels),
        "trials": 1.0,
        "pnts": float(n_samples),
        "srate": 100.0,
        "xmin": 0.0,
        "xmax": (n_samples - 1) / 100,
        "times": empty,
        "data": data,
        "icaact": empty,
        "icawinv": empty,
        "icasphere": empty,
        "icaweights": empty,
        "icachansind": empty,
        "chanlocs": chanlocs,
        "urchanlocs": empty,
        "chaninfo": {"nosedir": "+X", "filename": "/home/Doe_John/cap.ced"},
        "ref": "common",
        "event": event,
        "urevent": empty,
        "epoch": empty,
        "history": "EEG = pop_loadset('/home/Doe_John/JohnDoe.set');",
        "saved": "yes",
        "etc": {"rec_datetime": "2018-09-18 12:24:58", "operator": "Dr Smith"},
    }


def write_eeglab(folder: Path, *, nested: bool, embedded: bool) -> tuple[Path, np.ndarray]:
    samples = signal(2, 500).astype("<f4")
    if embedded:
        fields = eeglab_fields(samples)
    else:
        fields = eeglab_fields("JohnDoe.fdt")
        (folder / "JohnDoe.fdt").write_bytes(samples.T.tobytes())
    src = folder / "JohnDoe.set"
    scipy.io.savemat(src, {"EEG": fields} if nested else fields, appendmat=False)
    return src, samples


class TestEeglab:
    @pytest.mark.parametrize("nested", [False, True], ids=["fields", "EEG-struct"])
    @pytest.mark.parametrize("embedded", [False, True], ids=["fdt", "embedded"])
    def test_fields_are_blanked_and_data_survives(self, tmp_path, nested, embedded):
        src_dir, out = tmp_path / "in", tmp_path / "out"
        src_dir.mkdir()
        out.mkdir()
        src, samples = write_eeglab(src_dir, nested=nested, embedded=embedded)
        assert leaks(src_dir)
        dst = out / f"{PSEUDONYM}_task-rest_eeg.set"
        anonymize_eeg(src, dst, PSEUDONYM, OFFSET)

        expected = {dst.name} | (set() if embedded else {dst.with_suffix(".fdt").name})
        assert {p.name for p in out.iterdir()} == expected
        assert leaks(out) == {}
        after = mne.io.read_raw_eeglab(dst, preload=True, verbose="error")
        np.testing.assert_allclose(after.get_data() * 1e6, samples, rtol=1e-6)
        assert after.ch_names == ["Fz", "Cz"]
        assert list(after.annotations.description) == ["stim"]
        if not embedded:
            assert dst.with_suffix(".fdt").read_bytes() == (src_dir / "JohnDoe.fdt").read_bytes()
        saved = scipy.io.loadmat(dst, squeeze_me=True, appendmat=False)
        saved = saved["EEG"] if nested else saved
        field = (lambda name: saved[name][()]) if nested else (lambda name: saved[name])
        assert str(field("subject")) == PSEUDONYM
        assert str(field("setname")) == PSEUDONYM
        assert str(field("condition")) == "rest"

    def test_missing_fdt_is_invalid(self, tmp_path):
        src, _ = write_eeglab(tmp_path, nested=False, embedded=False)
        (tmp_path / "JohnDoe.fdt").unlink()
        out = tmp_path / "out"
        out.mkdir()
        with pytest.raises(Invalid, match=r"JohnDoe\.set: its data file JohnDoe\.fdt is missing"):
            anonymize_eeg(src, out / "x.set", PSEUDONYM, OFFSET)
        assert list(out.iterdir()) == []

    @pytest.mark.parametrize(
        "content",
        [b"not a MATLAB file", None],
        ids=["garbage", "truncated"],
    )
    def test_unreadable_set_is_invalid(self, tmp_path, content):
        src, _ = write_eeglab(tmp_path, nested=True, embedded=True)
        src.write_bytes(content if content is not None else src.read_bytes()[:300])
        out = tmp_path / "out"
        out.mkdir()
        with pytest.raises(Invalid, match=r"JohnDoe\.set: not a"):
            anonymize_eeg(src, out / "x.set", PSEUDONYM, OFFSET)
        assert list(out.iterdir()) == []

    def test_mat_file_that_is_not_eeglab_is_invalid(self, tmp_path):
        src = tmp_path / "other.set"
        scipy.io.savemat(src, {"x": np.ones(3)}, appendmat=False)
        with pytest.raises(Invalid, match=r"other\.set: not an EEGLAB dataset"):
            anonymize_eeg(src, tmp_path / "y.set", PSEUDONYM, OFFSET)


# --- dispatch ----------------------------------------------------------------------------------


class TestDispatch:
    def test_unknown_extension_is_invalid_naming_the_file(self, tmp_path):
        src = tmp_path / "recording.xyz"
        src.write_bytes(b"data")
        with pytest.raises(Invalid, match=r"recording\.xyz: not an EEG/MEG format"):
            anonymize_eeg(src, tmp_path / "out.xyz", PSEUDONYM, OFFSET)

    def test_destination_must_keep_the_format(self, tmp_path):
        src = tmp_path / "in.edf"
        write_edf(src)
        with pytest.raises(Invalid, match=r"out\.bdf: .* must also end in \.edf"):
            anonymize_eeg(src, tmp_path / "out.bdf", PSEUDONYM, OFFSET)

    @pytest.mark.parametrize("pseudonym", ["", "sub 1", "John Doe", "sub-1/../x"])
    def test_pseudonym_must_be_a_plain_label(self, tmp_path, pseudonym):
        src = tmp_path / "in.edf"
        write_edf(src)
        with pytest.raises(Invalid, match="pseudonym"):
            anonymize_eeg(src, tmp_path / "out.edf", pseudonym, OFFSET)

    def test_missing_source_is_invalid(self, tmp_path):
        with pytest.raises(Invalid, match=r"gone\.edf: no such file"):
            anonymize_eeg(tmp_path / "gone.edf", tmp_path / "out.edf", PSEUDONYM, OFFSET)

    def test_existing_output_is_replaced_whole(self, tmp_path):
        src, dst = tmp_path / "in.edf", tmp_path / "out.edf"
        write_edf(src)
        dst.write_bytes(b"old content")
        anonymize_eeg(src, dst, PSEUDONYM, OFFSET)
        assert dst.read_bytes()[:8] == b"0       "
        assert sorted(p.name for p in tmp_path.iterdir()) == ["in.edf", "out.edf"]

    @pytest.mark.parametrize("kind", ["edf", "brainvision", "fif", "eeglab"])
    def test_peak_memory_stays_flat_as_the_recording_grows(self, tmp_path, kind):
        """Signal data is copied in chunks: 40x more data costs (almost) no more memory."""
        peaks = []
        for megabytes in (1, 40):
            folder = tmp_path / f"{kind}{megabytes}"
            folder.mkdir()
            src = grown(folder, kind, megabytes * 2**20)
            dst = folder / f"out{src.suffix}"
            tracemalloc.start()
            anonymize_eeg(src, dst, PSEUDONYM, OFFSET)
            peaks.append(tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
        assert peaks[1] < peaks[0] + 4 * 2**20, peaks

    def test_a_failure_while_copying_leaves_nothing(self, tmp_path, monkeypatch):
        import neurodepot.deid.eeg_headers as module

        src, out = tmp_path / "in.edf", tmp_path / "out"
        out.mkdir()
        write_edf(src)

        def broken_copy(source, target, length=0):
            target.write(source.read(100))
            raise OSError("disk full")

        monkeypatch.setattr(module.shutil, "copyfileobj", broken_copy)
        with pytest.raises(OSError, match="disk full"):
            anonymize_eeg(src, out / "x.edf", PSEUDONYM, OFFSET)
        assert list(out.iterdir()) == []


def grown(folder: Path, kind: str, size: int) -> Path:
    """A recording of about `size` bytes of signal, made without building it in memory."""
    if kind == "edf":
        src = folder / "big.edf"
        write_edf(src, records=1)
        record = src.read_bytes()[768:]
        records = size // len(record)
        head = bytearray(src.read_bytes()[:768])
        head[236:244] = f"{records:<8}".encode()
        with src.open("wb") as out:
            out.write(head)
            for _ in range(records // 64):
                out.write(record * 64)
        records = records // 64 * 64
        with src.open("r+b") as out:
            out.seek(236)
            out.write(f"{records:<8}".encode())
        return src
    if kind == "brainvision":
        src, _ = write_brainvision(folder)
        with (folder / "JohnDoe_visit1.eeg").open("wb") as out:
            out.truncate(size // 4 * 4)
        return src
    if kind == "eeglab":
        src, _ = write_eeglab(folder, nested=False, embedded=False)
        fields = eeglab_fields("JohnDoe.fdt")
        fields["pnts"] = float(size // 8)
        scipy.io.savemat(src, fields, appendmat=False)
        with (folder / "JohnDoe.fdt").open("wb") as out:
            out.truncate(size // 8 * 8)
        return src
    # MNE keeps one time vector (8 bytes a sample) while saving: flat in the channel count, so
    # the recording here has the 64 channels of a usual EEG cap
    src = folder / "big_raw.fif"
    info = mne.create_info([f"EEG {index:03d}" for index in range(64)], 1000.0, "eeg")
    raw = mne.io.RawArray(np.zeros((64, size // 256)), info, verbose="error")
    raw.save(src, verbose="error")
    return src
