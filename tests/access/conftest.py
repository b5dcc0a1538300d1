"""The access tests share the populated app of the route-enumerating access matrix, the CLI
runner, and a real SMTP server (aiosmtpd on loopback) that keeps what it receives."""

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiosmtpd.controller import Controller

from tests.api.conftest import free_port
from tests.cli.conftest import cli  # noqa: F401
from tests.test_access_matrix import anyio_backend, app  # noqa: F401

PUBLIC_URL = "https://depot.example.org"


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage

    @property
    def text(self) -> str:
        body = self.message.get_body(("plain",))
        assert body is not None
        content: str = body.get_content()  # type: ignore[attr-defined]
        return content

    def link(self, path: str) -> str:
        """The token of the one link with a token in the mail, which must lead to `path`."""
        links = re.findall(r"https?://\S+\?token=\S+", self.text)
        assert len(links) == 1, self.text
        parts = urlsplit(links[0])
        assert f"{parts.scheme}://{parts.netloc}{parts.path}" == PUBLIC_URL + path
        return parse_qs(parts.query)["token"][0]


@dataclass
class MailServer:
    """aiosmtpd on a free loopback port, collecting what it receives; can be stopped and started."""

    port: int
    received: list[Received] = field(default_factory=list)
    controller: Controller | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.original_content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 OK"

    def start(self) -> None:
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def to(self, address: str) -> list[Received]:
        return [mail for mail in self.received if mail.rcpt_tos == [address]]


@pytest.fixture
def smtp() -> Iterator[MailServer]:
    server = MailServer(free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()
