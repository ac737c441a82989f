"""The management API application."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request

from modelport import __version__
from modelport.control import api_environments, api_models
from modelport.control.auth import AdminTokenMiddleware
from modelport.control.errors import install_error_handlers
from modelport.control.workspace import ServerWorkspace, workspace_of


def create_app(workspace: ServerWorkspace) -> FastAPI:
    app = FastAPI(
        title="modelport management API",
        version=__version__,
        docs_url=None,
        redoc_url=None,
    )
    app.state.workspace = workspace
    install_error_handlers(app)
    app.include_router(api_models.router)
    app.include_router(api_environments.router)

    @app.get("/api/v1/workspace")
    def workspace_info(request: Request) -> dict[str, Any]:
        ws = workspace_of(request)
        return {"version": __version__, "database": ws.db.dialect, "home": str(ws.home)}

    app.add_middleware(AdminTokenMiddleware, token=workspace.admin_token)
    return app
