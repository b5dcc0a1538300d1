"""Real DICOM peers on loopback: dcmtk's echoscu/storescu and pynetdicom's SCU.

Every call is bounded: the dcmtk tools by a subprocess timeout, pynetdicom by its ACSE, DIMSE
and network timeouts.
"""

import os
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.sop_class import MRImageStorage, Verification  # type: ignore[attr-defined]

HOST = "127.0.0.1"
DCMTK_TIMEOUT_S = 120
PEER_TIMEOUT_S = 30
NO_RESPONSE = -1  # the association ended before a status came back


def echoscu(port: int, called_aet: str = "NEURODEPOT") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["echoscu", "-to", "5", "-aec", called_aet, HOST, str(port)],
        capture_output=True,
        text=True,
        timeout=DCMTK_TIMEOUT_S,
        check=False,
    )


def storescu_command(port: int, folder: Path, called_aet: str) -> list[str]:
    """Send every `*.dcm` below `folder` in one association (the README files are skipped)."""
    return [
        "storescu",
        "-to", "30",
        "-aet", "STORESCU",
        "-aec", called_aet,
        "+sd", "+r", "+sp", "*.dcm",
        HOST, str(port), str(folder),
    ]  # fmt: skip


def storescu_env() -> dict[str, str]:
    """Debian's dcmtk waits on delayed ACKs unless told to set TCP_NODELAY (see PEERS.md)."""
    return dict(os.environ, TCP_NODELAY="1")


def storescu(port: int, folder: Path, called_aet: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        storescu_command(port, folder, called_aet),
        capture_output=True,
        text=True,
        env=storescu_env(),
        timeout=DCMTK_TIMEOUT_S,
        check=False,
    )


class Scu:
    """pynetdicom as a sender: files go as they are on disk (no decoding, no re-encoding).

    Needs pynetdicom's `STORE_SEND_CHUNKED_DATASET` (the `scu` fixture sets it), without which
    a file is decoded and encoded again before it is sent.
    """

    def __init__(self, ae_title: str = "PYNETDICOM") -> None:
        self._ae = AE(ae_title=ae_title)
        self._ae.acse_timeout = PEER_TIMEOUT_S
        self._ae.dimse_timeout = PEER_TIMEOUT_S
        self._ae.network_timeout = PEER_TIMEOUT_S
        self._ae.add_requested_context(MRImageStorage, ExplicitVRLittleEndian)
        self._ae.add_requested_context(Verification)

    def echo(self, port: int, called_aet: str = "NEURODEPOT") -> int:
        assoc = self._ae.associate(HOST, port, ae_title=called_aet)
        assert assoc.is_established, f"no association with port {port}"
        try:
            return _status(assoc.send_c_echo())
        finally:
            assoc.release()

    def store(
        self,
        port: int,
        items: Sequence[Path | Dataset],
        called_aet: str = "NEURODEPOT",
        together: threading.Barrier | None = None,
    ) -> list[int]:
        """Send `items` in one association; the status of each, in order.

        With `together`, wait there once associated, so that several senders start at once.
        """
        assoc = self._ae.associate(HOST, port, ae_title=called_aet)
        assert assoc.is_established, f"no association with port {port}"
        try:
            if together is not None:
                together.wait()
            return [_status(assoc.send_c_store(item)) for item in items]
        finally:
            if assoc.is_established:
                assoc.release()


def _status(response: Dataset) -> int:
    return int(response.Status) if "Status" in response else NO_RESPONSE
