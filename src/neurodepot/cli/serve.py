"""`neurodepot serve` and `neurodepot demo`: run the HTTP server on a depot."""

import logging
import logging.config
import signal
from ipaddress import ip_address
from pathlib import Path
from typing import Annotated

import typer

from neurodepot.cli.output import console
from neurodepot.cli.state import state
from neurodepot.config import CONFIG_FILE
from neurodepot.depot.folder import Depot, init_depot, open_depot
from neurodepot.errors import Invalid

HostOpt = Annotated[str | None, typer.Option(help="Address to listen on (default 127.0.0.1).")]
PortOpt = Annotated[int | None, typer.Option(help="Port to listen on (default 8080).")]


def _check_loopback(host: str) -> None:
    """Refuse to listen beyond this machine; others reach it through a reverse proxy.

    The proxy terminates TLS; behind it the loopback operator is turned off (see the README).
    """
    try:
        loopback = host == "localhost" or ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise Invalid(
            f"refusing to listen on {host}: serve this machine (127.0.0.1 or ::1) and put a "
            "reverse proxy in front for others, with [server] loopback_operator = false"
        )


def _logging_config() -> dict[str, object]:
    """JSON lines on stderr, with a handler of its own for Dask.

    A local cluster silences the handlers of `distributed` while it runs; a shared handler
    would silence ours too.
    """
    handler = {"class": "logging.StreamHandler", "formatter": "json"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "neurodepot.api.request_log.JsonFormatter"}},
        "handlers": {"stderr": handler, "dask": dict(handler)},
        "loggers": {
            "neurodepot": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
            "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            "distributed": {"handlers": ["dask"], "level": "WARNING", "propagate": False},
        },
    }


def _stop_on_sigterm() -> None:
    """Make SIGTERM end `serve` the way Ctrl-C does, through its clean-up.

    uvicorn catches SIGTERM while it runs, shuts down, then restores the handler it found and
    raises the signal again; with the default handler the process would die there, before the
    listener, the sweeper and the Dask cluster are stopped.
    """

    def terminate(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, terminate)


def run_server(depot: Depot, host: str | None, port: int | None) -> None:
    # Imported here so that every other command starts without loading the web stack.
    import uvicorn

    from neurodepot.api.app import create_app

    host = host or depot.settings.host
    port = port or depot.settings.port
    _check_loopback(host)
    config = _logging_config()
    logging.config.dictConfig(config)
    logging.getLogger("neurodepot").info(
        "serving",
        extra={"fields": {"depot": str(depot.settings.root), "url": f"http://{host}:{port}"}},
    )
    from neurodepot.ingest.service import IngestService
    from neurodepot.jobs.registry import load_registry
    from neurodepot.jobs.service import JobService

    _stop_on_sigterm()
    app = create_app(depot)
    registry = load_registry()
    ingest = IngestService(depot, registry)
    ingest.start()
    jobs = JobService(depot, registry, {}, recover=True)
    jobs.start()
    try:
        uvicorn.run(app, host=host, port=port, log_config=config)
    finally:
        jobs.stop()
        ingest.stop()


def serve(ctx: typer.Context, host: HostOpt = None, port: PortOpt = None) -> None:
    """Run the web server and REST API (Ctrl-C stops it)."""
    with state(ctx).open() as depot:
        run_server(depot, host, port)


def demo(
    ctx: typer.Context,
    host: HostOpt = None,
    port: PortOpt = None,
    no_serve: Annotated[
        bool, typer.Option("--no-serve", help="Only create the example data.")
    ] = False,
) -> None:
    """Create (or reuse) a depot with an example project, then serve it."""
    root: Path = state(ctx).depot_root()
    depot = open_depot(root) if (root / CONFIG_FILE).exists() else init_depot(root)
    with depot:
        from neurodepot.example.populate import populate  # loads pydicom: only when needed

        summary = populate(depot)
        console.print(
            f"Depot {depot.settings.root}: example project {summary.project} "
            f"({summary.files_added} file(s) added, {summary.files_present} already there)"
        )
        if not no_serve:
            shown_host = host or depot.settings.host
            shown_port = port or depot.settings.port
            console.print(
                f"Open http://{shown_host}:{shown_port}/api/docs "
                f"or http://{shown_host}:{shown_port}/api/v1/projects/{summary.project}"
            )
            run_server(depot, host, port)
