"""XNAT-style identifiers and labels, and the relative paths of files inside a resource.

Pure functions: they decide, they raise `Invalid` with what to fix, they touch nothing.
"""

import re

from neurodepot.errors import Invalid

LABEL_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_PATH_LENGTH = 1024
_FORBIDDEN_PATH_CHARACTERS = re.compile(r"[\x00-\x1f\x7f\\]")


def check_label(label: str, kind: str) -> str:
    """Return `label` if it is a valid label for a `kind` (project, subject, …), else raise."""
    if not LABEL_PATTERN.fullmatch(label):
        raise Invalid(
            f"{kind} label {label!r} is not valid: use 1 to 64 letters, digits, '_' or '-'"
        )
    return label


def check_file_path(path: str) -> str:
    """Normalise a file's path inside a resource: relative, '/'-separated, no '.' or '..' parts.

    The path is what a download will be named, so nothing may climb out of the resource.
    """
    if not path or len(path) > MAX_PATH_LENGTH:
        raise Invalid(f"file path must be 1 to {MAX_PATH_LENGTH} characters long")
    if _FORBIDDEN_PATH_CHARACTERS.search(path):
        raise Invalid(f"file path {path!r} holds a control character or a backslash")
    if path.startswith("/"):
        raise Invalid(f"file path {path!r} must be relative to its resource (no leading '/')")
    parts = [part for part in path.split("/") if part != ""]
    if any(part in {".", ".."} for part in parts) or not parts:
        raise Invalid(f"file path {path!r} may not contain '.' or '..' parts")
    return "/".join(parts)
