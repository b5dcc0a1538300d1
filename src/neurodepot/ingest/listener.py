"""The DICOM listener: C-ECHO, and C-STORE of every storage SOP class, stored as sent.

Each instance is acknowledged only once it is durably stored and recorded. Failures answer
with a DICOM failure status and a log line, never by stopping the listener: 0xA700 (out of
resources) when the disk or the database refuses, 0xC000 (cannot understand) for data that is
not a usable DICOM instance, 0xC001 for anything unexpected.

Stock senders (dcmtk's storescu without TCP_NODELAY, many scanners) write a PDU header and its
payload in two sends; Nagle holds the payload until the header is acknowledged, and Linux
delays that acknowledgement by ~40 ms. The listener re-arms TCP_QUICKACK before every read so
that such senders are not slowed to a few instances a second (see ../shared/PEERS.md).
"""

import contextlib
import logging
import socket
from typing import Any

from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt
from pynetdicom.events import Event
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from pynetdicom.transport import ThreadedAssociationServer
from sqlalchemy.exc import OperationalError

from neurodepot.depot.folder import Depot
from neurodepot.errors import Invalid
from neurodepot.ingest.receive import CONFLICT, Arrival, Receiver
from neurodepot.ingest.routing import Route

logger = logging.getLogger("neurodepot.ingest")

SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
CANNOT_UNDERSTAND = 0xC000
PROCESSING_FAILURE = 0xC001
MAX_ASSOCIATIONS = 32


class DicomListener:
    """A pynetdicom acceptor bound to one address; `start()` returns once it listens."""

    def __init__(
        self, depot: Depot, routes: tuple[Route, ...], host: str, port: int, ae_title: str
    ) -> None:
        self._receiver = Receiver(depot, routes)
        self._address = (host, port)
        self._ae = AE(ae_title=ae_title)
        self._ae.maximum_associations = MAX_ASSOCIATIONS
        self._ae.require_called_aet = False  # routing may use the called AE title
        for context in AllStoragePresentationContexts:
            self._ae.add_supported_context(context.abstract_syntax, ALL_TRANSFER_SYNTAXES)
        self._ae.add_supported_context(Verification)
        self._server: ThreadedAssociationServer | None = None

    @property
    def port(self) -> int:
        """The bound port (useful when started on port 0)."""
        if self._server is None:
            raise RuntimeError("the listener is not started")
        return int(self._server.server_address[1])

    def start(self) -> None:
        handlers: list[Any] = [
            (evt.EVT_C_ECHO, _on_echo),
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_CONN_OPEN, _on_connection),
        ]
        try:
            self._server = self._ae.start_server(self._address, block=False, evt_handlers=handlers)
        except OSError as exc:
            host, port = self._address
            raise Invalid(
                f"cannot listen for DICOM on {host}:{port}: {exc.strerror or exc}; choose another "
                "port ([dicom] port, NEURODEPOT_DICOM_PORT) or disable the listener"
            ) from None
        logger.info(
            "dicom listening",
            extra={
                "fields": {
                    "address": f"{self._address[0]}:{self.port}",
                    "ae_title": self._ae.ae_title,
                }
            },
        )

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self._ae.shutdown()

    def _on_store(self, event: Event) -> int:
        assoc = event.assoc
        arrival = Arrival(
            "dicom",
            called_aet=str(assoc.requestor.primitive.called_ae_title or "").strip(),
            calling_aet=str(assoc.requestor.ae_title or "").strip(),
        )
        instance_uid = str(event.request.AffectedSOPInstanceUID or "")
        fields = {"calling_aet": arrival.calling_aet, "sop_instance_uid": instance_uid}
        try:
            received = self._receiver.store(event.encoded_dataset(), arrival)
        except Invalid as problem:
            logger.warning(
                "dicom instance refused", extra={"fields": {**fields, "reason": problem.message}}
            )
            return CANNOT_UNDERSTAND
        except (OSError, OperationalError) as problem:
            logger.error(
                "dicom instance not stored",
                extra={"fields": {**fields, "reason": _reason(problem)}},
            )
            return OUT_OF_RESOURCES
        except Exception:
            logger.exception("dicom instance failed", extra={"fields": fields})
            return PROCESSING_FAILURE
        if received.outcome == CONFLICT:
            logger.warning(
                "dicom instance conflicts",
                extra={
                    "fields": {
                        **fields,
                        "study": received.study_id,
                        "kept_aside": received.ref.digest,
                    }
                },
            )
        return SUCCESS


def _reason(problem: Exception) -> str:
    if isinstance(problem, OSError) and problem.strerror:
        return problem.strerror
    if isinstance(problem, OperationalError):
        return str(problem.orig)
    return str(problem)


def _on_echo(event: Event) -> int:
    return SUCCESS


def _on_connection(event: Event) -> None:
    """Send replies at once and acknowledge every read at once (see the module docstring)."""
    dul_socket = event.assoc.dul.socket
    if dul_socket is None or dul_socket.socket is None:
        return
    with contextlib.suppress(OSError):
        dul_socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if hasattr(socket, "TCP_QUICKACK"):
        dul_socket.socket = _QuickAckSocket(dul_socket.socket)


class _QuickAckSocket:
    """A socket whose `recv` first re-arms TCP_QUICKACK (Linux resets it after a while)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def recv(self, size: int) -> bytes:
        with contextlib.suppress(OSError):
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        return self._sock.recv(size)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)
