"""Shifting DICOM dates by a subject's offset in days (the Modified Dates option).

Every date of one subject moves by the same number of days, so intervals between visits, and
ages computed from shifted dates, are kept. Times of day are not moved: a shift by whole days
leaves them consistent, and sequence timing (slice times, acquisition times within a session)
is needed for analysis. A DT keeps its time part and its UTC offset unchanged.

The functions return None for a value that is not a valid date: the caller blanks it rather
than keep a string it could not understand (it might be a real date in another layout).
"""

import re
from datetime import date, timedelta

_DA = re.compile(r"(\d{4})(\d{2})(\d{2})")
# YYYY[MM[DD[HH[MM[SS[.F{1,6}]]]]]][&ZZXX], every part optional after the year.
_DT = re.compile(
    r"(?P<y>\d{4})(?:(?P<m>\d{2})(?:(?P<d>\d{2})"
    r"(?P<time>\d{2}(?:\d{2}(?:\d{2}(?:\.\d{1,6})?)?)?)?)?)?(?P<tz>[+-]\d{4})?"
)


def _shifted(year: int, month: int, day: int, days: int) -> date | None:
    try:
        return date(year, month, day) + timedelta(days=days)
    except (ValueError, OverflowError):
        return None


def shift_da(value: str, days: int) -> str | None:
    """A DA value ("YYYYMMDD") moved by `days`; "" stays ""; None if it is not a valid date."""
    text = value.strip(" \x00")
    if not text:
        return ""
    found = _DA.fullmatch(text)
    if found is None:
        return None
    moved = _shifted(int(found[1]), int(found[2]), int(found[3]), days)
    return None if moved is None else moved.strftime("%Y%m%d")


def shift_dt(value: str, days: int) -> str | None:
    """A DT value moved by `days`, keeping its precision, time of day and UTC offset.

    A DT given only to the year or month is moved from the first day of that period and
    written back at the same precision.
    """
    text = value.strip(" \x00")
    if not text:
        return ""
    found = _DT.fullmatch(text)
    if found is None:
        return None
    month, day = found["m"], found["d"]
    moved = _shifted(int(found["y"]), int(month or 1), int(day or 1), days)
    if moved is None or not _valid_time(found["time"] or "") or not _valid_tz(found["tz"] or ""):
        return None
    stamp = moved.strftime("%Y%m%d")[: 8 if day else 6 if month else 4]
    return f"{stamp}{found['time'] or ''}{found['tz'] or ''}"


def _valid_time(time: str) -> bool:
    """HH[MM[SS[.F]]] in range; 60 seconds is a leap second, which PS3.5 allows."""
    hh, mm, ss = time[0:2], time[2:4], time[4:6]
    return (not hh or int(hh) < 24) and (not mm or int(mm) < 60) and (not ss or int(ss) <= 60)


def _valid_tz(tz: str) -> bool:
    return not tz or (int(tz[3:5]) < 60 and -1200 <= int(tz) <= 1400)


def shift_values(text: str, vr: str, days: int) -> str | None:
    """Every value of a multi-valued DA or DT shifted; None if any is invalid.

    Other VRs are returned unchanged.
    """
    shift = {"DA": shift_da, "DT": shift_dt}.get(vr)
    if shift is None:
        return text
    moved = [shift(part, days) for part in text.split("\\")]
    if any(part is None for part in moved):
        return None
    return "\\".join(part for part in moved if part is not None)
