"""Ingest beside a long-running server: the DICOM listener and the prearchive sweeper."""

import logging
import threading

from neurodepot.depot.folder import Depot
from neurodepot.errors import NeurodepotError
from neurodepot.ingest.listener import DicomListener
from neurodepot.ingest.prearchive import sweep
from neurodepot.ingest.routing import compile_routes
from neurodepot.jobs.registry import PipelineRegistry

logger = logging.getLogger("neurodepot.ingest")


class IngestService:
    """Starts the listener (unless disabled) and sweeps the prearchive until stopped.

    The sweep marks quiet studies ready and archives those of automatic projects; it runs a
    few times per quiet period, so a study is archived at most a little after it went quiet.
    """

    def __init__(self, depot: Depot, registry: PipelineRegistry) -> None:
        settings = depot.settings
        self._depot = depot
        self._registry = registry
        self._quiet_s = settings.prearchive_quiet_s
        self._interval_s = min(max(self._quiet_s / 10, 0.2), 5.0)
        routes = compile_routes(settings.dicom_routes)  # bad rules stop the server at start
        self.listener = (
            DicomListener(
                depot, routes, settings.dicom_host, settings.dicom_port, settings.dicom_ae_title
            )
            if settings.dicom_enabled
            else None
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prearchive-sweep", daemon=True)

    def start(self) -> None:
        if self.listener is not None:
            self.listener.start()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self.listener is not None:
            self.listener.stop()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                report = sweep(self._depot, self._registry, self._quiet_s)
            except NeurodepotError as problem:
                logger.warning(
                    "prearchive sweep failed", extra={"fields": {"reason": problem.message}}
                )
                continue
            except Exception:
                logger.exception("prearchive sweep failed")
                continue
            for outcome in report.archived:
                logger.info(
                    "study archived",
                    extra={
                        "fields": {
                            "prearchive_id": outcome.study_id,
                            "session": outcome.session,
                            "instances": outcome.archived,
                            "duplicates": outcome.duplicates,
                            "conflicts": outcome.conflicts,
                            "jobs": list(outcome.jobs),
                        }
                    },
                )
            for study_id, reason in report.refused:
                logger.warning(
                    "study not archived",
                    extra={"fields": {"prearchive_id": study_id, "reason": reason}},
                )
