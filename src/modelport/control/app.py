"""The management API application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request

from modelport import __version__
from modelport.control import (
    access_log,
    api_computes,
    api_endpoints,
    api_environments,
    api_ingest,
    api_modeldata,
    api_models,
    api_services,
    api_staging,
    api_tokens,
    dashboard,
)
from modelport.control.auth import AdminTokenMiddleware
from modelport.control.errors import install_error_handlers
from modelport.control.plane import ControlPlane
from modelport.control.workspace import ServerWorkspace, workspace_of

HEALTH_PATH = "/healthz"


def create_app(workspace: ServerWorkspace, plane: ControlPlane | None = None) -> FastAPI:
    """The management API; with a ``plane`` it also runs services (``modelport up``)."""
    access_log.install()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if plane is not None:
            await plane.start()
        try:
            yield
        finally:
            if plane is not None:
                await plane.stop()

    app = FastAPI(
        title="modelport management API",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.workspace = workspace
    app.state.plane = plane
    install_error_handlers(app)
    app.include_router(api_models.router)
    app.include_router(api_environments.router)
    app.include_router(api_services.router)
    app.include_router(api_endpoints.router)
    app.include_router(api_staging.router)
    app.include_router(api_ingest.router)
    app.include_router(api_computes.router)
    app.include_router(api_tokens.router)
    app.include_router(api_modeldata.router)
    dashboard.install(app)  # signs its own users in: the middleware lets its prefix through

    @app.get(HEALTH_PATH, include_in_schema=False)
    def healthz() -> dict[str, str]:
        """Liveness for load balancers and probes: open, and it tells nothing else."""
        return {"status": "ok"}

    @app.get("/api/v1/workspace")
    def workspace_info(request: Request) -> dict[str, Any]:
        ws = workspace_of(request)
        return {"version": __version__, "database": ws.db.dialect, "home": str(ws.home)}

    app.add_middleware(
        AdminTokenMiddleware,
        token=workspace.admin_token,
        exempt=(api_staging.PREFIX, api_ingest.PREFIX, dashboard.PREFIX),
        public=(HEALTH_PATH, api_tokens.JWKS_PATH, "/"),
        clients=workspace.tokens.client_for,
    )
    return app
