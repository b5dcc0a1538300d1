"""The release checker: the de-identification criteria of DESIGN.md run over a shareable folder.

The checker reads only files (`check_scan` walks them); what it must not find comes in the
`CheckContext`: the project's internal identifiers and original dates, its profile options and
the stewards' decisions. Each criterion gets pass, fail or overridden with evidence that names
the file, the place and the kind of value, never the value: identifying text in a file name or
location is replaced by its kind before it enters a report.

Identifiers match without case at token boundaries (the characters around them are not letters
or digits), so the label "01" cannot match "2010"; separators inside an identifier ("Doe^John",
"sub-01") match any short run of non-alphanumerics, and a name of two or three parts also matches
in reverse order. Identifiers shorter than three characters would match everywhere, so they are
compared only with whole values and whole pieces of paths (split at "_" and ".", a BIDS label's
value counting whole, except counters such as "run-01"), never with numbers.

DEID-HEADERS follows `deid.profile`'s resolved actions: an `X` or `Z` attribute must be absent
or empty (a `Z` may hold the subject's pseudonym, as Patient's Name and ID do), `D` and `C`
values are trusted. UIDs cannot be compared with originals the checker never sees, so it checks
their syntax, that the method codes do not say Retain UIDs unless that option is selected, and
(under DEID-DATES) that no remapped UID still embeds an original date, as vendors' UIDs do.
"""

import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from types import MappingProxyType

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from neurodepot.deid import check_scan as scan
from neurodepot.deid.burned_in import burned_in_reason
from neurodepot.deid.check_report import (
    FAIL,
    OVERRIDDEN,
    PASS,
    CheckReport,
    Criterion,
    CriterionResult,
    Evidence,
    Findings,
)
from neurodepot.deid.profile import BASIC_PROFILE_CODE, ProfileOption, load_profile
from neurodepot.errors import Invalid

__all__ = [
    "CheckContext",
    "CheckReport",
    "Criterion",
    "CriterionResult",
    "Evidence",
    "Identifier",
    "check_dataset",
]

MIN_SEARCHED = 3
MAX_GAP = 3
TOKEN = re.compile(r"[^\W_]+")
BYTE_TOKEN = re.compile(rb"[A-Za-z0-9\x80-\xff]+")
# BIDS entities whose values are counters: "run-01" names no subject.
INDEX_ENTITIES = frozenset({"run", "echo", "flip", "inv", "chunk", "split"})
UID = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))+")
RETAIN_UIDS_CODE = ProfileOption.RETAIN_UIDS.code[0]
# Where `deid.burned_in` looks, one attribute at a time so that evidence names the tag.
BURNED_IN_SIGNS = (
    ("(0028,0301)", "BurnedInAnnotation"),
    ("(0008,0016)", "SOPClassUID"),
    ("(0008,0008)", "ImageType"),
    ("(0008,0064)", "ConversionType"),
)
ANAT = re.compile(
    r"(^|/)anat/[^/]*_(T1w|T2w|PDw|T2starw|FLAIR|inplaneT1|inplaneT2|PDT2|angio|T2star|FLASH|PD"
    r"|UNIT1|MEGRE|MESE)\.nii(\.gz)?$"
)
DUMMIES = frozenset({"anonymous", "anonymized", "anonymised", "removed", "dummy"})
RETAIN_DATES = frozenset({ProfileOption.RETAIN_FULL_DATES, ProfileOption.RETAIN_MODIFIED_DATES})


@dataclass(frozen=True)
class Identifier:
    """A value that identifies someone inside the centre; reports name its `kind` only."""

    value: str
    kind: str


@dataclass(frozen=True)
class CheckContext:
    identifiers: tuple[Identifier, ...]
    original_dates: tuple[date, ...]
    options: frozenset[ProfileOption]
    private_allow: frozenset[tuple[str, int]]
    defaced: frozenset[str] = frozenset()
    consent: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    cleared_burned_in: frozenset[str] = frozenset()
    overrides: Mapping[Criterion, str] = field(default_factory=lambda: MappingProxyType({}))


Token = tuple[str, int, int]


def _text_tokens(text: str, offset: int = 0) -> Iterator[Token]:
    for m in TOKEN.finditer(text):
        yield m.group().casefold(), offset + m.start(), offset + m.end()


def _byte_tokens(data: bytes) -> Iterator[Token]:
    """Tokens of bytes in any ASCII-compatible encoding.

    Runs of letters, digits and high bytes, decoded (UTF-8, else Latin-1) and split again as text.
    """
    for m in BYTE_TOKEN.finditer(data):
        chunk = m.group()
        if chunk.isascii():
            yield chunk.decode("ascii").casefold(), m.start(), m.end()
            continue
        try:
            text = chunk.decode("utf-8")
        except UnicodeDecodeError:
            text = chunk.decode("latin-1")
        yield from _text_tokens(text, m.start())


def _pieces(text: str) -> Iterator[str]:
    """The whole-value forms of a path piece or value: itself and a BIDS label's value."""
    text = text.strip().casefold()
    yield text
    key, sep, value = text.partition("-")
    if sep and key.isalpha() and key not in INDEX_ENTITIES:
        yield value


class IdentifierMatcher:
    """Finds identifiers in text, bytes, whole values and paths; redacts them from report text."""

    def __init__(self, identifiers: Iterable[Identifier]) -> None:
        self.first: dict[str, list[tuple[tuple[str, ...], str]]] = {}
        self.short: dict[str, str] = {}
        self.kinds: set[str] = set()
        self.longest = self.span = 0
        for ident in identifiers:
            value = ident.value.strip()
            if not value:
                continue
            self.kinds.add(ident.kind)
            if len(value) < MIN_SEARCHED:
                self.short.setdefault(value.casefold(), ident.kind)
                continue
            self.longest = max(self.longest, len(value.encode("utf-8")))
            tokens = tuple(t for t, _, _ in _text_tokens(value))
            self.span = max(self.span, len(tokens))
            variants = {tokens}
            if "name" in ident.kind and len(tokens) in (2, 3):
                variants.add(tuple(reversed(tokens)))
            for variant in variants:
                if variant:
                    self.first.setdefault(variant[0], []).append((variant, ident.kind))
        self.ascii_first = frozenset(t.encode() for t in self.first if t.isascii())

    def _search(self, tokens: Iterable[Token]) -> Iterator[tuple[str, int, int]]:
        """Matches in a stream of tokens, holding only as many as the longest identifier has."""
        window: deque[Token] = deque()
        for token in tokens:
            window.append(token)
            if len(window) == self.span:
                yield from self._starting(window)
                window.popleft()
        while window:
            yield from self._starting(window)
            window.popleft()

    def _starting(self, window: deque[Token]) -> Iterator[tuple[str, int, int]]:
        token, start, _ = window[0]
        for sequence, kind in self.first.get(token, ()):
            if len(sequence) > len(window):
                continue
            if all(window[j][0] == sequence[j]
                   and 0 < window[j][1] - window[j - 1][2] <= MAX_GAP
                   for j in range(1, len(sequence))):  # fmt: skip
                yield kind, start, window[len(sequence) - 1][2]

    def in_text(self, text: str) -> Iterator[tuple[str, int, int]]:
        return self._search(_text_tokens(text)) if self.first else iter(())

    def in_bytes(self, data: bytes) -> Iterator[tuple[str, int, int]]:
        if not self.first:
            return iter(())
        if data.isascii() and self.ascii_first.isdisjoint(BYTE_TOKEN.findall(data.lower())):
            return iter(())  # the common case, found in C: no token can start a match
        return self._search(_byte_tokens(data))

    def in_wholes(self, values: Iterable[str]) -> Iterator[str]:
        """Short identifiers equal to a whole value (or to the value of a BIDS label)."""
        if self.short:
            for value in values:
                for piece in _pieces(value):
                    if piece in self.short:
                        yield self.short[piece]

    def in_name(self, name: str) -> Iterator[str]:
        """Identifiers in one file or folder name (short ones as a whole "_"/"."-piece)."""
        yield from (kind for kind, _, _ in self.in_text(name))
        yield from self.in_wholes(re.split(r"[_.]", name))

    def redact(self, text: str) -> str:
        """`text` with each identifier in it replaced by its kind in brackets."""
        spans = sorted(self.in_text(text), key=lambda s: s[1])
        out, at = [], 0
        for kind, start, end in spans:
            if start >= at:
                out += [text[at:start], f"[{kind}]"]
                at = end
        text = "".join([*out, text[at:]])
        if not self.short:
            return text
        parts = re.split(r"([/_.\s\[\]()]+)", text)
        for index, part in enumerate(parts):
            kind = self.short.get(part.casefold())
            key, sep, value = part.partition("-")
            if kind is not None:
                parts[index] = f"[{kind}]"
            elif sep and value.casefold() in self.short and key.casefold() not in INDEX_ENTITIES:
                parts[index] = f"{key}-[{self.short[value.casefold()]}]"
        return "".join(parts)


# EDF+ writes months in English whatever the locale.
MONTHS_EN = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
MONTHS = {m: i for i, m in enumerate(MONTHS_EN, 1)}
DATE_FORMS = (
    (re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)"), "ymd"),
    (re.compile(r"(?<!\d)(\d{4})/(\d{2})/(\d{2})(?!\d)"), "ymd"),
    (re.compile(r"(?<![\d.])(\d{4})(\d{2})(\d{2})(?:\d{6}\d{0,6})?(?![\d])"), "ymd"),
    (re.compile(r"(?<!\d)(\d{1,2})[./](\d{1,2})[./](\d{4})(?!\d)"), "dmy"),
    (re.compile(r"(?<!\d)(\d{1,2})-([A-Za-z]{3})-(\d{4})(?!\d)"), "dMy"),
)


def find_dates(text: str) -> Iterator[tuple[int, date]]:
    """Dates written in ISO, DICOM (also inside date-times), dotted or EDF+ form.

    A dotted or slashed date whose day/month order is ambiguous yields both readings.
    """
    for pattern, order in DATE_FORMS:
        for m in pattern.finditer(text):
            a, b, c = m.groups()
            if order == "ymd":
                candidates = [(a, b, c)]
            elif order == "dmy":
                candidates = [(c, b, a), (c, a, b)]
            else:
                candidates = [(c, str(MONTHS.get(b.upper(), 0)), a)]
            for year, month, day in candidates:
                try:
                    yield m.start(), date(int(year), int(month), int(day))
                except ValueError:
                    continue


def _values(value: object) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, MultiValue | list | tuple) else [str(value)]


class _Run:
    """One check of one folder: the findings so far and what the summaries count."""

    def __init__(self, root: Path, context: CheckContext) -> None:
        self.root, self.context = root, context
        self.options = frozenset(context.options)
        self.matcher = IdentifierMatcher(context.identifiers)
        self.findings = Findings(self.matcher.redact)
        self.profile = load_profile()
        self.originals = frozenset(context.original_dates)
        self.original_digits = tuple(d.strftime("%Y%m%d") for d in self.originals)
        self.check_dates = ProfileOption.RETAIN_FULL_DATES not in self.options
        self.overlap = 2 * (4 * self.matcher.longest + 64)
        self.allowed = frozenset(context.private_allow)
        self.allowed_creators = frozenset(creator for creator, _ in self.allowed)
        self.pseudonyms: set[str] = set(DUMMIES)
        self.counts = {
            "dicom": 0,
            "warnings": 0,
            "fallbacks": 0,
            "cleared": 0,
            "anat": 0,
            "subjects": 0,
        }

    def add(self, criterion: Criterion, file: str, location: str, kind: str) -> None:
        self.findings.add(criterion, file, location, kind)

    def paths(self, entries: list[scan.Entry]) -> None:
        for entry in entries:
            for part in entry.rel.split("/"):
                if part.startswith(("sub-", "ses-")):
                    self.pseudonyms |= {part.casefold(), part[4:].casefold()}
            what = "folder name" if entry.is_dir else "file name"
            for kind in self.matcher.in_name(entry.rel.rsplit("/", 1)[-1]):
                self.add(Criterion.LINKAGE, entry.rel, what, kind)
            if not entry.is_dir and (anat := ANAT.search(entry.rel)):
                self.counts["anat"] += 1
                if entry.rel not in self.context.defaced:
                    kind = f"anatomical image ({anat.group(2)}) not verified defaced"
                    self.add(Criterion.FACE, entry.rel, "image", kind)
            if entry.is_dir and "/" not in entry.rel and entry.rel.startswith("sub-"):
                self.counts["subjects"] += 1
                level = self.context.consent.get(entry.rel, "none")
                if level != "open":
                    kind = f"consent is {level}, not open"
                    self.add(Criterion.CONSENT, entry.rel, "subject folder", kind)

    def file(self, rel: str) -> None:
        path = self.root / rel
        try:
            kind = scan.classify(path)
            if kind == scan.Kind.DICOM:
                self.dicom(rel, path)
            elif kind in READERS:
                self.parsed(rel, path, kind)
            elif kind != scan.Kind.PAYLOAD:
                self.raw(rel, path, kind == scan.Kind.GZIP)
        except OSError as exc:
            self.add(Criterion.LINKAGE, rel, "file", f"unreadable ({type(exc).__name__})")

    def parsed(self, rel: str, path: Path, kind: scan.Kind) -> None:
        try:
            self.fields(rel, READERS[kind](path))
        except scan.Unparsable:
            # Searched as bytes instead, which sees all text unless it is compressed
            self.counts["fallbacks"] += 1
            if kind == scan.Kind.EEGLAB:  # MATLAB files may compress their variables
                self.add(Criterion.LINKAGE, rel, "file", "unreadable EEGLAB file")
            self.raw(rel, path, path.name.lower().endswith(".gz"))

    def raw(self, rel: str, path: Path, compressed: bool) -> None:
        try:
            self.fields(rel, scan.chunk_fields(path, self.overlap, compressed))
        except scan.Unparsable:
            self.add(Criterion.LINKAGE, rel, "file", "unreadable gzip file")
            self.raw(rel, path, False)

    def fields(self, rel: str, fields: Iterable[scan.Field]) -> None:
        for item in fields:
            self.field(rel, item)

    def field(self, rel: str, item: scan.Field) -> None:
        lo, hi = item.window or (0, 1 << 62)

        def where(position: int) -> str:
            return f"{item.location} {item.base + position}" if item.window else item.location

        found = [(kind, item.location) for kind, _, _ in self.matcher.in_text(item.text or "")]
        if item.data is not None:
            found += [(kind, where(start)) for kind, start, _ in self.matcher.in_bytes(item.data)
                      if lo <= start < hi]  # fmt: skip
        found += [(kind, item.location) for kind in self.matcher.in_wholes(item.wholes)]
        for kind, location in found:
            self.add(Criterion.LINKAGE, rel, location, kind)
        if not (self.check_dates and self.originals):
            return
        if item.when in self.originals:
            self.add(Criterion.DATES, rel, item.location, "original date")
        if item.dates and (item.text is not None or item.data is not None):
            text = item.text if item.text is not None else item.data.decode("latin-1")  # type: ignore[union-attr]
            for position, day in find_dates(text):
                if day in self.originals and lo <= position < hi:
                    self.add(Criterion.DATES, rel, where(position), "original date")

    def dicom(self, rel: str, path: Path) -> None:
        self.counts["dicom"] += 1
        result = scan.read_dicom(path)
        self.counts["warnings"] += len(result.warnings)
        for location, problem in result.problems:
            self.add(Criterion.HEADERS, rel, location, problem)
        if not result.elements:
            self.raw(rel, path, False)
            return
        top: dict[str, object] = {}
        for element in result.elements:
            if element.depth == 0 or element.location.startswith("(0012,0064)"):
                top[element.location] = element.value
            self.element(rel, element)
            self.fields(rel, scan.dicom_fields(element))
        self.dicom_top(rel, top)

    def private_allowed(self, element: scan.DicomElement) -> bool:
        if ProfileOption.RETAIN_SAFE_PRIVATE not in self.options or element.creator is None:
            return False
        number = element.tag & 0xFFFF
        if number < 0x0100:
            return element.creator in self.allowed_creators
        return (element.creator, number & 0xFF) in self.allowed

    def element(self, rel: str, element: scan.DicomElement) -> None:
        if (element.tag >> 16) & 1:
            if not self.private_allowed(element):
                self.add(Criterion.HEADERS, rel, element.location, "private element")
            return
        action = self.profile.action_for(element.tag, self.options)
        dummy = action == "Z" and str(element.value).strip().casefold() in self.pseudonyms
        if action in ("X", "Z") and not element.empty and not dummy:
            verb = "removes" if action == "X" else "blanks"
            kind = f"basic profile {action}: an attribute the profile {verb} keeps a value"
            self.add(Criterion.HEADERS, rel, element.location, kind)
        keeps_no_dates = not self.options & RETAIN_DATES
        if element.vr in ("DA", "DT") and action != "D" and not element.empty and keeps_no_dates:
            kind = "a date kept although the options keep no dates"
            self.add(Criterion.DATES, rel, element.location, kind)
        if element.vr == "UI":
            for uid in _values(element.value):
                if uid and not (len(uid) <= 64 and UID.fullmatch(uid)):
                    self.add(Criterion.HEADERS, rel, element.location, "invalid UID syntax")
                if (
                    action == "U"
                    and self.check_dates
                    and any(d in uid for d in self.original_digits)
                ):
                    self.add(Criterion.DATES, rel, element.location, "UID embeds an original date")

    def dicom_top(self, rel: str, top: dict[str, object]) -> None:
        if str(top.get("(0012,0062)") or "").strip().upper() != "YES":
            self.add(Criterion.HEADERS, rel, "(0012,0062)", "PatientIdentityRemoved is not YES")
        codes = {str(v).strip() for loc, v in top.items()
                 if loc.startswith("(0012,0064)[") and loc.endswith(".(0008,0100)")}  # fmt: skip
        if BASIC_PROFILE_CODE[0] not in codes:
            kind = "DeidentificationMethodCodeSequence lacks the basic profile code"
            self.add(Criterion.HEADERS, rel, "(0012,0064)", kind)
        if RETAIN_UIDS_CODE in codes and ProfileOption.RETAIN_UIDS not in self.options:
            kind = "UIDs retained (Retain UIDs code) though the project's options remap them"
            self.add(Criterion.HEADERS, rel, "(0012,0064)", kind)
        if rel in self.context.cleared_burned_in:
            self.counts["cleared"] += 1
            return
        annotation = top.get("(0028,0301)")
        for location, keyword in BURNED_IN_SIGNS:
            probe = Dataset()
            if top.get(location) not in (None, ""):
                setattr(probe, keyword, top[location])
                if keyword == "SOPClassUID" and str(annotation or "").strip() not in ("", "YES"):
                    probe.BurnedInAnnotation = annotation  # so that its reason is accurate
            reason = burned_in_reason(probe) if keyword in probe else None
            if reason is not None:
                self.add(Criterion.BURNEDIN, rel, location, reason)


READERS: dict[str, Callable[[Path], Iterator[scan.Field]]] = {
    scan.Kind.NIFTI: scan.nifti_fields,
    scan.Kind.EDF: scan.edf_fields,
    scan.Kind.FIF: scan.fif_fields,
    scan.Kind.EEGLAB: scan.eeglab_fields,
    scan.Kind.JSON: scan.json_fields,
    scan.Kind.TSV: scan.tsv_fields,
}


def _summaries(run: _Run, files: int) -> dict[Criterion, tuple[str, str]]:
    """Per criterion: the summary if it passed, and if it failed."""
    f, c, ctx = run.findings, run.counts, run.context
    options = ", ".join(sorted(run.options)) or "none"
    profile = f"basic profile ({run.profile.edition}), options: {options}"
    warned = f"; {c['warnings']} decoding warning(s)" if c["warnings"] else ""
    if not run.check_dates:
        dates_ok = "full dates are kept by the option retain-full-dates; not checked"
    elif run.originals:
        dates_ok = f"none of {len(run.originals)} original date(s) found"
    elif run.options & RETAIN_DATES:
        dates_ok = "no original dates were given to compare the shifted dates with"
    else:
        dates_ok = "no date remains (no original dates were given to look for elsewhere)"
    short = len(run.matcher.short)
    linkage = (
        f"{len(ctx.identifiers)} identifier(s) of {len(run.matcher.kinds)} kind(s) looked for in "
        f"every path and {files} file(s)"
        + (f"; {short} shorter than {MIN_SEARCHED} characters only in paths and as whole values"
           if short else "")
        + (f"; {c['fallbacks']} file(s) not parsable in their format searched as raw bytes"
           if c["fallbacks"] else "")
    )  # fmt: skip
    cleared = f"; {c['cleared']} cleared by a steward" if c["cleared"] else ""
    return {
        Criterion.HEADERS: (
            f"{c['dicom']} DICOM file(s) meet the {profile}{warned}",
            f"{f.count(Criterion.HEADERS)} finding(s) in {f.files(Criterion.HEADERS)} of "
            f"{c['dicom']} DICOM file(s) against the {profile}{warned}",
        ),
        Criterion.DATES: (
            dates_ok,
            f"{f.count(Criterion.DATES)} original or unremoved date(s) in "
            f"{f.files(Criterion.DATES)} file(s)",
        ),
        Criterion.FACE: (
            f"{c['anat']} anatomical image(s), all verified defaced"
            if c["anat"]
            else "no anatomical images",
            f"{f.count(Criterion.FACE)} of {c['anat']} anatomical image(s) not verified defaced: "
            "defacing is required and not yet verified",
        ),
        Criterion.LINKAGE: (
            f"no identifier found: {linkage}",
            f"{f.count(Criterion.LINKAGE)} finding(s) in {f.files(Criterion.LINKAGE)} "
            f"file(s) or folder(s): {linkage}",
        ),
        Criterion.BURNEDIN: (
            f"{c['dicom']} DICOM file(s), none flagged{cleared}",
            f"{f.files(Criterion.BURNEDIN)} DICOM file(s) may show burned-in text: a steward "
            f"must review and clear each{cleared}",
        ),
        Criterion.CONSENT: (
            f"all {c['subjects']} subject folder(s) have open consent"
            if c["subjects"]
            else "no subject folders",
            f"{f.count(Criterion.CONSENT)} of {c['subjects']} subject folder(s) without open "
            "consent: consent records are required (a subject without one has none)",
        ),
    }


def check_dataset(
    root: Path, context: CheckContext, progress: Callable[[int, int], None] | None = None
) -> CheckReport:
    """Run every criterion over the folder `root`; `progress(done, total)` counts files.

    Raises `Invalid` if `root` is not a folder. A file that cannot be read is a finding,
    never an error.
    """
    if not root.is_dir():
        raise Invalid(f"{root} is not a folder: give the shareable dataset's folder to check")
    run = _Run(root, context)
    entries = scan.walk(root)
    run.paths(entries)
    files = [e.rel for e in entries if not e.is_dir]
    if progress is not None:
        progress(0, len(files))
    for done, rel in enumerate(files, 1):
        run.findings.next_file()
        run.file(rel)
        if progress is not None:
            progress(done, len(files))
    summaries = _summaries(run, len(files))
    results = []
    for criterion in Criterion:
        evidence, omitted = run.findings.listed(criterion)
        passed, failed = summaries[criterion]
        if not evidence:
            results.append(CriterionResult(criterion, PASS, (), passed))
            continue
        reason = (context.overrides.get(criterion) or "").strip() or None
        status = FAIL if reason is None else OVERRIDDEN
        results.append(CriterionResult(criterion, status, evidence, failed, reason, omitted))
    return CheckReport(run.matcher.redact(str(root)), tuple(results), len(files))
