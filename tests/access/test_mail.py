"""Sending mail through a real SMTP server (aiosmtpd on loopback): headers, refusals, failures."""

from pathlib import Path

import pytest

from neurodepot.access.mail import Letter, check_recipient, compose, send
from neurodepot.config import Settings
from neurodepot.errors import Invalid, Unavailable
from tests.access.conftest import MailServer
from tests.api.conftest import free_port


def settings(tmp_path: Path, port: int, **changes: object) -> Settings:
    base = Settings(root=tmp_path, database_url="sqlite://", smtp_port=port)
    return base.with_overrides(**changes)


def test_a_letter_arrives_as_plain_text_with_its_headers(tmp_path: Path, smtp: MailServer) -> None:
    body = "Grüße — a line that is rather long " * 5 + "\nhttps://depot.example.org/x?token=a.1.b\n"
    send(settings(tmp_path, smtp.port), Letter("ann@example.org", "Über the limit", body))
    [mail] = smtp.received
    assert (mail.mail_from, mail.rcpt_tos) == ("neurodepot@localhost", ["ann@example.org"])
    assert mail.message["Subject"] == "Über the limit"
    assert mail.message["From"] == "neurodepot@localhost"
    assert mail.message["Message-ID"].endswith("@localhost>")
    assert mail.message["Date"]
    assert mail.message.get_content_type() == "text/plain"
    assert mail.text.replace("\r\n", "\n") == body  # CRLF on the wire


@pytest.mark.parametrize(
    "letter",
    [
        Letter("ann@example.org\r\nBcc: eve@example.net", "s", "b"),
        Letter("ann@example.org", "hello\r\nBcc: eve@example.net", "b"),
        Letter("ann@example.org", "hello\nBcc: eve@example.net", "b"),
        Letter("ann@example.org", "hello\rBcc: eve@example.net", "b"),
        Letter("ann@example.org, eve@example.net", "s", "b"),
        Letter("Ann <ann@example.org>", "s", "b"),
    ],
)
def test_a_header_with_a_line_break_or_a_second_recipient_is_refused_and_nothing_sent(
    tmp_path: Path, smtp: MailServer, letter: Letter
) -> None:
    with pytest.raises(Invalid):
        send(settings(tmp_path, smtp.port), letter)
    assert smtp.received == []


def test_a_sender_with_a_line_break_is_refused(tmp_path: Path, smtp: MailServer) -> None:
    evil = settings(tmp_path, smtp.port, mail_from="depot@example.org\r\nBcc: eve@example.net")
    with pytest.raises(Invalid, match="line break"):
        compose(evil, Letter("ann@example.org", "s", "b"))


@pytest.mark.parametrize(
    "address", ["ann.lee@example.org", "o'brien+tag@mail.example.co.uk", "x@a-b.example.org"]
)
def test_ordinary_addresses_are_accepted(address: str) -> None:
    assert check_recipient(address) == address


@pytest.mark.parametrize(
    "address",
    ["ann@localhost", "ann@@example.org", ".ann@example.org", "an..n@example.org",
     "ann @example.org", '"ann"@example.org', "jürgen@example.org", "ann@-example.org",
     "ann@example.org.", "a" * 250 + "@example.org"],
)  # fmt: skip
def test_addresses_open_to_interpretation_are_refused(address: str) -> None:
    with pytest.raises(Invalid, match="not an address"):
        check_recipient(address)


def test_a_mail_server_that_is_down_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(Unavailable, match=r"mail server at 127\.0\.0\.1:\d+ did not take"):
        send(settings(tmp_path, free_port()), Letter("ann@example.org", "s", "b"))


def test_starttls_is_never_skipped_when_the_server_cannot_do_it(
    tmp_path: Path, smtp: MailServer
) -> None:
    with pytest.raises(Unavailable, match="did not take"):
        send(
            settings(tmp_path, smtp.port, smtp_starttls=True),
            Letter("ann@example.org", "s", "b"),
        )
    assert smtp.received == []


def test_a_login_the_server_cannot_take_is_unavailable(tmp_path: Path, smtp: MailServer) -> None:
    # aiosmtpd offers no AUTH without TLS: the password is never sent in clear.
    with pytest.raises(Unavailable, match="did not take"):
        send(
            settings(tmp_path, smtp.port, smtp_user="depot", smtp_password="secret"),
            Letter("ann@example.org", "s", "b"),
        )
    assert smtp.received == []
