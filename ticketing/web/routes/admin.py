"""The admin screens (admins only, ``admin_guard``): the overview ``/admin`` linking each
section, and the sections' routers: agents and teams (``admin_people``), SLA targets, business
hours and canned replies (``admin_policies``), the audit log (``admin_audit``).

Every change made here is one ``admin.*`` row in the audit log (rules §SEC-6).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ticketing.web.routes.admin_audit import router as audit_router
from ticketing.web.routes.admin_guard import AdminWho, render
from ticketing.web.routes.admin_people import router as people_router
from ticketing.web.routes.admin_policies import router as policies_router

router = APIRouter()

SECTIONS = ("agents", "teams", "sla", "business_hours", "canned_replies", "audit")


@router.get("/admin", include_in_schema=False)
def overview(request: Request, who: AdminWho) -> Response:
    """Each section with a line on what it changes."""
    return render(request, who, "admin/index.html", "overview", sections=SECTIONS)


router.include_router(people_router)
router.include_router(policies_router)
router.include_router(audit_router)
