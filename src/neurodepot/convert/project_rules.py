"""A project's own BIDS rules: one checked file in the project's `BIDS_RULES` resource.

Kept as a project resource so that the rules travel with the project's data, are verified
like any file, and a change is visible (a new digest). They are tried before the defaults.
"""

from sqlalchemy.orm import Session

from neurodepot.catalog import resources
from neurodepot.catalog.records import StoredFile
from neurodepot.catalog.target import Target
from neurodepot.convert.rules import RuleSet, default_rules, parse_rules
from neurodepot.depot.blobstore import BlobStore
from neurodepot.depot.folder import Depot
from neurodepot.errors import Invalid

RULES_RESOURCE = "BIDS_RULES"
RULES_FILES = {"rules.toml": "toml", "rules.json": "json"}
MAX_RULES_BYTES = 1024 * 1024


def project_rules(db: Session, blobs: BlobStore, project: str) -> RuleSet:
    """The project's rules (if it has any) followed by the default rules."""
    own = _stored_rules(db, blobs, project)
    defaults = default_rules()
    return RuleSet(own.rules + defaults.rules) if own else defaults


def _stored_rules(db: Session, blobs: BlobStore, project: str) -> RuleSet | None:
    target = Target(project)
    if resources.find_resource_or_none(db, target, RULES_RESOURCE) is None:
        return None
    info = resources.get_resource(db, target, RULES_RESOURCE)
    for file in info.files:
        if file.path in RULES_FILES:
            with blobs.open(file.digest) as handle:
                text = handle.read(MAX_RULES_BYTES).decode("utf-8", errors="replace")
            return parse_rules(text, f"{project}'s {file.path}", RULES_FILES[file.path])
    return None


def set_project_rules(depot: Depot, project: str, text: str, kind: str) -> StoredFile:
    """Check rules and store them as the project's (replacing any it had)."""
    if kind not in ("toml", "json"):
        raise Invalid("a rules file must be TOML (.toml) or JSON (.json)")
    if len(text.encode()) > MAX_RULES_BYTES:
        raise Invalid(f"a rules file may hold at most {MAX_RULES_BYTES} bytes")
    parse_rules(text, f"rules.{kind}", kind)
    name = f"rules.{kind}"
    other = next(n for n in RULES_FILES if n != name)
    target = Target(project)
    with depot.reading() as db:
        held = resources.find_resource_or_none(db, target, RULES_RESOURCE) is not None
        names = (
            [f.path for f in resources.get_resource(db, target, RULES_RESOURCE).files]
            if held
            else []
        )
    stored = resources.add_file(
        depot, target, RULES_RESOURCE, name, [text.encode()], overwrite=True
    )
    if other in names:
        resources.delete_file(depot, target, RULES_RESOURCE, other)
    return stored
