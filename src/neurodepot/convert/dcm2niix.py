"""Running dcm2niix (the PyPI wheel's binary) on one series, and reading what it says.

dcm2niix decides itself how a series splits into files (echoes, real/imaginary/phase parts,
`bval`/`bvec`); we keep every file it writes under one stem. When it writes nothing, the reason
is in its own output: the last warning or error lines are kept as the reason a user sees.
"""

import re
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from neurodepot.errors import Unavailable

TIMEOUT_S = 600
# Files dcm2niix writes for a series; anything else in its output folder is not ours to keep.
OUTPUT_SUFFIXES = (".nii.gz", ".nii", ".json", ".bval", ".bvec")
_PROBLEM = re.compile(r"^(error|warning|unsupported|unable|file not)", re.IGNORECASE)
# dcm2niix's exit codes (its `nii_dicom_batch.h`): what each means for a user.
EXIT_REASONS = {
    2: "no DICOM images were found",
    3: "the DICOM files are corrupt or incomplete",
    4: "the series is not supported by dcm2niix",
    5: "dcm2niix could not write its output",
    6: "the series converted only in part",
    8: "the series is not supported by dcm2niix (rare format)",
    9: "the output would be renamed (a name clash)",
}


@dataclass(frozen=True)
class Dcm2niixResult:
    """What one run produced: the files (all under `stem`), or why there are none."""

    outputs: tuple[Path, ...]
    returncode: int
    reason: str
    log: str

    @property
    def converted(self) -> bool:
        return bool(self.outputs) and self.returncode in (0, 6)


def binary() -> Path:
    """The dcm2niix executable shipped by the `dcm2niix` wheel."""
    try:
        import dcm2niix
    except ImportError:
        raise Unavailable("dcm2niix is not installed: pip install dcm2niix") from None
    path = Path(dcm2niix.bin)
    if not path.is_file():
        raise Unavailable(f"the dcm2niix wheel has no binary at {path}; reinstall dcm2niix")
    return path


@cache
def version() -> str:
    """dcm2niix's version string (e.g. `v1.0.20260724`), recorded in provenance."""
    result = subprocess.run(
        [str(binary()), "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    found = re.search(r"v\d+\.\d+\.\d+\w*", result.stdout + result.stderr)
    return found.group(0) if found else "unknown"


def convert_folder(source: Path, output: Path, stem: str, compress: bool = True) -> Dcm2niixResult:
    """Convert every DICOM file in `source` into `output` as `stem*` files.

    `output` must be empty: what is found there afterwards is what dcm2niix wrote.
    """
    output.mkdir(parents=True, exist_ok=True)
    command = [
        str(binary()),
        "-z",
        "y" if compress else "n",
        "-b",
        "y",
        "-ba",
        "y",
        "-f",
        stem,
        "-o",
        str(output),
        str(source),
    ]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        return Dcm2niixResult((), -1, f"dcm2niix took longer than {TIMEOUT_S} s", "")
    log = (done.stdout + done.stderr).strip()
    outputs = tuple(
        sorted(p for p in output.iterdir() if p.is_file() and p.name.endswith(OUTPUT_SUFFIXES))
    )
    if not any(p.name.endswith((".nii.gz", ".nii")) for p in outputs):
        outputs = ()
    return Dcm2niixResult(outputs, done.returncode, _reason(done.returncode, log, outputs), log)


def _reason(returncode: int, log: str, outputs: tuple[Path, ...]) -> str:
    if outputs and returncode == 0:
        return ""
    problems = [line.strip() for line in log.splitlines() if _PROBLEM.match(line.strip())]
    said = "; ".join(dict.fromkeys(problems[-3:]))
    what = EXIT_REASONS.get(returncode, f"dcm2niix exited with {returncode}")
    if not outputs and returncode == 0:
        what = "dcm2niix wrote no image"
    return f"{what}: {said}" if said else what
