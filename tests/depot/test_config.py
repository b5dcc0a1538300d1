"""Settings from `neurodepot.toml` and `NEURODEPOT_*` variables (neurodepot/config.py)."""

import tomllib
from pathlib import Path

import pytest

from neurodepot.config import (
    CONFIG_FILE,
    DEFAULT_HOST,
    DEFAULT_PORT,
    load_settings,
    render_config,
    sqlite_url,
)
from neurodepot.errors import Invalid, NotADepot
from neurodepot.ingest.routing import compile_routes, route

PG = "postgresql+psycopg://neuro@db.example:5432/neurodepot"


def depot_folder(tmp_path: Path, settings_text: str | bytes) -> Path:
    root = tmp_path / "depot"
    root.mkdir()
    path = root / CONFIG_FILE
    if isinstance(settings_text, bytes):
        path.write_bytes(settings_text)
    else:
        path.write_text(settings_text, encoding="utf-8")
    return root


def test_written_settings_give_the_defaults(tmp_path: Path) -> None:
    root = depot_folder(tmp_path, render_config())
    settings = load_settings(root, env={})
    assert settings.root == root.resolve()
    assert settings.database_url == sqlite_url(root.resolve())
    assert (settings.host, settings.port, settings.auto_migrate) == (
        DEFAULT_HOST,
        DEFAULT_PORT,
        True,
    )
    assert settings.blob_root == root.resolve() / "blobs"
    assert settings.prearchive_root == root.resolve() / "prearchive"
    assert settings.work_root == root.resolve() / "work"


def test_written_settings_keep_an_explicit_database_url(tmp_path: Path) -> None:
    root = depot_folder(tmp_path, render_config(PG))
    assert load_settings(root, env={}).database_url == PG


def test_every_written_setting_is_valid_toml() -> None:
    parsed = tomllib.loads(render_config(PG))
    assert parsed == {
        "depot": {"database_url": PG, "auto_migrate": True},
        "server": {"host": DEFAULT_HOST, "port": DEFAULT_PORT},
        "jobs": {"heartbeat_seconds": 5, "lease_seconds": 30},
        "dicom": {"enabled": True, "host": DEFAULT_HOST, "port": 11112, "ae_title": "NEURODEPOT"},
        "prearchive": {"quiet_seconds": 60},
    }


def test_the_routing_examples_in_the_written_file_work_once_uncommented(tmp_path: Path) -> None:
    text = render_config()
    start = text.index("# [[dicom.routes]]")
    end = text.index("[prearchive]")
    examples = "\n".join(line.removeprefix("# ") for line in text[start:end].splitlines())
    examples = examples.replace("#\n", "\n").replace("\n#", "\n")
    root = depot_folder(tmp_path, text[:start] + examples + "\n" + text[end:])
    routes = compile_routes(load_settings(root, env={}).dicom_routes)
    assert [r.name for r in routes] == ["3T scanner", "route 2"]
    assert route(routes, "MRI3T", {}, "P1", "", None, "1.2").project == "alpha"
    found = route(routes, "OTHER", {"StudyDescription": "beta^S07"}, "", "", None, "1.2.3")
    assert (found.project, found.subject, found.session) == ("beta", "S07", "S07_3")


def test_dicom_settings_come_from_the_file_and_the_environment(tmp_path: Path) -> None:
    root = depot_folder(
        tmp_path, '[dicom]\nport = 4242\nae_title = "ARCHIVE"\n[prearchive]\nquiet_seconds = 5\n'
    )
    settings = load_settings(root, env={})
    assert (settings.dicom_port, settings.dicom_ae_title, settings.prearchive_quiet_s) == (
        4242,
        "ARCHIVE",
        5.0,
    )
    assert settings.dicom_enabled
    overridden = load_settings(
        root,
        env={
            "NEURODEPOT_DICOM_PORT": "11113",
            "NEURODEPOT_DICOM_ENABLED": "false",
            "NEURODEPOT_PREARCHIVE_QUIET_SECONDS": "0.5",
        },
    )
    assert (overridden.dicom_port, overridden.dicom_enabled) == (11113, False)
    assert overridden.prearchive_quiet_s == 0.5


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ('[dicom]\nae_title = "WAY_TOO_LONG_AE_TITLE"\n', "AE title"),
        ('[dicom]\nae_title = "A\\\\B"\n', "AE title"),
        ('[dicom]\nport = "x"\n', "dicom port"),
        ("[prearchive]\nquiet_seconds = 0\n", "quiet seconds"),
        ("[dicom]\nroutes = 3\n", "dicom.routes"),
    ],
)
def test_malformed_dicom_settings_are_named(tmp_path: Path, text: str, complaint: str) -> None:
    with pytest.raises(Invalid, match=complaint):
        load_settings(depot_folder(tmp_path, text), env={})


@pytest.mark.parametrize(
    ("rule", "complaint"),
    [
        ({"project": "p"}, "give called_aet, match, or both"),
        ({"called_aet": "X"}, "name a project"),
        ({"called_aet": "X", "project": "bad label"}, "project label .bad label. is not valid"),
        ({"match": {"PatientName": "x"}, "project": "p"}, "cannot match on 'PatientName'"),
        ({"match": {"StudyDescription": "(unclosed"}, "project": "p"}, "bad regular expression"),
        ({"called_aet": "X", "project": "p", "typo": 1}, "unknown key"),
    ],
)
def test_bad_routing_rules_are_refused_naming_the_rule(rule: dict, complaint: str) -> None:
    with pytest.raises(Invalid, match=complaint) as refused:
        compile_routes([{"name": "mine", **rule}])
    assert "'mine'" in refused.value.message


def test_job_settings_come_from_the_file_and_the_environment(tmp_path: Path) -> None:
    root = depot_folder(
        tmp_path, '[jobs]\nscheduler = "tcp://10.0.0.5:8786"\nworkers = 3\nlease_seconds = 12\n'
    )
    settings = load_settings(root, env={})
    assert (settings.dask_scheduler, settings.dask_workers) == ("tcp://10.0.0.5:8786", 3)
    assert (settings.job_heartbeat_s, settings.job_lease_s) == (5.0, 12.0)
    overridden = load_settings(
        root,
        env={"NEURODEPOT_DASK_SCHEDULER": "tcp://127.0.0.1:9999", "NEURODEPOT_DASK_WORKERS": "1"},
    )
    assert (overridden.dask_scheduler, overridden.dask_workers) == ("tcp://127.0.0.1:9999", 1)
    (tmp_path / "plain").mkdir()
    assert load_settings(depot_folder(tmp_path / "plain", ""), env={}).dask_scheduler is None


@pytest.mark.parametrize("value", ["0", "-3", "soon"])
def test_a_bad_lease_is_refused_naming_the_setting(tmp_path: Path, value: str) -> None:
    root = depot_folder(tmp_path, "")
    with pytest.raises(Invalid, match="job lease seconds"):
        load_settings(root, env={"NEURODEPOT_JOB_LEASE_SECONDS": value})


def test_settings_file_values_are_used(tmp_path: Path) -> None:
    root = depot_folder(
        tmp_path,
        f'[depot]\ndatabase_url = "{PG}"\nauto_migrate = false\n'
        '[server]\nhost = "0.0.0.0"\nport = 9000\n',
    )
    settings = load_settings(root, env={})
    assert (settings.database_url, settings.auto_migrate) == (PG, False)
    assert (settings.host, settings.port) == ("0.0.0.0", 9000)


def test_environment_overrides_the_settings_file(tmp_path: Path) -> None:
    root = depot_folder(tmp_path, render_config(PG))
    env = {
        "NEURODEPOT_DATABASE_URL": "sqlite+pysqlite:////elsewhere.sqlite",
        "NEURODEPOT_HOST": "::1",
        "NEURODEPOT_PORT": "9443",
        "NEURODEPOT_AUTO_MIGRATE": "no",
    }
    settings = load_settings(root, env=env)
    assert settings.database_url == "sqlite+pysqlite:////elsewhere.sqlite"
    assert (settings.host, settings.port, settings.auto_migrate) == ("::1", 9443, False)


def test_the_loopback_operator_is_on_unless_the_file_or_the_environment_turns_it_off(
    tmp_path: Path,
) -> None:
    assert load_settings(depot_folder(tmp_path, render_config()), env={}).loopback_operator
    written = render_config().replace("# loopback_operator = true", "loopback_operator = false")
    (tmp_path / "off").mkdir()
    root = depot_folder(tmp_path / "off", written)
    assert load_settings(root, env={}).loopback_operator is False
    on_again = load_settings(root, env={"NEURODEPOT_LOOPBACK_OPERATOR": "yes"})
    assert on_again.loopback_operator is True
    assert load_settings(root, env={"NEURODEPOT_LOOPBACK_OPERATOR": "0"}).loopback_operator is False
    with pytest.raises(Invalid, match="NEURODEPOT_LOOPBACK_OPERATOR"):
        load_settings(root, env={"NEURODEPOT_LOOPBACK_OPERATOR": "maybe"})


def test_overrides_give_a_new_settings_object(tmp_path: Path) -> None:
    settings = load_settings(depot_folder(tmp_path, render_config()), env={})
    changed = settings.with_overrides(auto_migrate=False)
    assert (settings.auto_migrate, changed.auto_migrate) == (True, False)


@pytest.mark.parametrize(
    "settings_text",
    ["[depot\n", 'database_url = "unterminated\n', "[depot]\nport = = 1\n", b"\xff\xfe[depot]"],
    ids=["unclosed table", "unterminated string", "double equals", "not utf-8"],
)
def test_malformed_settings_file_is_invalid_naming_the_file(
    tmp_path: Path, settings_text: str | bytes
) -> None:
    root = depot_folder(tmp_path, settings_text)
    with pytest.raises(Invalid) as raised:
        load_settings(root, env={})
    assert str(root.resolve() / CONFIG_FILE) in raised.value.message


@pytest.mark.parametrize("table", ["depot", "server"])
def test_section_that_is_not_a_table_is_invalid(tmp_path: Path, table: str) -> None:
    root = depot_folder(tmp_path, f'{table} = "oops"\n')
    with pytest.raises(Invalid, match=rf"\[{table}\] must be a table"):
        load_settings(root, env={})


@pytest.mark.parametrize(
    ("settings_text", "env"),
    [("[server]\nport = 'http'\n", {}), ("", {"NEURODEPOT_PORT": "80a"})],
    ids=["file", "environment"],
)
def test_port_that_is_not_a_number_is_invalid(
    tmp_path: Path, settings_text: str, env: dict[str, str]
) -> None:
    root = depot_folder(tmp_path, settings_text)
    with pytest.raises(Invalid, match="port must be a whole number"):
        load_settings(root, env=env)


@pytest.mark.parametrize(
    ("settings_text", "env"),
    [("[depot]\nauto_migrate = 'perhaps'\n", {}), ("", {"NEURODEPOT_AUTO_MIGRATE": "2"})],
    ids=["file", "environment"],
)
def test_auto_migrate_that_is_not_a_boolean_is_invalid(
    tmp_path: Path, settings_text: str, env: dict[str, str]
) -> None:
    root = depot_folder(tmp_path, settings_text)
    with pytest.raises(Invalid, match="must be true or false"):
        load_settings(root, env=env)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1", True), ("TRUE", True), ("on", True), ("0", False), ("Off", False), (" no ", False)],
)
def test_auto_migrate_reads_the_usual_spellings(tmp_path: Path, text: str, expected: bool) -> None:
    root = depot_folder(tmp_path, "")
    assert load_settings(root, env={"NEURODEPOT_AUTO_MIGRATE": text}).auto_migrate is expected


def test_folder_without_settings_file_is_not_a_depot(tmp_path: Path) -> None:
    with pytest.raises(NotADepot, match="neurodepot init"):
        load_settings(tmp_path, env={})


def test_settings_file_that_is_a_folder_is_not_a_depot(tmp_path: Path) -> None:
    (tmp_path / CONFIG_FILE).mkdir()
    with pytest.raises(NotADepot):
        load_settings(tmp_path, env={})


def test_environment_is_read_only_when_loading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = depot_folder(tmp_path, "")
    monkeypatch.setenv("NEURODEPOT_PORT", "7001")
    settings = load_settings(root)
    monkeypatch.setenv("NEURODEPOT_PORT", "7002")
    assert settings.port == 7001
    assert load_settings(root).port == 7002


class TestMailSettings:
    def test_defaults_send_through_a_relay_on_this_machine(self, tmp_path: Path) -> None:
        settings = load_settings(depot_folder(tmp_path, render_config()), env={})
        assert (settings.smtp_host, settings.smtp_port, settings.smtp_starttls) == (
            "127.0.0.1", 25, False,
        )  # fmt: skip
        assert (settings.smtp_user, settings.smtp_password) == (None, None)
        assert settings.mail_from == "neurodepot@localhost"
        assert settings.public_url == "http://127.0.0.1:8080"

    def test_the_written_mail_table_works_once_uncommented(self, tmp_path: Path) -> None:
        text = render_config()
        start = text.index("# [mail]")
        table = "\n".join(line.removeprefix("# ") for line in text[start:].splitlines())
        parsed = tomllib.loads(table)["mail"]
        assert parsed == {
            "smtp_host": "127.0.0.1", "smtp_port": 25, "smtp_starttls": False,
            "smtp_user": "neurodepot", "mail_from": "neurodepot@localhost",
        }  # fmt: skip
        settings = load_settings(depot_folder(tmp_path, table), env={})
        assert settings.smtp_user == "neurodepot"

    def test_the_file_and_the_environment_set_them(self, tmp_path: Path) -> None:
        root = depot_folder(
            tmp_path,
            '[server]\npublic_url = "https://depot.example.org/"\n'
            '[mail]\nsmtp_host = "mail.example.org"\nsmtp_port = 587\nsmtp_starttls = true\n'
            'smtp_user = "depot"\nmail_from = "Neurodepot <depot@example.org>"\n',
        )
        settings = load_settings(root, env={"NEURODEPOT_SMTP_PASSWORD": "s3cret"})
        assert (settings.smtp_host, settings.smtp_port, settings.smtp_starttls) == (
            "mail.example.org", 587, True,
        )  # fmt: skip
        assert (settings.smtp_user, settings.smtp_password) == ("depot", "s3cret")
        assert settings.mail_from == "Neurodepot <depot@example.org>"
        assert settings.public_url == "https://depot.example.org"
        assert "s3cret" not in repr(settings)
        env = {
            "NEURODEPOT_SMTP_HOST": "relay.example.org",
            "NEURODEPOT_SMTP_PORT": "2525",
            "NEURODEPOT_SMTP_STARTTLS": "yes",
            "NEURODEPOT_SMTP_USER": "other",
            "NEURODEPOT_MAIL_FROM": "archive@example.org",
            "NEURODEPOT_PUBLIC_URL": "https://archive.example.org:8443/depot",
        }
        changed = load_settings(root, env=env)
        assert (changed.smtp_host, changed.smtp_port, changed.smtp_user) == (
            "relay.example.org", 2525, "other",
        )  # fmt: skip
        assert changed.mail_from == "archive@example.org"
        assert changed.public_url == "https://archive.example.org:8443/depot"

    @pytest.mark.parametrize(
        ("variable", "value", "named"),
        [
            ("NEURODEPOT_SMTP_PORT", "smtp", "smtp_port"),
            ("NEURODEPOT_SMTP_PORT", "70000", "smtp_port"),
            ("NEURODEPOT_SMTP_HOST", "mail example", "smtp_host"),
            ("NEURODEPOT_SMTP_STARTTLS", "maybe", "NEURODEPOT_SMTP_STARTTLS"),
            ("NEURODEPOT_SMTP_PASSWORD", "a\nb", "smtp_password"),
            ("NEURODEPOT_MAIL_FROM", "not an address", "mail_from"),
            ("NEURODEPOT_MAIL_FROM", "a@example.org\r\nBcc: eve@example.net", "mail_from"),
            ("NEURODEPOT_PUBLIC_URL", "depot.example.org", "public_url"),
            ("NEURODEPOT_PUBLIC_URL", "ftp://depot.example.org", "public_url"),
            ("NEURODEPOT_PUBLIC_URL", "https://depot.example.org/?a=1", "public_url"),
            ("NEURODEPOT_PUBLIC_URL", "https://depot.example.org:99999", "public_url"),
            ("NEURODEPOT_PUBLIC_URL", "https://depot.example.org/a b", "public_url"),
        ],
    )
    def test_a_malformed_value_is_invalid_naming_the_setting(
        self, tmp_path: Path, variable: str, value: str, named: str
    ) -> None:
        root = depot_folder(tmp_path, render_config())
        with pytest.raises(Invalid, match=named):
            load_settings(root, env={variable: value})

    def test_a_password_is_not_sent_in_clear_to_another_machine(self, tmp_path: Path) -> None:
        root = depot_folder(tmp_path, render_config())
        env = {"NEURODEPOT_SMTP_HOST": "mail.example.org", "NEURODEPOT_SMTP_USER": "depot"}
        with pytest.raises(Invalid, match="smtp_starttls"):
            load_settings(root, env=env)
        assert load_settings(root, env={**env, "NEURODEPOT_SMTP_STARTTLS": "1"}).smtp_user
        assert load_settings(root, env={"NEURODEPOT_SMTP_USER": "depot"}).smtp_user  # loopback
