"""Anonymising EEG/MEG recordings: EDF/BDF (+), BrainVision, FIF (through MNE) and EEGLAB.

Only headers are rewritten; signal data is copied in chunks, never loaded whole. Two
exceptions: an EEGLAB .set that embeds its data (scipy reads it whole), and FIF, which MNE
rewrites buffer by buffer while holding one time vector (8 bytes a sample: 29 MB for an hour
at 1 kHz, whatever the channel count). Output names come from `dst`, which the caller builds
from pseudonyms; companion files (.vmrk/.eeg, .fdt) take `dst`'s stem. Every output is
written beside its destination under a temporary name and moved into place at the end, the
header last; on any error nothing is left.

What is changed, and what is deliberately kept:
- EDF/BDF: patient identification becomes the pseudonym (EDF+: `pseudonym X X X`, so sex,
  birth date and name are unknown); recording identification is blanked (EDF+:
  `Startdate <shifted> X X X`, no admin code, technician or equipment); the start date moves by
  the offset; the reserved field keeps only its format marker. EDF+ annotation texts are kept:
  EDF+ does not tell free text from event codes, and the release checker scans them.
- BrainVision: `;` comment lines go; [Comment] keeps only lines made of numbers, channel names
  and the Recorder's own words (the amplifier, filter and impedance tables MNE reads), so typed
  text goes; the New Segment date moves by the offset; "Comment" markers lose their text.
- FIF: MNE's `anonymize` (dates moved by the offset, names, experimenter, device serial,
  machine ids gone); subject info is then only `his_id` = the pseudonym (no birthday). Digitised
  head-shape points are kept: they are geometry needed for source analysis.
- EEGLAB: setname and subject become the pseudonym; filename/filepath, comments, history,
  session and `etc` (importers put dates there) are blanked.
"""

import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import BinaryIO

from neurodepot.errors import Invalid

CHUNK = 1 << 20
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_PSEUDONYM = re.compile(r"^[A-Za-z0-9-]{1,64}$")
_EDF_MARKERS = ("EDF+C", "EDF+D", "BDF+C", "BDF+D", "24BIT")
_FIF_MAX_BYTES = 2_000_000_000
_FIF_SAMPLE_BYTES = {"short": 2, "int": 4, "single": 4, "double": 8}
_BV_SECTIONS = frozenset(
    {
        *("", "[common infos]", "[binary infos]", "[ascii infos]", "[channel infos]"),
        *("[coordinates]", "[comment]", "[marker infos]"),
    }
)
# The words of BrainVision Recorder's [Comment] tables (amplifier setup, filters, impedance).
# fmt: off
_RECORDER_WORDS = frozenset({
    "amplifier", "setup", "number", "of", "channels", "sampling", "rate", "interval", "hz", "µs",
    "us", "name", "phys", "chn", "resolution", "unit", "low", "cutoff", "high", "notch", "series",
    "res", "kohm", "mohm", "ohm", "gradient", "offset", "off", "on", "dc", "µv", "uv", "mv", "nv",
    "v", "s", "ms", "disabled", "enabled", "software", "hardware", "filters", "filter", "data",
    "electrodes", "electrode", "selected", "impedance", "impedances", "measurement", "range",
    "ground", "reference", "gnd", "ref", "at", "out", "value", "unknown", "time", "constant",
})
# fmt: on


def anonymize_eeg(src: Path, dst: Path, pseudonym: str, date_offset_days: int) -> None:
    """Write an anonymised copy of the recording `src` to `dst`, chosen by its extension.

    `src` is the header file (.edf, .bdf, .vhdr, .fif, .set); `dst` must have the same
    extension. Dates move by `date_offset_days` (negative allowed). Raises Invalid naming the
    file for an unknown extension, a malformed or truncated header or a missing companion.
    """
    writers: dict[str, Callable[[Path, Path, str, int], None]] = {
        ".edf": _edf,
        ".bdf": _edf,
        ".vhdr": _brainvision,
        ".fif": _fif,
        ".set": _eeglab,
    }
    suffix = src.suffix.lower()
    if suffix not in writers:
        known = ", ".join(writers)
        raise Invalid(f"{src.name}: not an EEG/MEG format neurodepot anonymises ({known})")
    if dst.suffix.lower() != suffix:
        raise Invalid(f"{dst.name}: the anonymised copy of {src.name} must also end in {suffix}")
    if not _PSEUDONYM.match(pseudonym):
        raise Invalid(f"pseudonym {pseudonym!r}: use letters, digits and '-' only")
    if not src.is_file():
        raise Invalid(f"{src.name}: no such file")
    writers[suffix](src, dst, pseudonym, date_offset_days)


@contextmanager
def _staged() -> Iterator[Callable[[Path, str], Path]]:
    """Temporary paths beside their destinations, moved into place in order on success."""
    pairs: list[tuple[Path, Path]] = []

    def stage(dst: Path, suffix: str = ".tmp") -> Path:
        handle, name = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=suffix)
        os.close(handle)
        pairs.append((Path(name), dst))
        return Path(name)

    try:
        yield stage
        for temporary, final in pairs:
            os.replace(temporary, final)
    finally:
        for temporary, _ in pairs:
            temporary.unlink(missing_ok=True)


def _copy_rest(source: BinaryIO, target: Path, head: bytes = b"") -> None:
    with target.open("wb") as out:
        out.write(head)
        shutil.copyfileobj(source, out, CHUNK)


def _shifted_year_checked(day: date, offset: int, src: Path) -> date:
    moved = day + timedelta(days=offset)
    if not 1985 <= moved.year <= 2084:
        raise Invalid(
            f"{src.name}: the shifted start date ({moved.year}) is outside 1985-2084, "
            "which EDF cannot hold; use a smaller date offset"
        )
    return moved


def _edf(src: Path, dst: Path, pseudonym: str, offset: int) -> None:
    bdf = src.suffix.lower() == ".bdf"
    kind = "BDF" if bdf else "EDF"
    with src.open("rb") as source:
        fixed = source.read(256)
        if len(fixed) < 256:
            raise Invalid(f"{src.name}: truncated {kind} header ({len(fixed)} of 256 bytes)")
        if fixed[:8] != (b"\xffBIOSEMI" if bdf else b"0       "):
            raise Invalid(f"{src.name}: not an {kind} file (wrong version field)")
        text = fixed.decode("latin-1")
        try:
            header_bytes, signals = int(text[184:192]), int(text[252:256])
            records = int(text[236:244])
            day, month, year = (int(part) for part in text[168:176].split("."))
            start = date(year + (1900 if year >= 85 else 2000), month, day)
        except ValueError:
            raise Invalid(f"{src.name}: malformed {kind} header (counts or start date)") from None
        if signals < 1 or header_bytes != 256 * (signals + 1):
            raise Invalid(f"{src.name}: malformed {kind} header (header size and signal count)")
        signal_header = source.read(256 * signals)
        if len(signal_header) < 256 * signals:
            raise Invalid(f"{src.name}: truncated {kind} header (signal descriptions)")
        counts = signal_header[216 * signals : 224 * signals].decode("latin-1")
        try:
            samples = sum(int(counts[i : i + 8]) for i in range(0, 8 * signals, 8))
        except ValueError:
            raise Invalid(f"{src.name}: malformed {kind} header (samples per record)") from None
        record_bytes = samples * (3 if bdf else 2)
        if (
            records >= 0
            and os.fstat(source.fileno()).st_size < header_bytes + records * record_bytes
        ):
            raise Invalid(f"{src.name}: truncated {kind} data ({records} records declared)")
        moved = _shifted_year_checked(start, offset, src)
        reserved = text[192:236].strip()
        plus = reserved[:5] in ("EDF+C", "EDF+D", "BDF+C", "BDF+D")
        patient = f"{pseudonym} X X X" if plus else pseudonym
        recording = _edf_plus_recording(text[88:168], offset, src) if plus else ""
        head = (
            fixed[:8]
            + f"{patient:<80.80}{recording:<80.80}".encode("ascii")
            + f"{moved:%d.%m.%y}".encode("ascii")
            + fixed[176:192]
            + f"{reserved if reserved in _EDF_MARKERS else '':<44}".encode("ascii")
            + fixed[236:256]
            + signal_header
        )
        with _staged() as stage:
            _copy_rest(source, stage(dst, ".tmp"), head)


def _edf_plus_recording(field: str, offset: int, src: Path) -> str:
    """EDF+ recording identification keeping only the (shifted) start date."""
    parts = field.split()
    if len(parts) >= 2 and parts[0] == "Startdate" and parts[1] != "X":
        try:
            day, month, year = parts[1].split("-")
            start = date(int(year), MONTHS.index(month.upper()) + 1, int(day))
        except ValueError:
            raise Invalid(f"{src.name}: malformed EDF+ recording Startdate") from None
        moved = _shifted_year_checked(start, offset, src)
        return f"Startdate {moved.day:02d}-{MONTHS[moved.month - 1]}-{moved.year} X X X"
    return "Startdate X X X X"


def _read_bv_text(path: Path, kind: str, owner: Path) -> tuple[list[str], str]:
    """A BrainVision text file's lines and codec (its Codepage, else UTF-8, else Latin-1)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise Invalid(f"{owner.name}: its {kind} {path.name} is missing") from None
    declared = re.search(rb"^Codepage=(\S+)", raw, re.MULTILINE | re.IGNORECASE)
    codec = declared.group(1).decode("ascii", "replace") if declared else "utf-8"
    codec = "cp1252" if codec.upper() == "ANSI" else codec
    try:
        text = raw.decode(codec)
    except (UnicodeDecodeError, LookupError):
        codec, text = "latin-1", raw.decode("latin-1")
    lines = text.replace("\r\n", "\n").split("\n")
    if not re.match(r"^Brain ?Vision Data Exchange (Header|Marker) File", lines[0]):
        raise Invalid(f"{path.name}: not a BrainVision {kind} (first line)")
    return lines, codec


def _bv_value(lines: list[str], key: str) -> str | None:
    for line in lines:
        if line.startswith(f"{key}="):
            return line[len(key) + 1 :].strip()
    return None


def _brainvision(src: Path, dst: Path, pseudonym: str, offset: int) -> None:
    header, codec = _read_bv_text(src, "header", src)
    data_name = _bv_value(header, "DataFile")
    if not data_name:
        raise Invalid(f"{src.name}: no DataFile= in [Common Infos]")
    data = src.parent / Path(data_name.replace("\\", "/")).name
    if not data.is_file():
        raise Invalid(f"{src.name}: its data file {data.name} is missing")
    marker_name = _bv_value(header, "MarkerFile")
    marker = src.parent / Path(marker_name.replace("\\", "/")).name if marker_name else None
    new_data, new_marker = dst.with_suffix(data.suffix or ".eeg"), dst.with_suffix(".vmrk")
    renames = {"DataFile": new_data.name, "MarkerFile": new_marker.name}
    channels = {
        line.split("=", 1)[1].split(",", 1)[0].replace(r"\1", ",")
        for line in header
        if re.match(r"^Ch\d+=", line)
    }
    out_header = _bv_rewrite(header, renames, lambda line: _recorder_line(line, channels))
    with _staged() as stage:
        with data.open("rb") as source:
            _copy_rest(source, stage(new_data, ".tmp"))
        if marker is not None:
            lines, marker_codec = _read_bv_text(marker, "marker file", src)
            out_marker = _bv_rewrite(lines, renames, None, lambda mk: _marker(mk, offset, src))
            stage(new_marker, ".tmp").write_bytes(out_marker.encode(marker_codec))
        stage(dst, ".tmp").write_bytes(out_header.encode(codec))


def _bv_rewrite(
    lines: list[str],
    renames: dict[str, str],
    keep_comment: Callable[[str], bool] | None,
    marker: Callable[[str], str] | None = None,
) -> str:
    """The text with comments, unknown sections (user infos) and typed [Comment] text gone."""
    out = lines[:1]
    section = ""
    for line in lines[1:]:
        if re.match(r"^\[.*\]\s*$", line):
            section = line.strip().lower()
        key = line.split("=", 1)[0]
        if line.startswith(";") or section not in _BV_SECTIONS:
            continue
        if key in renames and "=" in line and section == "[common infos]":
            line = f"{key}={renames[key]}"
        elif section == "[comment]" and keep_comment is not None and line != "[Comment]":
            if not keep_comment(line):
                continue
        elif marker is not None and re.match(r"^Mk\d+=", line):
            line = marker(line)
        out.append(line)
    return "\n".join(out)


def _recorder_line(line: str, channels: set[str]) -> bool:
    """Whether a [Comment] line is the Recorder's own table (words known, or channel names)."""
    words = [word.rstrip(":") for word in line.split()]
    if words and all(len(word) == 1 for word in line.split()):  # "A m p l i f i e r  S e t u p"
        words = re.sub(r"(?<=\S) (?=\S)", "", line).split()
    rest = " ".join(word for word in words if word not in channels)
    return all(run.lower() in _RECORDER_WORDS for run in re.findall(r"[^\W\d_]+", rest))


def _marker(line: str, offset: int, src: Path) -> str:
    """A marker with its New Segment date moved and any Comment marker's text removed."""
    name, fields = line.split("=", 1)
    parts = fields.split(",")
    if len(parts) < 4:
        raise Invalid(f"{src.name}: malformed marker {name}")
    if parts[0] == "Comment":
        parts[1] = ""
    if parts[0] == "New Segment" and len(parts) >= 6 and parts[5].strip("0"):
        stamp = parts[5]
        try:
            moved = date(int(stamp[:4]), int(stamp[4:6]), int(stamp[6:8])) + timedelta(offset)
        except ValueError:
            raise Invalid(f"{src.name}: malformed New Segment date in {name}") from None
        parts[5] = f"{moved:%Y%m%d}{stamp[8:]}"
    return f"{name}={','.join(parts)}"


def _fif(src: Path, dst: Path, pseudonym: str, offset: int) -> None:
    import mne

    try:
        raw = mne.io.read_raw_fif(src, preload=False, allow_maxshield=True, verbose="error")
        width = _FIF_SAMPLE_BYTES.get(raw.orig_format, 8)
        if raw.n_times * len(raw.ch_names) * width > _FIF_MAX_BYTES:
            raise Invalid(f"{src.name}: recordings over 2 GB (split FIF) are not supported yet")
        raw.anonymize(daysback=-offset, keep_his=False, verbose="error")
        raw.info["subject_info"] = {"his_id": pseudonym}
        with _staged() as stage:
            raw.save(stage(dst, "_raw.fif"), fmt=raw.orig_format, overwrite=True, verbose="error")
    except (ValueError, OSError, RuntimeError, KeyError, IndexError, TypeError) as exc:
        raise Invalid(f"{src.name}: not a readable FIF recording ({exc})") from None


def _eeglab(src: Path, dst: Path, pseudonym: str, offset: int) -> None:
    import numpy as np
    from scipy.io import loadmat, savemat
    from scipy.io.matlab import MatReadError

    try:
        mat = loadmat(src, squeeze_me=False, struct_as_record=True, appendmat=False)
    except NotImplementedError:
        raise Invalid(
            f"{src.name}: MATLAB v7.3 EEGLAB files are not supported; save it as v7"
        ) from None
    except (MatReadError, ValueError, OSError, TypeError, IndexError, EOFError) as exc:
        raise Invalid(f"{src.name}: not a readable EEGLAB .set ({exc})") from None
    mat = {key: value for key, value in mat.items() if not key.startswith("__")}
    nested = "EEG" in mat
    eeg = mat["EEG"] if nested else None
    names = set(eeg.dtype.names or ()) if nested else set(mat)
    if "data" not in names or "nbchan" not in names:
        raise Invalid(f"{src.name}: not an EEGLAB dataset (no data or nbchan field)")

    def put(field: str, value: object) -> None:
        if field in names and nested:
            eeg[field][0, 0] = value
        elif field in names:
            mat[field] = value

    data_field = eeg["data"][0, 0] if nested else mat["data"]
    fdt = None
    if isinstance(data_field, np.ndarray) and data_field.dtype.kind == "U":
        fdt = src.parent / Path(str(data_field.flat[0]).replace("\\", "/")).name
        fdt = fdt if fdt.is_file() else src.with_suffix(".fdt")
        if not fdt.is_file():
            raise Invalid(f"{src.name}: its data file {fdt.name} is missing")
        put("data", dst.with_suffix(".fdt").name)
        put("datfile", dst.with_suffix(".fdt").name)
    for field, value in (("setname", pseudonym), ("subject", pseudonym), ("filename", dst.name)):
        put(field, value)
    for field in ("filepath", "comments", "history", "session"):
        put(field, "")
    put("etc", np.zeros((0, 0)))
    chaninfo = eeg["chaninfo"][0, 0] if nested and "chaninfo" in names else mat.get("chaninfo")
    if isinstance(chaninfo, np.ndarray) and "filename" in (chaninfo.dtype.names or ()):
        chaninfo["filename"][0, 0] = ""  # the montage file's path, often a home folder
    with _staged() as stage:
        if fdt is not None:
            with fdt.open("rb") as source:
                _copy_rest(source, stage(dst.with_suffix(".fdt"), ".tmp"))
        savemat(
            stage(dst, ".tmp"), mat, appendmat=False, long_field_names=True, do_compression=False
        )
