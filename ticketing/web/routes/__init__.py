"""The desk's routers, one module per resource; :func:`register` mounts them all."""

from __future__ import annotations

from fastapi import FastAPI

from ticketing.web.routes import queue, signin
from ticketing.web.routes import me
from ticketing.web.routes import customers, refunds, tickets
from ticketing.web.routes import events
from ticketing.web.routes import admin, admin_tokens, board, report_exports, reports
from ticketing.web.routes import shop_api


def register(app: FastAPI) -> None:
    app.include_router(signin.router)
    app.include_router(queue.router)
    app.include_router(me.router)
    app.include_router(tickets.router)
    app.include_router(refunds.router)
    app.include_router(customers.router)
    app.include_router(events.router)
    app.include_router(reports.router)
    app.include_router(report_exports.router)
    app.include_router(admin.router)
    app.include_router(admin_tokens.router)
    app.include_router(board.router)
    shop_api.install(app)
