"""DICOM -> NIfTI conversion and BIDS export through neurodepot next to their plain peers, one run.

Measured, side by side on the same data:

1. conversion end to end: seconds of `neurodepot --root D convert BENCH --json` (a CLI process
   that runs the `convert` pipeline in-process as a recorded job: per scan, its DICOM blobs are
   symlinked into a temporary folder, the dcm2niix wheel's binary runs `-z y -b y -ba y`, and the
   outputs are stored as the scan's NIFTI resource) against the same dcm2niix binary with the same
   flags, `-f <stem> -o <out> <series folder>`, run once per series folder of the imported files,
   one after another, timed in total (output folders made beforehand). Printed: seconds, the ratio
   neurodepot / dcm2niix (the issue's goal: <= 1.2x) and the per-series overhead
   (neurodepot - dcm2niix) / series in ms; also the job's own started -> finished time from its
   row, so that CLI start-up and the pipeline's per-series cost can be told apart. The corpus is
   one large session: `--series` series (default 16, 2,400 files) copied from the four 150-file GE
   series of `testdata/dcm_qa_nih` with fresh series and instance UIDs in one study, imported with
   `neurodepot import` (prearchive, then archived as scans with a DICOM resource each). After
   every neurodepot run, `bids preview BENCH --json` must list every series as converted, and
   dcm2niix must have written a .nii.gz and a .json for every series, else the benchmark fails.
   Runs after the first replace the NIFTI resources (same content, so the blobs already exist).

2. BIDS export: seconds of `neurodepot --root D export-bids BENCH2 OUT --link --no-validate`
   (NIfTI hard-linked from the blob store, sidecars rewritten with TaskName, scans.tsv and the
   top-level files generated) against `cp -r` of that exported folder to another path of the
   same file system, and `cp -al` (hard links only) for reference. Printed: files, seconds,
   files/s and the ratio. The project has at least `--export-files` files in its export (default
   10,000): each converted series gives a NIfTI and its sidecar, each session a scans.tsv. A
   large GE series would take ~0.2 s each to convert, so BENCH2 is made of the 2-file Siemens
   series of `testdata/dcm_qa_nih` (4 per study) copied with fresh UIDs, each copy a new study of
   a new subject (PatientID), imported in one `neurodepot import` and converted once, untimed.

Why: the issue asks that converting through neurodepot cost at most 1.2x dcm2niix alone, and an
export with `--link` be no slower than copying the dataset. Figures drift 10-25 % between runs
and machines (PEERS.md), so the peers run alongside, interleaved (the order alternates between
repeats), and medians of `--repeat` runs are compared. Every file is in the page cache for all
contenders; dirty data is flushed (`sync`) before each timed run. The source folders are only
read; everything else lives in a temporary folder removed at the end, and every subprocess has a
timeout. Run: `.venv/bin/python bench/convert.py [--quick] [--series 16] [--repeat 3]
[--export-files 10000]` (`--help`).
"""

import argparse
import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid

TESTDATA = Path("/work/shared/testdata/dcm_qa_nih/In")
GE_SOURCE = TESTDATA / "20180918GE"
SIEMENS_SOURCE = TESTDATA / "20180918Si"
NEURODEPOT_CLI = str(Path(sys.executable).with_name("neurodepot"))
CONVERT_PROJECT = "BENCH"
EXPORT_PROJECT = "BENCH2"
DCM2NIIX_FLAGS = ("-z", "y", "-b", "y", "-ba", "y")
GOAL_CONVERT_RATIO = 1.2
# An export's files: 5 at the top (dataset_description.json, participants.tsv and .json, README,
# CHANGES), a NIfTI and its sidecar per converted series, a scans.tsv per session.
TOP_LEVEL_FILES = 5
FILES_PER_SERIES = 2
FILES_PER_SESSION = 1

# What `export-bids` prints when done (its --json cannot be used: see neurodepot_export).
EXPORTED = re.compile(
    r"Exported (?P<files>\d+) file\(s\), .*: (?P<linked>\d+) linked, (?P<copied>\d+) copied, "
    r"(?P<written>\d+) written"
)

CLI_TIMEOUT_S = 120.0
PER_FILE_TIMEOUT_S = 0.05
PER_SERIES_TIMEOUT_S = 2.0
KILL_TIMEOUT_S = 10.0
OUTPUT_TAIL_CHARS = 3000

NEURODEPOT_CONVERT = "neurodepot convert"
DCM2NIIX = "dcm2niix alone"
NEURODEPOT_EXPORT = "neurodepot export --link"
CP = "cp -r"
CP_LINKS = "cp -al"


class BenchError(RuntimeError):
    """A contender failed or produced the wrong result: the figures would be meaningless."""


@dataclass(frozen=True)
class BenchConfig:
    series: int
    repeat: int
    export_files: int
    tmp_dir: Path | None


@dataclass(frozen=True)
class Corpus:
    """DICOM files written for the benchmark: one folder per series, `sessions` studies."""

    folder: Path
    series: tuple[Path, ...]
    sessions: int
    files: int
    total_bytes: int


@dataclass(frozen=True)
class ConvertFigures:
    """Seconds per run: CLI wall-clock, and the job row's started -> finished."""

    neurodepot: list[float]
    job: list[float]
    dcm2niix: list[float]
    startup: list[float]


@dataclass(frozen=True)
class ExportFigures:
    files: int
    total_bytes: int
    seconds: dict[str, list[float]]


def parse_args(argv: Sequence[str]) -> BenchConfig:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, help="series in the converted session (default 16)")
    parser.add_argument("--repeat", type=int, help="runs per contender, median kept (default 3)")
    parser.add_argument(
        "--export-files", type=int, help="at least this many files in the export (default 10000)"
    )
    parser.add_argument("--quick", action="store_true", help="4 series, 1 run, ~500 export files")
    parser.add_argument(
        "--tmp-dir", type=Path, help="where the temporary folder is made (default: system's)"
    )
    args = parser.parse_args(argv)
    defaults = (
        {"series": 4, "repeat": 1, "export_files": 500}
        if args.quick
        else {"series": 16, "repeat": 3, "export_files": 10000}
    )
    values = {k: d if getattr(args, k) is None else getattr(args, k) for k, d in defaults.items()}
    if min(values.values()) < 1:
        parser.error("--series, --repeat and --export-files must be at least 1")
    return BenchConfig(**values, tmp_dir=args.tmp_dir)


# --- processes, bounded --------------------------------------------------------------------


def bench_env() -> dict[str, str]:
    """The environment without NEURODEPOT_* settings, so each depot uses its own defaults."""
    return {k: v for k, v in os.environ.items() if not k.startswith("NEURODEPOT_")}


def kill_group(process: subprocess.Popen[str]) -> None:
    """SIGKILL the process and what it started (dcm2niix under `neurodepot convert`)."""
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.communicate(timeout=KILL_TIMEOUT_S)


def run(command: Sequence[str], timeout_s: float) -> str:
    """Run a command in its own session; a failure or a timeout (its group killed) raises."""
    what = " ".join(command)
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=bench_env(),
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired as error:
        kill_group(process)
        raise BenchError(f"{what} took more than {timeout_s:.0f} s") from error
    except BaseException:  # Ctrl-C: leave nothing running
        kill_group(process)
        raise
    if process.returncode != 0:
        output = f"{stdout}{stderr}"[-OUTPUT_TAIL_CHARS:].strip()
        raise BenchError(f"{what} exited {process.returncode}:\n{output}")
    return stdout


def timed(command: Sequence[str], timeout_s: float) -> tuple[float, str]:
    """Seconds from launching `command` until it exits 0, and what it printed."""
    os.sync()
    start = time.perf_counter()
    stdout = run(command, timeout_s)
    return time.perf_counter() - start, stdout


def cli(depot: Path, *args: str, timeout_s: float = CLI_TIMEOUT_S) -> str:
    return run([NEURODEPOT_CLI, "--root", str(depot), *args], timeout_s)


def parse_json(text: str, what: str) -> object:
    try:
        return json.loads(text)
    except ValueError as error:
        raise BenchError(f"{what} printed no JSON: {text[:500]}") from error


def dcm2niix_binary() -> str:
    """The binary of the dcm2niix wheel, as neurodepot's pipeline runs it."""
    import dcm2niix

    return str(dcm2niix.bin)


# --- the corpora ---------------------------------------------------------------------------


def read_source(source: Path) -> list[list[pydicom.Dataset]]:
    """The datasets of each `mr_*` series folder of `source` (read only, never written)."""
    series = [
        [pydicom.dcmread(path) for path in sorted(folder.glob("*.dcm"))]
        for folder in sorted(source.glob("mr_*"))
        if folder.is_dir()
    ]
    if not series or not all(series):
        raise BenchError(f"no DICOM series mr_*/*.dcm in {source}")
    return series


def write_corpus(
    templates: list[list[pydicom.Dataset]], folder: Path, sessions: int, series_per_session: int
) -> Corpus:
    """`sessions` studies (PatientID s0001...) of `series_per_session` copies of source series.

    Every copy gets fresh series and instance UIDs and its own SeriesNumber, every study a
    fresh StudyInstanceUID: each is new to the depot.
    """
    written: list[Path] = []
    files = total = 0
    for session in range(sessions):
        subject = f"s{session + 1:04d}"
        study_uid = generate_uid()
        for index in range(series_per_session):
            series_uid = generate_uid()
            series_folder = folder / subject / f"series-{index + 1:03d}"
            series_folder.mkdir(parents=True)
            for number, ds in enumerate(templates[index % len(templates)]):
                ds.PatientID = ds.PatientName = subject
                ds.StudyInstanceUID = study_uid
                ds.SeriesInstanceUID = series_uid
                ds.SeriesNumber = index + 1
                ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
                path = series_folder / f"{number + 1:05d}.dcm"
                ds.save_as(path)
                files += 1
                total += path.stat().st_size
            written.append(series_folder)
    return Corpus(folder, tuple(written), sessions, files, total)


def export_sessions(export_files: int, series_per_session: int) -> int:
    """Sessions needed for an export of at least `export_files` files."""
    per_session = FILES_PER_SERIES * series_per_session + FILES_PER_SESSION
    return max(1, math.ceil((export_files - TOP_LEVEL_FILES) / per_session))


# --- the depot -----------------------------------------------------------------------------


def create_depot(depot: Path, projects: Sequence[str]) -> None:
    run([NEURODEPOT_CLI, "--root", str(depot), "init", str(depot)], CLI_TIMEOUT_S)
    for project in projects:
        cli(depot, "project", "create", project)


def import_corpus(depot: Path, corpus: Corpus, project: str, *labels: str) -> float:
    """`neurodepot import` of the whole corpus (archived at once); every file must be new."""
    timeout = CLI_TIMEOUT_S + PER_FILE_TIMEOUT_S * corpus.files
    command = [NEURODEPOT_CLI, "--root", str(depot), "import", str(corpus.folder)]
    seconds, out = timed([*command, "--project", project, *labels, "--json"], timeout)
    summary = parse_json(out, "import --json")
    if not isinstance(summary, dict):
        raise BenchError(f"import --json printed {out[:500]}")
    if summary.get("imported") != corpus.files or summary.get("not_archived"):
        keys = ("files", "imported", "duplicates", "conflicts", "unreadable", "not_archived")
        said = {key: summary.get(key) for key in keys}
        raise BenchError(f"import of {corpus.files} files (all new) said {said}")
    return seconds


def convert_project(depot: Path, project: str, series: int) -> tuple[float, float]:
    """Seconds of `neurodepot convert PROJECT`, and of its job from started to finished."""
    timeout = CLI_TIMEOUT_S + PER_SERIES_TIMEOUT_S * series
    seconds, out = timed(
        [NEURODEPOT_CLI, "--root", str(depot), "convert", project, "--json"], timeout
    )
    job = parse_json(out, "convert --json")
    if not isinstance(job, dict) or job.get("status") != "succeeded":
        raise BenchError(f"convert {project}: the job did not succeed: {out[:OUTPUT_TAIL_CHARS]}")
    started = datetime.fromisoformat(job["started_at"])
    finished = datetime.fromisoformat(job["finished_at"])
    return seconds, (finished - started).total_seconds()


def check_all_converted(depot: Path, project: str, series: int) -> None:
    """`bids preview --json` must list `series` scans, each of them converted."""
    preview = parse_json(cli(depot, "bids", "preview", project, "--json"), "bids preview --json")
    if not isinstance(preview, list):
        raise BenchError(f"bids preview --json printed {str(preview)[:500]}")
    scans = {row["scan"] for row in preview}
    bad = [
        f"{row['scan']}: {row['conversion']}" for row in preview if row["conversion"] != "converted"
    ]
    if len(scans) != series or bad:
        raise BenchError(
            f"bids preview of {project} lists {len(scans)} series (expected {series}); "
            f"not converted: {bad[:10]}"
        )


# --- 1. conversion -------------------------------------------------------------------------


def dcm2niix_alone(binary: str, corpus: Corpus, out_root: Path) -> float:
    """Seconds of dcm2niix run once per series folder, one after another; outputs checked."""
    outputs = [out_root / f"{index + 1:03d}" for index in range(len(corpus.series))]
    for output in outputs:
        output.mkdir(parents=True)
    os.sync()
    start = time.perf_counter()
    for series, output in zip(corpus.series, outputs, strict=True):
        command = [binary, *DCM2NIIX_FLAGS, "-f", series.name, "-o", str(output), str(series)]
        run(command, CLI_TIMEOUT_S)
    seconds = time.perf_counter() - start
    for series, output in zip(corpus.series, outputs, strict=True):
        names = sorted(path.name for path in output.iterdir())
        if not {".nii.gz", ".json"} <= {name[name.find(".") :] for name in names}:
            raise BenchError(f"dcm2niix wrote {names} for {series}: no .nii.gz and .json")
    shutil.rmtree(out_root)
    return seconds


def startup_seconds() -> float:
    """`neurodepot --version`: what any CLI command costs before doing anything."""
    seconds, _ = timed([NEURODEPOT_CLI, "--version"], CLI_TIMEOUT_S)
    return seconds


def bench_conversion(root: Path, config: BenchConfig) -> ConvertFigures:
    print(f"\n1. conversion: writing {config.series} series from {GE_SOURCE} ...", flush=True)
    corpus = write_corpus(read_source(GE_SOURCE), root / "session", 1, config.series)
    depot = root / "depot"
    create_depot(depot, (CONVERT_PROJECT, EXPORT_PROJECT))
    seconds = import_corpus(
        depot, corpus, CONVERT_PROJECT, "--subject", "S01", "--session", "S01_1"
    )
    print(
        f"   {corpus.files} files ({corpus.total_bytes / 1e6:.1f} MB) in {len(corpus.series)} "
        f"series, one session; imported in {seconds:.1f} s",
        flush=True,
    )
    binary = dcm2niix_binary()
    figures = ConvertFigures([], [], [], [])

    def ours() -> None:
        seconds, job_seconds = convert_project(depot, CONVERT_PROJECT, len(corpus.series))
        check_all_converted(depot, CONVERT_PROJECT, len(corpus.series))
        figures.neurodepot.append(seconds)
        figures.job.append(job_seconds)
        print(
            f"   {NEURODEPOT_CONVERT:<20} {seconds:7.2f} s  (job {job_seconds:.2f} s)", flush=True
        )

    def peer() -> None:
        seconds = dcm2niix_alone(binary, corpus, root / "dcm2niix-out")
        figures.dcm2niix.append(seconds)
        print(f"   {DCM2NIIX:<20} {seconds:7.2f} s", flush=True)

    for index in range(config.repeat):
        print(f"  run {index + 1}/{config.repeat}:", flush=True)
        contenders: list[Callable[[], None]] = [peer, ours] if index % 2 == 0 else [ours, peer]
        for contender in contenders:
            contender()
        figures.startup.append(startup_seconds())
    shutil.rmtree(corpus.folder)
    print_conversion(figures, len(corpus.series), config.repeat)
    return figures


def print_conversion(figures: ConvertFigures, series: int, repeat: int) -> None:
    ours, job = statistics.median(figures.neurodepot), statistics.median(figures.job)
    peer, startup = statistics.median(figures.dcm2niix), statistics.median(figures.startup)
    print(f"\n  median of {repeat} run(s), {series} series:")
    rows = (
        (NEURODEPOT_CONVERT, ours, figures.neurodepot),
        ("  of which the job", job, figures.job),
        (DCM2NIIX, peer, figures.dcm2niix),
    )
    for label, median, runs in rows:
        listed = ", ".join(f"{s:.2f}" for s in runs)
        print(
            f"  {label:<22} {median:7.2f} s  {median / series * 1000:7.1f} ms/series  "
            f"(runs: {listed})"
        )
    listed = ", ".join(f"{s:.2f}" for s in figures.startup)
    print(f"  {'neurodepot --version':<22} {startup:7.2f} s  (CLI start-up; runs: {listed})")
    print(f"  ratio neurodepot / dcm2niix: {ours / peer:.2f} (goal <= {GOAL_CONVERT_RATIO})")
    print(
        f"  overhead per series: {(ours - peer) / series * 1000:.1f} ms end to end, "
        f"{(job - peer) / series * 1000:.1f} ms within the job"
    )


# --- 2. export -----------------------------------------------------------------------------


def tree_size(folder: Path) -> tuple[int, int]:
    """Files and bytes under `folder` (hard links counted as the files they appear as)."""
    files = total = 0
    for directory, _, names in os.walk(folder):
        for name in names:
            files += 1
            total += os.lstat(os.path.join(directory, name)).st_size
    return files, total


def neurodepot_export(depot: Path, out: Path, expected: int) -> tuple[float, int, str]:
    """Seconds of `export-bids --link --no-validate`, the files it wrote (checked), its tally.

    Its text output is read, not `--json`: with `--json` the command exits 70 once the export is
    written (`ExportSummary.path` is a Path, which the CLI's JSON printer does not convert).
    """
    command = [NEURODEPOT_CLI, "--root", str(depot), "export-bids", EXPORT_PROJECT, str(out)]
    timeout = CLI_TIMEOUT_S + PER_FILE_TIMEOUT_S * expected
    seconds, printed = timed([*command, "--link", "--no-validate"], timeout)
    text = " ".join(printed.split())  # Rich wraps lines at the terminal's width
    said = EXPORTED.search(text)
    if said is None or "left out:" in text:
        raise BenchError(f"export-bids: {printed[:OUTPUT_TAIL_CHARS]}")
    files, _ = tree_size(out)
    if files != int(said["files"]) or files < expected:
        raise BenchError(
            f"export-bids says {said['files']} files, {out} holds {files}, "
            f"at least {expected} were asked for"
        )
    tally = f"{said['linked']} linked, {said['copied']} copied, {said['written']} written"
    return seconds, files, tally


def copy_tree(source: Path, destination: Path, flags: str, files: int) -> float:
    """Seconds of `cp <flags> source destination`; the copy must hold every file."""
    seconds, _ = timed(
        ["cp", flags, str(source), str(destination)], CLI_TIMEOUT_S + PER_FILE_TIMEOUT_S * files
    )
    copied, _ = tree_size(destination)
    if copied != files:
        raise BenchError(f"cp {flags} copied {copied} of {files} files")
    return seconds


def build_export_project(root: Path, depot: Path, config: BenchConfig) -> Corpus:
    templates = read_source(SIEMENS_SOURCE)
    per_session = len(templates)
    sessions = export_sessions(config.export_files, per_session)
    print(
        f"\n2. export: writing {sessions} sessions x {per_session} series from "
        f"{SIEMENS_SOURCE} ...",
        flush=True,
    )
    corpus = write_corpus(templates, root / "sessions", sessions, per_session)
    imported = import_corpus(depot, corpus, EXPORT_PROJECT)
    converted, job = convert_project(depot, EXPORT_PROJECT, len(corpus.series))
    series = len(corpus.series)
    print(
        f"   {corpus.files} files ({corpus.total_bytes / 1e6:.1f} MB), {series} series, "
        f"{sessions} subjects; imported in {imported:.1f} s; converted (setup, untimed) in "
        f"{converted:.1f} s, {series / converted:.1f} series/s (job {job:.1f} s, "
        f"{job / series * 1000:.1f} ms/series)",
        flush=True,
    )
    shutil.rmtree(corpus.folder)
    return corpus


def bench_export(root: Path, config: BenchConfig) -> ExportFigures:
    depot = root / "depot"
    build_export_project(root, depot, config)
    reference = root / "export-reference"
    seconds: dict[str, list[float]] = {NEURODEPOT_EXPORT: [], CP: [], CP_LINKS: []}
    files, tally = 0, ""
    for index in range(config.repeat):
        print(f"  run {index + 1}/{config.repeat}:", flush=True)
        # The first export is the folder the peers copy; later ones are removed once timed.
        out = reference if index == 0 else root / "export-again"
        order = [NEURODEPOT_EXPORT, CP, CP_LINKS]
        for name in order if index % 2 == 0 else order[::-1]:
            if name == NEURODEPOT_EXPORT:
                took, files, tally = neurodepot_export(depot, out, config.export_files)
                if out != reference:
                    shutil.rmtree(out)
            else:
                destination = root / "copy"
                took = copy_tree(reference, destination, "-r" if name == CP else "-al", files)
                shutil.rmtree(destination)
            seconds[name].append(took)
            extra = f"  ({tally})" if name == NEURODEPOT_EXPORT else ""
            print(f"   {name:<26} {took:7.2f} s  {files / took:9.0f} files/s{extra}", flush=True)
    _, total = tree_size(reference)
    figures = ExportFigures(files, total, seconds)
    print_export(figures, config.repeat)
    return figures


def print_export(figures: ExportFigures, repeat: int) -> None:
    print(
        f"\n  median of {repeat} run(s), {figures.files} files, {figures.total_bytes / 1e6:.1f} MB:"
    )
    for name, runs in figures.seconds.items():
        median = statistics.median(runs)
        listed = ", ".join(f"{s:.2f}" for s in runs)
        print(
            f"  {name:<26} {median:7.2f} s  {figures.files / median:9.0f} files/s  "
            f"{figures.total_bytes / 1e6 / median:7.1f} MB/s  (runs: {listed})"
        )
    ours = statistics.median(figures.seconds[NEURODEPOT_EXPORT])
    print(
        f"  ratio neurodepot / {CP} (time): {ours / statistics.median(figures.seconds[CP]):.2f}; "
        f"/ {CP_LINKS}: {ours / statistics.median(figures.seconds[CP_LINKS]):.1f}"
    )


# --- summary -------------------------------------------------------------------------------


def print_summary(
    convert: ConvertFigures, series: int, export: ExportFigures, config: BenchConfig
) -> None:
    ours, job = statistics.median(convert.neurodepot), statistics.median(convert.job)
    peer = statistics.median(convert.dcm2niix)
    ratio = ours / peer
    verdict = "met" if ratio <= GOAL_CONVERT_RATIO else "NOT met"
    exported = statistics.median(export.seconds[NEURODEPOT_EXPORT])
    copied = statistics.median(export.seconds[CP])
    linked = statistics.median(export.seconds[CP_LINKS])
    print(f"\nsummary (medians of {config.repeat} run(s); ratios are of seconds, > 1: slower):")
    print(
        f"  convert {series} series: neurodepot {ours:.2f} s (job {job:.2f} s), dcm2niix "
        f"{peer:.2f} s, ratio {ratio:.2f} (goal <= {GOAL_CONVERT_RATIO}: {verdict})"
    )
    print(
        f"  per-series overhead: {(ours - peer) / series * 1000:.1f} ms end to end, "
        f"{(job - peer) / series * 1000:.1f} ms within the job; CLI start-up "
        f"{statistics.median(convert.startup):.2f} s"
    )
    print(
        f"  export {export.files} files: neurodepot --link {exported:.2f} s "
        f"({export.files / exported:.0f} files/s), {CP} {copied:.2f} s "
        f"({export.files / copied:.0f} files/s), {CP_LINKS} {linked:.2f} s "
        f"({export.files / linked:.0f} files/s); ratio / {CP} {exported / copied:.2f}, "
        f"/ {CP_LINKS} {exported / linked:.1f}"
    )
    print(f"  load average at the end {os.getloadavg()[0]:.2f}")


def main(argv: Sequence[str]) -> None:
    config = parse_args(argv)
    print(
        f"neurodepot {NEURODEPOT_CLI}; dcm2niix {dcm2niix_binary()} {' '.join(DCM2NIIX_FLAGS)}; "
        f"{config.repeat} run(s) per contender, interleaved; load average "
        f"{os.getloadavg()[0]:.2f}",
        flush=True,
    )
    try:
        with tempfile.TemporaryDirectory(prefix="bench-convert-", dir=config.tmp_dir) as tmp:
            root = Path(tmp)
            print(f"working in {root}", flush=True)
            convert = bench_conversion(root, config)
            export = bench_export(root, config)
    except BenchError as error:
        sys.exit(f"bench/convert.py FAILED: {error}")
    print_summary(convert, config.series, export, config)


if __name__ == "__main__":
    main(sys.argv[1:])
