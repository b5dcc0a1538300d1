"""The searchable description of a series, read from one of its instances' headers."""

from dataclasses import dataclass
from datetime import date
from typing import BinaryIO

from pydicom import dcmread
from pydicom.dataset import Dataset

from neurodepot.ingest.header import parse_da


@dataclass(frozen=True)
class SeriesFacts:
    """What a scan row records of its series (times in ms, angles in degrees, sizes in mm)."""

    series_number: int | None
    series_description: str
    protocol: str
    image_type: str
    modality: str
    manufacturer: str
    model: str
    field_strength: float | None
    acquired_on: date | None
    repetition_time: float | None
    echo_time: float | None
    inversion_time: float | None
    flip_angle: float | None
    voxel_size: str
    matrix: str


def read_series_facts(handle: BinaryIO) -> SeriesFacts:
    """Facts of the series an instance belongs to; absent or odd values become empty."""
    ds = dcmread(handle, stop_before_pixels=True, force=True)
    rows, columns = _number(ds, "Rows"), _number(ds, "Columns")
    spacing = _numbers(ds, "PixelSpacing")
    thickness = _number(ds, "SliceThickness")
    voxel = [*spacing[:2], thickness] if len(spacing) >= 2 and thickness else spacing[:2]
    return SeriesFacts(
        series_number=_whole(ds, "SeriesNumber"),
        series_description=_text(ds, "SeriesDescription", 255),
        protocol=_text(ds, "ProtocolName", 255),
        image_type="\\".join(str(v) for v in _values(ds, "ImageType"))[:255],
        modality=_text(ds, "Modality", 16),
        manufacturer=_text(ds, "Manufacturer", 255),
        model=_text(ds, "ManufacturerModelName", 255),
        field_strength=_number(ds, "MagneticFieldStrength"),
        acquired_on=parse_da(
            _text(ds, "AcquisitionDate", 16)
            or _text(ds, "SeriesDate", 16)
            or _text(ds, "StudyDate", 16)
        ),
        repetition_time=_number(ds, "RepetitionTime"),
        echo_time=_number(ds, "EchoTime"),
        inversion_time=_number(ds, "InversionTime"),
        flip_angle=_number(ds, "FlipAngle"),
        voxel_size="x".join(f"{v:g}" for v in voxel),
        matrix=f"{int(columns)}x{int(rows)}" if rows and columns else "",
    )


def _values(ds: Dataset, keyword: str) -> list[object]:
    try:
        value = ds.get(keyword)
    except Exception:  # a malformed value must not stop archiving
        return []
    if value is None or value == "":
        return []
    if isinstance(value, str | bytes | int | float):
        return [value]
    try:
        return list(value)
    except TypeError:
        return [value]


def _text(ds: Dataset, keyword: str, limit: int) -> str:
    values = _values(ds, keyword)
    return str(values[0]).strip()[:limit] if values else ""


def _numbers(ds: Dataset, keyword: str) -> list[float]:
    numbers = []
    for value in _values(ds, keyword):
        try:
            numbers.append(float(value))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return []
    return numbers


def _number(ds: Dataset, keyword: str) -> float | None:
    numbers = _numbers(ds, keyword)
    return numbers[0] if numbers else None


def _whole(ds: Dataset, keyword: str) -> int | None:
    number = _number(ds, keyword)
    return int(number) if number is not None else None
