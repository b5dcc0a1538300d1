"""DICOM de-identification throughput of neurodepot next to `deid` and dicognito, one run.

Measured, side by side on the same corpus, each contender writing into a fresh folder of its own
(removed once counted):

- neurodepot: `deid.dicom_batch.deidentify_tree` with the basic profile (no option), one
  subject's keys, `--workers` 1 (in this process) and all cores (a process pool, its start
  included in the time);
- `deid` (pydicom deid): `deid.dicom.replace_identifiers` with its default recipe
  (`DeidRecipe()`, the `deid.dicom` file), `save=True`, one call per source folder into a mirror
  folder (it names outputs by the source file's name, so one flat folder would collide);
- dicognito, through its Python API (one `Anonymizer` for the run; per file `dcmread`,
  `anonymize`, `save_as(<new SOPInstanceUID>.dcm)`, which is what its CLI does without argument
  parsing and the summary), and through its CLI `python -m dicognito --quiet --output-directory
  OUT SRC` as a user runs it (its 0.19.0 console script `dicognito` fails: it calls `main()`
  without arguments); the CLI's start cost (`--version`) is printed apart;
- for reference, pydicom read + write of every file unchanged: the ceiling of one process of any
  pydicom-based de-identifier.

Each must write exactly one file per input file, else the benchmark fails. Printed: files/s per
contender (medians of `--repeat` runs, interleaved, the order rotating between runs), the CPU
ms per file of each one-process contender (this process's CPU time, or the CLI child's), and
the ratios of neurodepot's files/s to each peer's. dicognito and `deid` use one process;
neurodepot with all cores is the figure the goal is about (issue 7: at least 3x dicognito), with
one worker the per-core comparison. Wall-clock figures need idle cores: with other work on the
machine (the load average is printed per run) the pool has no spare core to use, while CPU per
file still compares the engines core for core.

The corpus is every `.dcm` of `testdata/dcm_qa_nih/In` (608 files, GE and Siemens MR, 17 MB),
copied; `--copies N` adds N-1 copies with fresh study, series and instance UIDs (one more pass
over the GE and Siemens series each). Every file is in the page
cache for all contenders; dirty data is flushed (`sync`) before each timed run. All lives in a
temporary folder removed at the end; every subprocess has a timeout.
Run: `.venv/bin/python bench/deid.py [--repeat 3] [--copies 1] [--quick]` (`--help`).
"""

import argparse
import os
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid

from neurodepot.deid.dicom_batch import deidentify_tree
from neurodepot.deid.dicom_headers import DicomRecipe, SubjectKeys

SOURCE = Path("/work/shared/testdata/dcm_qa_nih/In")
# dicognito 0.19.0's console script calls `main()` without its arguments (a TypeError), so its
# CLI is run as the module, which passes them.
DICOGNITO_CLI = (sys.executable, "-m", "dicognito")
GOAL_RATIO = 3.0
CLI_TIMEOUT_S = 60.0
PER_FILE_TIMEOUT_S = 0.5
OUTPUT_TAIL_CHARS = 2000

CORES = os.cpu_count() or 1
NEURODEPOT_1 = "neurodepot, 1 worker"
NEURODEPOT_ALL = f"neurodepot, {CORES} workers"
DEID = "deid (default recipe)"
DICOGNITO = "dicognito API"
DICOGNITO_CLI_NAME = "dicognito CLI"
PYDICOM = "pydicom read+write"
CONTENDERS = (NEURODEPOT_1, NEURODEPOT_ALL, DEID, DICOGNITO, DICOGNITO_CLI_NAME, PYDICOM)

RECIPE = DicomRecipe(options=frozenset(), uid_root="2.25", uid_key=secrets.token_bytes(32))
KEYS = SubjectKeys(patient_name="sub-BENCH001", patient_id="sub-BENCH001", date_offset_days=-17)


class BenchError(RuntimeError):
    """A contender misbehaved: the figures would be meaningless."""


@dataclass(frozen=True)
class BenchConfig:
    repeat: int
    copies: int
    tmp_dir: Path | None


@dataclass(frozen=True)
class Corpus:
    folder: Path
    files: tuple[Path, ...]
    total_bytes: int


def parse_args(argv: Sequence[str]) -> BenchConfig:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per contender (default 3)")
    parser.add_argument(
        "--copies", type=int, default=1, help="passes over the 608 source files (default 1)"
    )
    parser.add_argument("--quick", action="store_true", help="one run (same as --repeat 1)")
    parser.add_argument(
        "--tmp-dir", type=Path, help="where the temporary folder is made (default: system's)"
    )
    args = parser.parse_args(argv)
    repeat = 1 if args.quick else args.repeat
    if repeat < 1 or args.copies < 1:
        parser.error("--repeat and --copies must be at least 1")
    return BenchConfig(repeat, args.copies, args.tmp_dir)


# --- the corpus ----------------------------------------------------------------------------


def build_corpus(folder: Path, copies: int) -> Corpus:
    """The source's .dcm files as they are, then `copies - 1` passes with fresh UIDs."""
    sources = sorted(SOURCE.rglob("*.dcm"))
    if not sources:
        raise BenchError(f"no .dcm files under {SOURCE}")
    written: list[Path] = []
    for copy in range(copies):
        studies: dict[str, str] = {}
        series: dict[str, str] = {}
        for path in sources:
            target = folder / f"copy-{copy + 1:03d}" / path.relative_to(SOURCE)
            target.parent.mkdir(parents=True, exist_ok=True)
            if copy == 0:
                shutil.copyfile(path, target)
            else:
                ds = pydicom.dcmread(path)
                ds.StudyInstanceUID = studies.setdefault(ds.StudyInstanceUID, generate_uid())
                ds.SeriesInstanceUID = series.setdefault(ds.SeriesInstanceUID, generate_uid())
                ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
                ds.save_as(target)
            written.append(target)
    return Corpus(folder, tuple(written), sum(path.stat().st_size for path in written))


def count_files(folder: Path) -> int:
    return sum(len(names) for _, _, names in os.walk(folder))


# --- the contenders: each de-identifies `corpus` into `out`, which it must fill -----------------


def neurodepot(workers: int) -> Callable[[Corpus, Path], None]:
    def run(corpus: Corpus, out: Path) -> None:
        report = deidentify_tree(corpus.folder, out, RECIPE, KEYS, workers=workers)
        if report.written != len(corpus.files) or report.skipped or report.duplicates:
            said = f"{report.skipped[:3]} {report.duplicates[:3]}"
            raise BenchError(f"neurodepot wrote {report.written} of {len(corpus.files)}: {said}")

    return run


def deid_package(corpus: Corpus, out: Path) -> None:
    from deid.config import DeidRecipe
    from deid.dicom import replace_identifiers

    recipe = DeidRecipe()  # its default: the package's `deid.dicom` recipe
    by_folder: dict[Path, list[str]] = {}
    for path in corpus.files:
        by_folder.setdefault(path.parent, []).append(str(path))
    for folder, files in by_folder.items():
        mirror = out / folder.relative_to(corpus.folder)
        mirror.mkdir(parents=True)
        replace_identifiers(files, deid=recipe, save=True, output_folder=str(mirror))


def dicognito_api(corpus: Corpus, out: Path) -> None:
    from dicognito.anonymizer import Anonymizer

    anonymizer = Anonymizer()
    out.mkdir()
    for path in corpus.files:
        with pydicom.dcmread(path) as ds:
            anonymizer.anonymize(ds)
            ds.save_as(out / f"{ds.SOPInstanceUID}.dcm", enforce_file_format=True)


def dicognito_cli(corpus: Corpus, out: Path) -> None:
    timeout = CLI_TIMEOUT_S + PER_FILE_TIMEOUT_S * len(corpus.files)
    run([*DICOGNITO_CLI, "--quiet", "--output-directory", str(out), str(corpus.folder)], timeout)


def pydicom_copy(corpus: Corpus, out: Path) -> None:
    out.mkdir()
    for index, path in enumerate(corpus.files):
        pydicom.dcmread(path).save_as(out / f"{index:06d}.dcm")


RUNNERS: dict[str, Callable[[Corpus, Path], None]] = {
    NEURODEPOT_1: neurodepot(1),
    NEURODEPOT_ALL: neurodepot(CORES),
    DEID: deid_package,
    DICOGNITO: dicognito_api,
    DICOGNITO_CLI_NAME: dicognito_cli,
    PYDICOM: pydicom_copy,
}


def run(command: Sequence[str], timeout_s: float) -> str:
    """Run a command; a failure or a timeout (the process killed) raises."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as error:
        raise BenchError(f"{' '.join(command)} took more than {timeout_s:.0f} s") from error
    if done.returncode != 0:
        output = f"{done.stdout}{done.stderr}"[-OUTPUT_TAIL_CHARS:].strip()
        raise BenchError(f"{' '.join(command)} exited {done.returncode}:\n{output}")
    return done.stdout


@dataclass(frozen=True)
class Timing:
    """One run: wall-clock seconds, and CPU seconds where they can be counted (None: a pool)."""

    wall: float
    cpu: float | None
    load: float  # the 1-minute load average after the run: other work on the machine


def cpu_seconds() -> tuple[float, float]:
    """CPU seconds of this process, and of its children that have exited (the CLI runs)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time(), children.ru_utime + children.ru_stime


def measure(name: str, corpus: Corpus, out: Path) -> Timing:
    """One contender's run; its output must hold one file per input file."""
    os.sync()
    own, children = cpu_seconds()
    start = time.perf_counter()
    RUNNERS[name](corpus, out)
    wall = time.perf_counter() - start
    own_after, children_after = cpu_seconds()
    written = count_files(out)
    shutil.rmtree(out)
    if written != len(corpus.files):
        raise BenchError(f"{name} wrote {written} files for {len(corpus.files)}")
    # The pool's workers are children of multiprocessing's fork server, not of this process.
    cpu = None if name == NEURODEPOT_ALL and CORES > 1 else own_after - own
    if name == DICOGNITO_CLI_NAME:
        cpu = children_after - children
    return Timing(wall, cpu, os.getloadavg()[0])


def cli_start_seconds() -> float:
    start = time.perf_counter()
    run([*DICOGNITO_CLI, "--version"], CLI_TIMEOUT_S)
    return time.perf_counter() - start


# --- the run --------------------------------------------------------------------------------


def bench(root: Path, config: BenchConfig) -> tuple[Corpus, dict[str, list[Timing]], list[float]]:
    print(f"writing the corpus ({config.copies} pass(es) over {SOURCE}) ...", flush=True)
    corpus = build_corpus(root / "corpus", config.copies)
    print(
        f"  {len(corpus.files)} files, {corpus.total_bytes / 1e6:.1f} MB in {corpus.folder}",
        flush=True,
    )
    timings: dict[str, list[Timing]] = {name: [] for name in CONTENDERS}
    starts: list[float] = []
    for index in range(config.repeat):
        print(f"run {index + 1}/{config.repeat}:", flush=True)
        shift = index % len(CONTENDERS)
        for name in CONTENDERS[shift:] + CONTENDERS[:shift]:
            timing = measure(name, corpus, root / "out")
            timings[name].append(timing)
            cpu = "" if timing.cpu is None else f"  CPU {timing.cpu:6.2f} s"
            print(
                f"  {name:<24} {timing.wall:7.2f} s  {len(corpus.files) / timing.wall:7.1f} "
                f"files/s{cpu}  (load {timing.load:.1f})",
                flush=True,
            )
        starts.append(cli_start_seconds())
    return corpus, timings, starts


def print_summary(
    corpus: Corpus, timings: dict[str, list[Timing]], starts: list[float], load: float
) -> None:
    files = len(corpus.files)
    wall = {name: statistics.median(t.wall for t in runs) for name, runs in timings.items()}
    rate = {name: files / seconds for name, seconds in wall.items()}
    cpu = {
        name: statistics.median(t.cpu for t in runs if t.cpu is not None) / files * 1000
        for name, runs in timings.items()
        if all(t.cpu is not None for t in runs)
    }
    print(f"\nmedians of {len(starts)} run(s), {files} files ({corpus.total_bytes / 1e6:.1f} MB):")
    for name, runs in timings.items():
        listed = ", ".join(f"{t.wall:.2f}" for t in runs)
        used = f"{cpu[name]:6.2f} CPU ms/file" if name in cpu else f"{'(pool)':>6} CPU ms/file"
        print(
            f"  {name:<24} {rate[name]:7.1f} files/s  {wall[name] / files * 1000:6.2f} ms/file  "
            f"{used}  (runs: {listed} s)"
        )
    print(f"  {'dicognito CLI start':<24} {statistics.median(starts):7.2f} s (`--version`)")
    print("ratios of files/s (> 1: neurodepot faster):")
    for ours in (NEURODEPOT_ALL, NEURODEPOT_1):
        listed = ", ".join(
            f"/ {peer} {rate[ours] / rate[peer]:.2f}"
            for peer in (DICOGNITO, DICOGNITO_CLI_NAME, DEID, PYDICOM)
        )
        print(f"  {ours}: {listed}")
    listed = ", ".join(
        f"{peer} {cpu[peer] / cpu[NEURODEPOT_1]:.2f}"
        for peer in (DICOGNITO, DICOGNITO_CLI_NAME, DEID, PYDICOM)
        if peer in cpu
    )
    print(f"  CPU per file, peer / {NEURODEPOT_1} (less sensitive to load): {listed}")
    ratio = rate[NEURODEPOT_ALL] / rate[DICOGNITO]
    verdict = "met" if ratio >= GOAL_RATIO else "NOT met"
    print(
        f"goal: at least {GOAL_RATIO:.0f}x dicognito: {NEURODEPOT_ALL} / {DICOGNITO} = "
        f"{ratio:.2f} ({verdict}; / its CLI {rate[NEURODEPOT_ALL] / rate[DICOGNITO_CLI_NAME]:.2f})"
    )
    print(
        f"load average: {load:.2f} at the start, {os.getloadavg()[0]:.2f} at the end "
        f"({CORES} cores; other work on the machine slows the pool most)"
    )


def main(argv: Sequence[str]) -> None:
    config = parse_args(argv)
    # This script's name is the `deid` package's: its folder must not shadow the package.
    here = Path(__file__).resolve().parent
    sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != here]
    load = os.getloadavg()[0]
    print(
        f"neurodepot deidentify_tree, deid, dicognito ({' '.join(DICOGNITO_CLI)}); {CORES} cores; "
        f"{config.repeat} run(s) per contender, interleaved; load average {load:.2f}",
        flush=True,
    )
    try:
        with tempfile.TemporaryDirectory(prefix="bench-deid-", dir=config.tmp_dir) as tmp:
            corpus, timings, starts = bench(Path(tmp), config)
    except BenchError as error:
        sys.exit(f"bench/deid.py FAILED: {error}")
    print_summary(corpus, timings, starts, load)


if __name__ == "__main__":
    main(sys.argv[1:])
