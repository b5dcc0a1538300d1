"""Signs that an image may carry text in its pixels, which header de-identification misses.

A steward has to look before such an image is shared (criterion DEID-BURNEDIN).

We flag, from the header alone (pixels are not decoded):
- Burned In Annotation (0028,0301) = YES;
- a Secondary Capture SOP class (1.2.840.10008.5.1.4.1.1.7 and its multi-frame variants),
  saying so when Burned In Annotation is missing, as it often is for screen captures;
- an Image Type, or a Conversion Type, that says the image is a capture of a screen or
  document (e.g. Siemens "SCREEN SAVE", a "CSA REPORT", ConversionType WSD/SD/SI/DRW).
The reason is a short sentence for the steward; None means no sign was found.
"""

from pydicom import Dataset

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
# Image Type values (any position) that mean a captured screen, report or summary page.
CAPTURE_HINTS = frozenset(
    {"SCREEN", "SCREEN SAVE", "SCREENSHOT", "CAPTURE", "CSA REPORT", "REPORT", "SUMMARY",
     "DOSE_INFO", "DOSE REPORT", "SNAPSHOT", "DISPLAY"}
)  # fmt: skip
# Conversion Type (0008,0064) values of images made from screens, paper or drawings.
CAPTURED_CONVERSIONS = {
    "WSD": "a workstation screen",
    "SD": "a scanned document",
    "SI": "a scanned image",
    "DRW": "a drawing",
}


def _text(ds: Dataset, keyword: str) -> list[str]:
    value = ds.get(keyword)
    if value is None or value == "":
        return []
    values = [value] if isinstance(value, str) else list(value)
    return [str(v).strip().upper() for v in values]


def burned_in_reason(ds: Dataset) -> str | None:
    """Why `ds` may show burned-in text, or None. Read before the header is de-identified."""
    annotation = _text(ds, "BurnedInAnnotation")
    if annotation[:1] == ["YES"]:
        return "Burned In Annotation is YES"
    sop_class = str(ds.get("SOPClassUID", "") or "")
    if sop_class == SECONDARY_CAPTURE or sop_class.startswith(SECONDARY_CAPTURE + "."):
        missing = " and Burned In Annotation is missing" if not annotation else ""
        return f"Secondary Capture image ({sop_class}){missing}"
    hints = sorted(CAPTURE_HINTS.intersection(_text(ds, "ImageType")))
    if hints:
        return f"Image Type says it is a screen or report capture ({', '.join(hints)})"
    conversion = _text(ds, "ConversionType")
    if conversion and conversion[0] in CAPTURED_CONVERSIONS:
        return f"Conversion Type {conversion[0]}: made from {CAPTURED_CONVERSIONS[conversion[0]]}"
    return None
