"""Settings: `neurodepot.toml` in the depot folder, overridden by `NEURODEPOT_*` variables.

Loaded once by a composition root (the CLI, the server, a test) and passed down; nothing reads
settings at import time.
"""

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from email.utils import parseaddr
from ipaddress import ip_address
from pathlib import Path
from urllib.parse import urlsplit

from neurodepot.errors import Invalid, NotADepot

CONFIG_FILE = "neurodepot.toml"
SQLITE_FILE = "neurodepot.sqlite"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_DICOM_PORT = 11112
DEFAULT_AE_TITLE = "NEURODEPOT"
DEFAULT_QUIET_SECONDS = 60.0
DEFAULT_PUBLIC_URL = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"
DEFAULT_SMTP_PORT = 25
DEFAULT_MAIL_FROM = "neurodepot@localhost"
# An address as mail servers accept it in MAIL FROM: ASCII, no spaces or brackets.
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@[A-Za-z0-9.-]{1,253}")


@dataclass(frozen=True)
class Settings:
    """Everything a depot's code needs to know about where and how it runs."""

    root: Path
    database_url: str
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    auto_migrate: bool = True
    dask_scheduler: str | None = None
    dask_workers: int | None = None
    job_heartbeat_s: float = 5.0
    job_lease_s: float = 30.0
    dicom_enabled: bool = True
    dicom_host: str = DEFAULT_HOST
    dicom_port: int = DEFAULT_DICOM_PORT
    dicom_ae_title: str = DEFAULT_AE_TITLE
    prearchive_quiet_s: float = DEFAULT_QUIET_SECONDS
    # `[[dicom.routes]]` as written; `neurodepot.ingest.routing` checks and compiles them.
    dicom_routes: tuple[Mapping[str, object], ...] = ()
    # Where people reach the server, for links in mails (no trailing slash).
    public_url: str = DEFAULT_PUBLIC_URL
    smtp_host: str = DEFAULT_HOST
    smtp_port: int = DEFAULT_SMTP_PORT
    smtp_starttls: bool = False
    smtp_user: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    mail_from: str = DEFAULT_MAIL_FROM
    # A client on loopback without credentials is the local operator (see `api.guard`); a
    # request with proxy headers never is. Off for a server behind a reverse proxy.
    loopback_operator: bool = True

    @property
    def blob_root(self) -> Path:
        return self.root / "blobs"

    @property
    def prearchive_root(self) -> Path:
        return self.root / "prearchive"

    @property
    def work_root(self) -> Path:
        return self.root / "work"

    def with_overrides(self, **changes: object) -> "Settings":
        return replace(self, **changes)


def sqlite_url(root: Path) -> str:
    return f"sqlite+pysqlite:///{root / SQLITE_FILE}"


def default_root(env: Mapping[str, str] | None = None) -> Path:
    """The depot chosen by `NEURODEPOT_ROOT`, else the current folder."""
    env = os.environ if env is None else env
    return Path(env.get("NEURODEPOT_ROOT") or ".").expanduser()


def load_settings(root: Path, env: Mapping[str, str] | None = None) -> Settings:
    """Read the depot's settings file and apply environment overrides.

    Raises `NotADepot` when `root` has no `neurodepot.toml` and `Invalid` when a value is
    malformed, naming the file or variable to fix.
    """
    env = os.environ if env is None else env
    root = root.expanduser().resolve()
    path = root / CONFIG_FILE
    if not path.is_file():
        raise NotADepot(
            f"{root} is not a neurodepot depot (no {CONFIG_FILE}); "
            "create one with `neurodepot init DIR` or choose another with --root/NEURODEPOT_ROOT"
        )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise Invalid(f"{path} is not valid TOML: {exc}") from exc
    depot = _table(data, "depot", path)
    server = _table(data, "server", path)
    jobs = _table(data, "jobs", path)
    dicom = _table(data, "dicom", path)
    prearchive = _table(data, "prearchive", path)
    mail = _table(data, "mail", path)
    routes = dicom.get("routes", [])
    if not isinstance(routes, list) or not all(isinstance(r, dict) for r in routes):
        raise Invalid(f"{path}: dicom.routes must be an array of tables ([[dicom.routes]])")
    database_url = (
        env.get("NEURODEPOT_DATABASE_URL") or depot.get("database_url") or sqlite_url(root)
    )
    smtp_host = _host(env.get("NEURODEPOT_SMTP_HOST") or mail.get("smtp_host", DEFAULT_HOST))
    smtp_starttls = _bool(
        env.get("NEURODEPOT_SMTP_STARTTLS", mail.get("smtp_starttls", False)),
        "NEURODEPOT_SMTP_STARTTLS (smtp_starttls)",
    )
    smtp_user = _optional_line(
        env.get("NEURODEPOT_SMTP_USER") or mail.get("smtp_user"), "smtp_user"
    )
    if smtp_user is not None and not smtp_starttls and not _is_loopback(smtp_host):
        raise Invalid(
            "setting smtp_user is set but smtp_starttls is off: the password would cross the "
            f"network to {smtp_host} in clear; set smtp_starttls = true (NEURODEPOT_SMTP_STARTTLS)"
        )
    return Settings(
        root=root,
        database_url=str(database_url),
        host=str(env.get("NEURODEPOT_HOST") or server.get("host", DEFAULT_HOST)),
        port=_int(env.get("NEURODEPOT_PORT") or server.get("port", DEFAULT_PORT), "port"),
        auto_migrate=_bool(env.get("NEURODEPOT_AUTO_MIGRATE", depot.get("auto_migrate", True))),
        dask_scheduler=str(env.get("NEURODEPOT_DASK_SCHEDULER") or jobs.get("scheduler") or "")
        or None,
        dask_workers=_optional_int(env.get("NEURODEPOT_DASK_WORKERS") or jobs.get("workers")),
        job_heartbeat_s=_float(
            env.get("NEURODEPOT_JOB_HEARTBEAT_SECONDS") or jobs.get("heartbeat_seconds", 5.0),
            "job heartbeat seconds",
        ),
        job_lease_s=_float(
            env.get("NEURODEPOT_JOB_LEASE_SECONDS") or jobs.get("lease_seconds", 30.0),
            "job lease seconds",
        ),
        dicom_enabled=_bool(
            env.get("NEURODEPOT_DICOM_ENABLED", dicom.get("enabled", True)),
            "NEURODEPOT_DICOM_ENABLED",
        ),
        dicom_host=str(env.get("NEURODEPOT_DICOM_HOST") or dicom.get("host", DEFAULT_HOST)),
        dicom_port=_int(
            env.get("NEURODEPOT_DICOM_PORT") or dicom.get("port", DEFAULT_DICOM_PORT), "dicom port"
        ),
        dicom_ae_title=_ae_title(
            env.get("NEURODEPOT_DICOM_AE_TITLE") or dicom.get("ae_title", DEFAULT_AE_TITLE)
        ),
        prearchive_quiet_s=_float(
            env.get("NEURODEPOT_PREARCHIVE_QUIET_SECONDS")
            or prearchive.get("quiet_seconds", DEFAULT_QUIET_SECONDS),
            "prearchive quiet seconds",
        ),
        dicom_routes=tuple(routes),
        public_url=_public_url(
            env.get("NEURODEPOT_PUBLIC_URL") or server.get("public_url", DEFAULT_PUBLIC_URL)
        ),
        smtp_host=smtp_host,
        smtp_port=_port(
            env.get("NEURODEPOT_SMTP_PORT") or mail.get("smtp_port", DEFAULT_SMTP_PORT),
            "smtp_port (NEURODEPOT_SMTP_PORT)",
        ),
        smtp_starttls=smtp_starttls,
        smtp_user=smtp_user,
        smtp_password=_optional_line(
            env.get("NEURODEPOT_SMTP_PASSWORD") or mail.get("smtp_password"), "smtp_password"
        ),
        mail_from=_mail_from(
            env.get("NEURODEPOT_MAIL_FROM") or mail.get("mail_from", DEFAULT_MAIL_FROM)
        ),
        loopback_operator=_bool(
            env.get("NEURODEPOT_LOOPBACK_OPERATOR", server.get("loopback_operator", True)),
            "NEURODEPOT_LOOPBACK_OPERATOR (loopback_operator)",
        ),
    )


def render_config(database_url: str | None = None) -> str:
    """The `neurodepot.toml` written by `neurodepot init`, with every setting explained."""
    db_line = (
        f'database_url = "{database_url}"'
        if database_url
        else '# database_url = "postgresql+psycopg://user@host:5432/neurodepot"'
    )
    return (
        "# neurodepot depot settings; NEURODEPOT_* environment variables override them.\n"
        "[depot]\n"
        f"{db_line}\n"
        "# Apply pending schema migrations when the depot is opened (NEURODEPOT_AUTO_MIGRATE).\n"
        "auto_migrate = true\n"
        "\n"
        "[server]\n"
        f'host = "{DEFAULT_HOST}"\n'
        f"port = {DEFAULT_PORT}\n"
        "# The address people open the server at, for links in mails (NEURODEPOT_PUBLIC_URL).\n"
        '# public_url = "https://depot.example.org"\n'
        "# A client on this machine without credentials is the local operator, allowed\n"
        "# everything, unless its request carries proxy headers (Forwarded, X-Forwarded-For,\n"
        "# X-Real-IP, Via). Behind a reverse proxy, turn it off (NEURODEPOT_LOOPBACK_OPERATOR).\n"
        "# loopback_operator = true\n"
        "\n"
        "[jobs]\n"
        "# Run pipelines on an existing Dask scheduler (NEURODEPOT_DASK_SCHEDULER); by default\n"
        "# `serve` starts a local cluster of worker processes (NEURODEPOT_DASK_WORKERS of them).\n"
        '# scheduler = "tcp://scheduler.example.org:8786"\n'
        "# workers = 2\n"
        "heartbeat_seconds = 5\n"
        "lease_seconds = 30\n"
        "\n"
        "[dicom]\n"
        "# The DICOM C-STORE/C-ECHO listener started by `serve` (NEURODEPOT_DICOM_*). Listen on\n"
        "# an address the scanners reach (e.g. 0.0.0.0) only on the centre's scanner network.\n"
        "enabled = true\n"
        f'host = "{DEFAULT_HOST}"\n'
        f"port = {DEFAULT_DICOM_PORT}\n"
        f'ae_title = "{DEFAULT_AE_TITLE}"\n'
        "\n"
        "# Routing rules, tried in order; XNAT's `Project: P Subject: S Session: E` in\n"
        "# StudyComments or PatientComments always works after them. Examples:\n"
        "# [[dicom.routes]]\n"
        '# name = "3T scanner"\n'
        '# called_aet = "MRI3T"\n'
        '# project = "alpha"\n'
        "#\n"
        "# [[dicom.routes]]\n"
        '# match.StudyDescription = "^(?P<project>[A-Za-z0-9]+)\\\\^(?P<subject>[A-Za-z0-9]+)"\n'
        "\n"
        "[prearchive]\n"
        "# A study is ready once no instance has arrived for this long\n"
        "# (NEURODEPOT_PREARCHIVE_QUIET_SECONDS).\n"
        f"quiet_seconds = {DEFAULT_QUIET_SECONDS:g}\n"
        "\n"
        "# Mail for account verification and password resets, sent through this SMTP server\n"
        "# (NEURODEPOT_SMTP_HOST, _PORT, _STARTTLS, _USER, _PASSWORD, NEURODEPOT_MAIL_FROM).\n"
        "# Keep the password in NEURODEPOT_SMTP_PASSWORD rather than in this file.\n"
        "# [mail]\n"
        f'# smtp_host = "{DEFAULT_HOST}"\n'
        f"# smtp_port = {DEFAULT_SMTP_PORT}\n"
        "# smtp_starttls = false\n"
        '# smtp_user = "neurodepot"\n'
        f'# mail_from = "{DEFAULT_MAIL_FROM}"\n'
    )


def _table(data: dict[str, object], name: str, path: Path) -> dict[str, object]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise Invalid(f"{path}: [{name}] must be a table")
    return value


def _int(value: object, name: str) -> int:
    try:
        return int(str(value))
    except ValueError:
        raise Invalid(f"setting {name} must be a whole number, not {value!r}") from None


def _port(value: object, name: str) -> int:
    number = _int(value, name)
    if not 0 < number < 65536:
        raise Invalid(f"setting {name} must be a TCP port from 1 to 65535, not {value!r}")
    return number


def _optional_line(value: object, name: str) -> str | None:
    if value in (None, ""):
        return None
    text = str(value)
    if any(c in text for c in "\r\n\x00"):
        raise Invalid(f"setting {name} must be one line")
    return text


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _host(value: object) -> str:
    text = str(value).strip()
    if not text or not text.isprintable() or any(c.isspace() for c in text):
        raise Invalid(
            "setting smtp_host (NEURODEPOT_SMTP_HOST) must be a host name or address, "
            f"not {value!r}"
        )
    return text


def _public_url(value: object) -> str:
    """An http(s) URL naming a host, without query, fragment or trailing slash."""
    text = str(value).strip()
    try:
        parts = urlsplit(text)
        well_formed = (
            text.isprintable()
            and " " not in text
            and parts.scheme in ("http", "https")
            and bool(parts.hostname)
            and not parts.query
            and not parts.fragment
            and parts.port != 0
        )
    except ValueError:  # a bad port or IPv6 address
        well_formed = False
    if not well_formed:
        raise Invalid(
            "setting public_url (NEURODEPOT_PUBLIC_URL) must be the http:// or https:// address "
            f"people open the server at, such as https://depot.example.org, not {value!r}"
        )
    return text.rstrip("/")


def _mail_from(value: object) -> str:
    """`address` or `Name <address>`, on one line."""
    text = str(value).strip()
    _name, address = parseaddr(text)
    if any(c in text for c in "\r\n\x00") or not _PLAIN_ADDRESS.fullmatch(address):
        raise Invalid(
            "setting mail_from (NEURODEPOT_MAIL_FROM) must be an address such as "
            f"neurodepot@example.org or 'Neurodepot <neurodepot@example.org>', not {value!r}"
        )
    return text


def _optional_int(value: object) -> int | None:
    return None if value in (None, "") else _int(value, "workers")


def _float(value: object, name: str) -> float:
    try:
        number = float(str(value))
    except ValueError:
        raise Invalid(f"setting {name} must be a number, not {value!r}") from None
    if number <= 0:
        raise Invalid(f"setting {name} must be positive, not {value!r}")
    return number


def _bool(value: object, name: str = "NEURODEPOT_AUTO_MIGRATE") -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise Invalid(f"{name} must be true or false, not {value!r}")


def _ae_title(value: object) -> str:
    """An AE title: 1-16 printable ASCII characters, no backslash, not only spaces."""
    text = str(value).strip()
    if not 0 < len(text) <= 16 or not text.isascii() or not text.isprintable() or "\\" in text:
        raise Invalid(f"DICOM AE title must be 1 to 16 printable ASCII characters, not {value!r}")
    return text
