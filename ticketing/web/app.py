"""The desk's FastAPI application: pages, the JSON API under ``/api/v1``, static files.

:func:`create_app` receives everything it needs (settings, sessions, Redis, clock) from the
process edge (``python -m ticketing.web``) or a test, and keeps nothing between requests that
another desk process would need.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4
from sqlalchemy.exc import DataError
from sqlalchemy.orm import Session, sessionmaker

from ticketing.core.clock import utcnow
from ticketing.core.errors import (
    AccountLocked,
    AuthenticationFailed,
    Conflict,
    KefuError,
    NotFound,
    PermissionDenied,
    ValidationError,
)
from ticketing.core.pii import PiiCipher
from ticketing.core.settings import Settings
from ticketing.desk.accounts import LOCK_FOR
from ticketing.web import api, texts
from ticketing.web.language import language_for
from ticketing.web.metrics import DeskMetrics, MetricsMiddleware
from ticketing.web.deps import SESSION_COOKIE, Desk, SignInRequired
from ticketing.web.routes import register
from ticketing.web.security import SecurityHeaders

HERE = Path(__file__).resolve().parent
API_PREFIX = "/api/v1"


def status_of(error: KefuError) -> int:
    """The HTTP status a typed error stands for."""
    for kind, status in ((AccountLocked, 429), (AuthenticationFailed, 401),
                         (PermissionDenied, 403), (NotFound, 404), (ValidationError, 422),
                         (Conflict, 409)):
        if isinstance(error, kind):
            return status
    return 400


def _templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.globals["ui"] = texts.ui
    return templates


def create_app(
    *,
    settings: Settings,
    session_factory: sessionmaker[Session],
    cipher: PiiCipher | None = None,
    redis: Any = None,
    clock: Callable[[], datetime] = utcnow,
) -> FastAPI:
    app = FastAPI(title="Kefu desk", version="1", openapi_url=f"{API_PREFIX}/openapi.json",
                  docs_url=f"{API_PREFIX}/docs", redoc_url=None)
    app.state.desk = Desk(settings=settings, session_factory=session_factory,
                          templates=_templates(), cipher=cipher or PiiCipher(settings.pii_key),
                          redis=redis, clock=clock)
    app.add_middleware(SecurityHeaders)
    app.state.metrics = DeskMetrics()  # outermost, so it sees every answer's final status
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.exception_handler(KefuError)
    async def _typed_error(request: Request, error: KefuError) -> Response:
        language = language_for(request)
        if isinstance(error, SignInRequired):
            target = quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
            response: Response = RedirectResponse(f"/login?next={target}", status_code=303)
            response.delete_cookie(SESSION_COOKIE)
            return response
        status = status_of(error)
        headers = {"Retry-After": str(int(LOCK_FOR.total_seconds()))} if status == 429 else None
        if request.url.path.startswith(f"{API_PREFIX}/") or "hx-request" in request.headers:
            return JSONResponse({"error": {"code": error.code, "message": error.text(language)}},
                                status_code=status, headers=headers)
        return app.state.desk.templates.TemplateResponse(
            request, "error.html",
            {"language": language, "status": status, "message": error.text(language)},
            status_code=status, headers=headers)

    @app.exception_handler(DataError)
    async def _unstorable(request: Request, _error: DataError) -> Response:
        # what the database cannot hold (a NUL character in text, a number out of range) is
        # the client's input, not a server fault: the typed refusal, and the transaction was
        # rolled back, so nothing changed
        return await _typed_error(request, ValidationError("input the database cannot store"))

    @app.get("/health", include_in_schema=False)
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        """Prometheus text, on the event loop: it answers even when the worker threads are
        all busy. Keep it off the public proxy (docs/deploy.md)."""
        return Response(app.state.metrics.render(), media_type=CONTENT_TYPE_PLAIN_0_0_4)

    register(app)
    api.install(app)
    return app
