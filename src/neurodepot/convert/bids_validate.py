"""The official BIDS validator (`bids-validator-deno` from PyPI), run offline on a folder.

Its JSON report is reduced to what a user acts on: each issue's code, severity, location and
message. Warnings are reported, errors fail.
"""

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from neurodepot.errors import Invalid, Unavailable

TIMEOUT_S = 900


@dataclass(frozen=True)
class ValidationIssue:
    code: str
    severity: str
    location: str
    message: str


@dataclass(frozen=True)
class ValidationReport:
    path: str
    validator: str
    errors: tuple[ValidationIssue, ...]
    warnings: tuple[ValidationIssue, ...]

    @property
    def valid(self) -> bool:
        return not self.errors


def validator() -> Path:
    """The validator's executable, beside this Python or on PATH."""
    beside = Path(sys.executable).parent / "bids-validator-deno"
    found = beside if beside.is_file() else shutil.which("bids-validator-deno")
    if not found:
        raise Unavailable("the BIDS validator is not installed: pip install bids-validator-deno")
    return Path(found)


def validate(path: Path) -> ValidationReport:
    """Validate the dataset at `path`; raises `Invalid` if it is not a folder."""
    if not path.is_dir():
        raise Invalid(f"{path} is not a folder holding a BIDS dataset")
    env = {**os.environ, "DENO_NO_UPDATE_CHECK": "1", "NO_COLOR": "1"}
    try:
        done = subprocess.run(
            [str(validator()), "--json", str(path)],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise Unavailable(f"the BIDS validator took longer than {TIMEOUT_S} s") from None
    try:
        report = json.loads(done.stdout)
        found = report["issues"]["issues"]
        version = str(report.get("summary", {}).get("schemaVersion", ""))
    except (json.JSONDecodeError, KeyError, TypeError):
        said = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise Unavailable(f"the BIDS validator gave no report: {said[0]}") from None
    issues = [_issue(i) for i in found]
    return ValidationReport(
        str(path),
        f"bids-validator-deno (schema {version})" if version else "bids-validator-deno",
        tuple(i for i in issues if i.severity == "error"),
        tuple(i for i in issues if i.severity == "warning"),
    )


def _issue(raw: dict[str, object]) -> ValidationIssue:
    code = str(raw.get("code", ""))
    sub = raw.get("subCode")
    message = str(raw.get("issueMessage") or "").strip().splitlines()
    return ValidationIssue(
        f"{code}:{sub}" if sub else code,
        str(raw.get("severity", "")),
        str(raw.get("location", "")),
        message[0] if message else "",
    )
