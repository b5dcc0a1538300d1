"""Plain-text mail to people with accounts, sent through the depot's SMTP server.

Only the depot's own text and links go into mails; header values are refused (`Invalid`) when
they hold a line break, so that nothing a user typed can add a header or a recipient. A mail
the server does not take raises `Unavailable`; the caller decides what that means (the account
that was being registered is kept, and the link can be asked for again).
"""

import re
import smtplib
import ssl
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr

from neurodepot.config import Settings
from neurodepot.errors import Invalid, Unavailable

SMTP_TIMEOUT_S = 10.0
# What a recipient address may be: an ASCII dot-atom local part (no quoting, no SMTPUTF8),
# an ASCII domain. Stricter than RFC 5322 on purpose: it leaves nothing to interpretation.
RECIPIENT = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9]([A-Za-z0-9-]{0,62}\.)+[A-Za-z]{2,63}"
)


@dataclass(frozen=True)
class Letter:
    """One mail to one recipient: `to` is a bare address, `body` plain text."""

    to: str
    subject: str
    body: str


def check_recipient(address: str) -> str:
    """`address` if mail can be sent to it as it is, else `Invalid` saying so."""
    _refuse_line_breaks("a recipient address", address)
    if len(address) > 254 or not RECIPIENT.fullmatch(address):
        raise Invalid(
            f"{address!r} is not an address mail can be sent to: use letters, digits and "
            "!#$%&'*+/=?^_`{|}~.- before the @ and a domain name after it"
        )
    return address


def compose(settings: Settings, letter: Letter) -> EmailMessage:
    """The message as it will be sent; raises `Invalid` for a header with a line break."""
    check_recipient(letter.to)
    _refuse_line_breaks("a mail subject", letter.subject)
    _refuse_line_breaks("the sender address (mail_from)", settings.mail_from)
    sender_domain = parseaddr(settings.mail_from)[1].rpartition("@")[2]
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = Address(addr_spec=letter.to)
    message["Subject"] = letter.subject
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(domain=sender_domain or None)
    # RFC 3834: no vacation or out-of-office replies to a machine.
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(letter.body)
    return message


def send(settings: Settings, letter: Letter) -> None:
    """Hand `letter` to the SMTP server (STARTTLS and login when configured).

    Raises `Invalid` before connecting if a header has a line break, and `Unavailable` when
    the server cannot be reached or refuses the mail; in that case nothing was sent.
    """
    message = compose(settings, letter)
    where = f"{settings.smtp_host}:{settings.smtp_port}"
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=SMTP_TIMEOUT_S) as smtp:
            if settings.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.smtp_user is not None:
                smtp.login(settings.smtp_user, settings.smtp_password or "")
            smtp.send_message(
                message, from_addr=parseaddr(settings.mail_from)[1], to_addrs=[letter.to]
            )
    except (OSError, smtplib.SMTPException) as exc:  # SMTPException is an OSError; ssl's too
        raise Unavailable(
            f"the mail server at {where} did not take the mail ({_reason(exc)}); check the "
            "[mail] settings (NEURODEPOT_SMTP_*) and that the server is running"
        ) from None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        text = exc.smtp_error.decode("utf-8", "replace") if exc.smtp_error else ""
        return f"{exc.smtp_code} {text}".strip()
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "it refused the recipient"
    return str(exc) or type(exc).__name__


def _refuse_line_breaks(what: str, value: str) -> None:
    if any(c in value for c in "\r\n\x00"):
        raise Invalid(f"{what} may not contain a line break: {value[:80]!r}")
