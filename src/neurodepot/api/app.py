"""The composition root of the HTTP server: `create_app(depot)` wires everything once."""

from fastapi import FastAPI

from neurodepot import __version__
from neurodepot.api import exception_handlers
from neurodepot.api.guard import ACCOUNT_PATHS
from neurodepot.api.hardening import HardenedApp
from neurodepot.api.request_log import log_request
from neurodepot.api.schemas import Health
from neurodepot.api.v1 import router as v1_router
from neurodepot.depot import schema
from neurodepot.depot.folder import Depot
from neurodepot.jobs.registry import load_registry

__all__ = ["ACCOUNT_PATHS", "PUBLIC_PATHS", "create_app"]

PUBLIC_PATHS = frozenset(
    {"/healthz", "/api/docs", "/api/docs/oauth2-redirect", "/api/openapi.json"}
)


def create_app(depot: Depot) -> FastAPI:
    """An app serving `depot`; the caller opens and closes the depot."""
    app = HardenedApp(  # security headers and request limits around everything
        title="neurodepot",
        version=__version__,
        docs_url="/api/docs",
        swagger_ui_oauth2_redirect_url="/api/docs/oauth2-redirect",
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.depot = depot
    app.state.registry = load_registry()
    exception_handlers.install(app)
    app.middleware("http")(log_request)

    @app.get("/healthz", tags=["service"])
    def healthz() -> Health:
        """Liveness and schema version; public, reveals nothing about the data."""
        return Health(
            status="ok", version=__version__, schema_revision=schema.current_revision(depot.engine)
        )

    app.include_router(v1_router)
    return app
