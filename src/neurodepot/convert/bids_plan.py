"""What a project looks like as BIDS: every series' name (or why it has none), and every file.

The plan is computed from the catalog (scans, their `NIFTI` resources, the sidecars) and the
rules; the preview and both exports (a folder, a streamed zip) are views of the same plan, so
what `bids preview` shows is what `export-bids` writes. File content is never held: a planned
file names a blob, a sidecar names its blob plus what to add, and small generated files
(participants.tsv, scans.tsv) are rendered when written.
"""

import json
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from neurodepot.catalog.hierarchy import find_project
from neurodepot.catalog.models import Scan
from neurodepot.catalog.target import Target
from neurodepot.catalog.walk import FileRow, ScanRow, scan_files, scans_under
from neurodepot.convert.bids_mapping import (
    BidsMatch,
    RunItem,
    bids_label,
    bids_stem,
    distinguish_images,
    map_series,
    number_runs,
)
from neurodepot.convert.models import ScanConversion
from neurodepot.convert.nifti import NIFTI_RESOURCE
from neurodepot.convert.project_rules import project_rules
from neurodepot.convert.rules import RuleSet
from neurodepot.depot.blobstore import BlobStore
from neurodepot.errors import Conflict, Invalid

IMAGE_EXTENSIONS = (".nii.gz", ".nii")
COMPANION_EXTENSIONS = (".bval", ".bvec")
# Fieldmaps correct these datatypes' images (IntendedFor).
CORRECTED_DATATYPES = ("func", "dwi")


@dataclass(frozen=True)
class SeriesPreview:
    """One image of a series (or a series not yet converted) and what BIDS name it gets."""

    scan: str
    series_number: int | None
    series_description: str
    conversion: str  # converted, not converted, failed
    image: str  # the NIFTI file, or "" for a series not converted
    outcome: str  # named, skipped, unmatched, problem
    rule: str
    bids_path: str
    detail: str = ""


@dataclass(frozen=True)
class PlannedFile:
    """A file of the dataset: a blob as it is, a sidecar blob with additions, or generated text."""

    path: str
    digest: str | None = None
    size: int = 0
    additions: tuple[tuple[str, Any], ...] = ()
    text: str | None = None

    @property
    def is_sidecar(self) -> bool:
        return self.digest is not None and self.path.endswith(".json")


@dataclass(frozen=True)
class BidsPlan:
    project: str
    preview: tuple[SeriesPreview, ...]
    files: tuple[PlannedFile, ...]
    subjects: tuple[str, ...] = field(default=())

    @property
    def problems(self) -> list[SeriesPreview]:
        return [p for p in self.preview if p.outcome in ("unmatched", "problem")]


@dataclass
class _Image:
    key: str
    scan: ScanRow
    stem: str  # NIFTI file stem
    image: FileRow
    sidecar: FileRow | None
    companions: list[FileRow]
    fields: dict[str, Any]
    match: BidsMatch | None = None


# Gives a subject (session None) or a session its label in the dataset: a de-identified
# dataset names them by pseudonym.
Relabel = Callable[[str, str | None], str]


@dataclass(frozen=True)
class LabelMap:
    """Internal subject and session labels → the dataset's labels."""

    subjects: dict[str, str]
    sessions: dict[tuple[str, str], str]

    def of(self, target: Target) -> tuple[str, str]:
        subject, session = target.subject or "", target.session or ""
        return self.subjects[subject], self.sessions[(subject, session)]


def plan_project(
    db: Session,
    blobs: BlobStore,
    project: str,
    subjects: Iterable[str] = (),
    relabel: Relabel | None = None,
    withdrawn: Collection[str] = (),
) -> BidsPlan:
    """The BIDS view of `project` (or of the named subjects only), named by `relabel`.

    Subjects in `withdrawn` (their consent was withdrawn) are left out of the view; naming one
    of them is refused rather than silently giving less than was asked for.
    """
    owner = find_project(db, project)
    wanted = list(subjects)
    if refused := sorted(set(wanted) & set(withdrawn)):
        raise Conflict(
            f"subject(s) {', '.join(refused)} withdrew consent and are left out of every "
            "export: ask without them"
        )
    scans: list[ScanRow] = []
    for target in [Target(project, s) for s in wanted] or [Target(project)]:
        scans.extend(s for s in scans_under(db, target) if s.target.subject not in withdrawn)
    rules = project_rules(db, blobs, project)
    nifti = scan_files(db, [s.scan_id for s in scans], NIFTI_RESOURCE)
    conversions = _conversions(db, [s.scan_id for s in scans])
    labels = _bids_labels(scans, relabel)
    preview: list[SeriesPreview] = []
    images: list[_Image] = []
    for scan in scans:
        files = nifti.get(scan.scan_id)
        conversion = conversions.get(scan.scan_id)
        if not files:
            preview.append(_unconverted(scan, conversion, rules, labels))
            continue
        found = _images(scan, files, blobs)
        matches = {i.key: map_series(rules, i.fields) for i in found}
        for image in found:
            image.match = matches[image.key]
        distinct = distinguish_images(
            [(i.key, i.match, i.fields) for i in found if i.match is not None]
        )
        for image in found:
            image.match = distinct.get(image.key, image.match)
        images.extend(found)
    runs = number_runs(
        [
            RunItem(i.key, str(i.scan.scan_id), str(i.scan.session_id), i.match, _order(i))
            for i in images
            if i.match is not None
        ]
    )
    for image in images:
        if image.match is not None:
            image.match = runs[image.key]
    files, named = _files(images, labels)
    for image in images:
        preview.append(_image_preview(image, named.get(image.key, ""), labels))
    subject_labels = tuple(sorted({labels.of(i.scan.target)[0] for i in images}))
    top = _top_level(owner.name or owner.label, owner.description, subject_labels)
    return BidsPlan(project, tuple(preview), tuple(top + files), subject_labels)


def _conversions(db: Session, scan_ids: list[int]) -> dict[int, ScanConversion]:
    rows = db.scalars(select(ScanConversion).where(ScanConversion.scan_id.in_(scan_ids)))
    return {row.scan_id: row for row in rows}


def _bids_labels(scans: list[ScanRow], relabel: Relabel | None = None) -> LabelMap:
    """Internal subject and session labels → BIDS labels; two that would clash are refused."""
    labels = LabelMap({}, {})
    seen: dict[str, str] = {}
    for scan in scans:
        subject, session = scan.target.subject, scan.target.session
        assert subject is not None and session is not None
        if subject not in labels.subjects:
            made = relabel(subject, None) if relabel else bids_label(subject)
            if not made:
                raise Invalid(f"subject {subject!r} has no letters or digits for a BIDS label")
            other = seen.setdefault(made, subject)
            if other != subject:
                raise Invalid(
                    f"subjects {other!r} and {subject!r} would both be sub-{made} in BIDS: "
                    "rename one of them"
                )
            labels.subjects[subject] = made
        if (subject, session) not in labels.sessions:
            made = relabel(subject, session) if relabel else bids_label(session)
            if not made:
                raise Invalid(f"session {session!r} has no letters or digits for a BIDS label")
            labels.sessions[(subject, session)] = made
    return labels


def scan_fields(scan: Scan) -> dict[str, Any]:
    """What the DICOM headers said of a scan, under the sidecar's names (seconds for times)."""

    def seconds(ms: float | None) -> float | None:
        return None if ms is None else ms / 1000

    fields: dict[str, Any] = {
        "SeriesDescription": scan.series_description or scan.type,
        "ProtocolName": scan.protocol,
        "ImageType": [t for t in scan.image_type.split("\\") if t],
        "Modality": scan.modality,
        "SeriesNumber": scan.series_number,
        "Manufacturer": scan.manufacturer,
        "ManufacturersModelName": scan.model,
        "MagneticFieldStrength": scan.field_strength,
        "RepetitionTime": seconds(scan.repetition_time),
        "EchoTime": seconds(scan.echo_time),
        "InversionTime": seconds(scan.inversion_time),
        "FlipAngle": scan.flip_angle,
    }
    return {k: v for k, v in fields.items() if v not in (None, "", [])}


def _images(scan: ScanRow, files: list[FileRow], blobs: BlobStore) -> list[_Image]:
    by_path = {f.path: f for f in files}
    found = []
    for file in files:
        ext = next((e for e in IMAGE_EXTENSIONS if file.path.endswith(e)), None)
        if ext is None:
            continue
        stem = file.path[: -len(ext)]
        sidecar = by_path.get(f"{stem}.json")
        fields = scan_fields(scan.scan)
        if sidecar is not None:
            with blobs.open(sidecar.digest) as handle:
                try:
                    loaded = json.load(handle)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    loaded = {}
            if isinstance(loaded, dict):
                fields.update(loaded)
        companions = [
            by_path[f"{stem}{e}"] for e in COMPANION_EXTENSIONS if f"{stem}{e}" in by_path
        ]
        key = f"{scan.target}/{file.path}"
        found.append(_Image(key, scan, stem, file, sidecar, companions, fields))
    return found


def _order(image: _Image) -> tuple[float, str]:
    number = image.scan.scan.series_number
    return (
        float(number) if number is not None else float("inf"),
        str(image.fields.get("AcquisitionTime", "")),
    )


def _files(images: list[_Image], labels: LabelMap) -> tuple[list[PlannedFile], dict[str, str]]:
    """The session folders' files, and each named image's path in the dataset."""
    named: dict[str, str] = {}
    taken: dict[str, str] = {}
    for image in images:
        if image.match is None or not image.match.named:
            continue
        subject, session = _labels(image, labels)
        stem = bids_stem(subject, session, image.match)
        ext = ".nii.gz" if image.image.path.endswith(".nii.gz") else ".nii"
        path = f"sub-{subject}/ses-{session}/{image.match.datatype}/{stem}{ext}"
        if path in taken:
            image.match = BidsMatch(
                image.match.rule, problem=f"would be {path}, as {taken[path]} is already"
            )
            continue
        taken[path] = image.key
        named[image.key] = path
    files: list[PlannedFile] = []
    corrected: dict[tuple[str, str], list[str]] = {}
    for image in images:
        path = named.get(image.key)
        if path and image.match is not None and image.match.datatype in CORRECTED_DATATYPES:
            subject, session = _labels(image, labels)
            corrected.setdefault((subject, session), []).append(path)
    sessions: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for image in images:
        path = named.get(image.key)
        if path is None or image.match is None:
            continue
        subject, session = _labels(image, labels)
        files.append(PlannedFile(path, image.image.digest, image.image.size))
        base = path.removesuffix(".gz").removesuffix(".nii")
        additions: list[tuple[str, Any]] = []
        if image.match.datatype == "func":
            task = dict(image.match.entities).get("task")
            if task:
                additions.append(("TaskName", task))
        if image.match.datatype == "fmap":
            intended = [f"bids::{p}" for p in corrected.get((subject, session), [])]
            if intended:
                additions.append(("IntendedFor", intended))
        if image.sidecar is not None:
            files.append(
                PlannedFile(
                    f"{base}.json", image.sidecar.digest, image.sidecar.size, tuple(additions)
                )
            )
        elif additions:
            files.append(PlannedFile(f"{base}.json", text=json.dumps(dict(additions), indent=2)))
        for companion in image.companions:
            ext = companion.path[len(image.stem) :]
            files.append(PlannedFile(f"{base}{ext}", companion.digest, companion.size))
        sessions.setdefault((subject, session), []).append(
            (path.split("/", 2)[2], _acq_time(image.scan.scan.acquired_on, image.fields))
        )
    for (subject, session), rows in sorted(sessions.items()):
        body = "filename\tacq_time\n" + "".join(f"{f}\t{t}\n" for f, t in sorted(rows))
        name = f"sub-{subject}/ses-{session}/sub-{subject}_ses-{session}_scans.tsv"
        files.append(PlannedFile(name, text=body))
    return files, named


def _labels(image: _Image, labels: LabelMap) -> tuple[str, str]:
    return labels.of(image.scan.target)


def _acq_time(day: date | None, fields: dict[str, Any]) -> str:
    """`YYYY-MM-DDThh:mm:ss` from the scan's date and the sidecar's AcquisitionTime, or n/a."""
    clock = str(fields.get("AcquisitionTime") or "")
    parts = clock.split(":")
    if day is None or len(parts) != 3:
        return "n/a"
    try:
        hours, minutes, seconds = int(parts[0]), int(parts[1]), float(parts[2])
    except ValueError:
        return "n/a"
    if not (0 <= hours < 24 and 0 <= minutes < 60 and 0 <= seconds < 61):
        return "n/a"
    return f"{day.isoformat()}T{hours:02d}:{minutes:02d}:{int(seconds):02d}"


def _unconverted(
    scan: ScanRow, conversion: ScanConversion | None, rules: RuleSet, labels: LabelMap
) -> SeriesPreview:
    failed = conversion is not None and conversion.status == "failed"
    state = "failed" if failed else "not converted"
    detail = conversion.reason if failed and conversion is not None else "convert it first"
    match = map_series(rules, scan_fields(scan.scan))
    outcome, rule, path = _outcome(match, scan, labels, ".nii.gz")
    return SeriesPreview(
        str(scan.target),
        scan.scan.series_number,
        scan.scan.series_description,
        state,
        "",
        outcome,
        rule,
        path,
        detail if outcome == "named" else _detail(match, detail),
    )


def _image_preview(image: _Image, path: str, labels: LabelMap) -> SeriesPreview:
    outcome, rule, _ = _outcome(image.match, image.scan, labels, "")
    return SeriesPreview(
        str(image.scan.target),
        image.scan.scan.series_number,
        image.scan.scan.series_description,
        "converted",
        image.image.path,
        outcome,
        rule,
        path,
        _detail(image.match, ""),
    )


def _outcome(
    match: BidsMatch | None, scan: ScanRow, labels: LabelMap, ext: str
) -> tuple[str, str, str]:
    if match is None:
        return "unmatched", "", ""
    if match.skip:
        return "skipped", match.rule, ""
    if match.problem:
        return "problem", match.rule, ""
    subject, session = labels.of(scan.target)
    stem = bids_stem(subject, session, match)
    return "named", match.rule, f"sub-{subject}/ses-{session}/{match.datatype}/{stem}{ext}"


def _detail(match: BidsMatch | None, fallback: str) -> str:
    if match is None:
        return "no rule matched: add a project rule (neurodepot bids rules set)"
    if match.skip:
        return f"left out of BIDS by rule {match.rule!r}"
    return match.problem or fallback


def _top_level(name: str, description: str, subjects: tuple[str, ...]) -> list[PlannedFile]:
    from neurodepot import __version__
    from neurodepot.convert import dcm2niix

    dataset = {
        "Name": name,
        "BIDSVersion": "1.10.0",
        "DatasetType": "raw",
        "GeneratedBy": [
            {"Name": "neurodepot", "Version": __version__},
            {"Name": "dcm2niix", "Version": dcm2niix.version()},
        ],
    }
    participants = "participant_id\n" + "".join(f"sub-{s}\n" for s in subjects)
    columns = {"participant_id": {"Description": "Participant label in this dataset"}}
    readme = f"# {name}\n\n{description or 'Exported from neurodepot.'}\n"
    changes = f"1.0.0 {date.today().isoformat()}\n  - Exported from neurodepot {__version__}.\n"
    return [
        PlannedFile("dataset_description.json", text=json.dumps(dataset, indent=2) + "\n"),
        PlannedFile("participants.tsv", text=participants),
        PlannedFile("participants.json", text=json.dumps(columns, indent=2) + "\n"),
        PlannedFile("README", text=readme),
        PlannedFile("CHANGES", text=changes),
    ]
