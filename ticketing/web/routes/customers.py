"""The customer card ``GET /api/v1/customers/{id}`` and revealing a phone or address.

A customer is visible through a ticket of theirs the person may see (``access.require_customer``;
otherwise 404). Phones and addresses are masked everywhere (rules §SEC-4); seeing one in clear
is a supervisor's action (role ``supervisor`` only, else 403 whatever the id) with a stated
reason, written to the audit log as ``pii.revealed`` (field, reason, ticket; never the value:
rules §SEC-6) in the same transaction that reads it. The answer is never cached.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ticketing.core import audit
from ticketing.core.errors import NotFound, PermissionDenied
from ticketing.core.models import Role
from ticketing.desk import access
from ticketing.web.deps import Principal, client_ip, desk_of, principal
from ticketing.web.queries import page_view
from ticketing.web.queries.customer_card import customer_card
from ticketing.web.queries.ticket_models import CustomerCard
from ticketing.web.api import Id, Submitted, body_of, errors, is_form, is_htmx
from ticketing.web.routes.tickets import Input, Line, parse, workspace

router = APIRouter()

REVEALED = "pii.revealed"
FIELDS = {"phone": "phone_enc", "address": "address_enc"}


class RevealIn(Input):
    field: Literal["phone", "address"]
    reason: Line
    ticket_id: Id | None = Field(default=None,
                                  description="The ticket the supervisor is working on (audited).")


class RevealOut(BaseModel):
    customer_id: Id
    field: Literal["phone", "address"]
    value: str


class NothingStored(NotFound):
    code = "nothing_stored"
    message_zh = "该客户没有登记这项信息。"
    message_en = "Nothing is stored for this customer."


@router.get("/api/v1/customers/{customer_id}", response_model=CustomerCard, tags=["customers"],
            responses=errors(404))
def customer_json(request: Request, customer_id: Id,
                  who: Annotated[Principal, Depends(principal)]) -> CustomerCard:
    """Segment, masked contact, channel identities, recent orders with their latest scan,
    refunds and past tickets with their CSAT."""
    desk = desk_of(request)
    with desk.unit_of_work() as session:
        agent = who.agent(session)
        customer = access.require_customer(session, agent, customer_id)
        view = page_view.View(session, viewer=agent, language=who.language,
                              timezone=desk.settings.timezone, cipher=desk.cipher,
                              now=desk.clock())
        return customer_card(view, customer)


@router.post("/api/v1/customers/{customer_id}/reveal", response_model=RevealOut,
             tags=["customers"], responses=errors(404, 422), openapi_extra=body_of(RevealIn))
def reveal(request: Request, customer_id: Id, who: Annotated[Principal, Depends(principal)],
           data: Submitted) -> Any:
    """The clear phone or address, for a supervisor with a reason; audited without the value.
    From the ticket page (a form with ``ticket_id``) the page comes back with the value shown
    in the customer card."""
    desk = desk_of(request)
    with desk.unit_of_work() as session:
        agent = who.agent(session)
        if agent.role is not Role.SUPERVISOR:
            raise PermissionDenied("revealing personal data is a supervisor's action")
        customer = access.require_customer(session, agent, customer_id)
        given = parse(RevealIn, data)
        if given.ticket_id is not None:  # the audited context must be one the supervisor sees
            ticket = access.require_ticket(session, agent, given.ticket_id)
            if ticket.customer_id != customer.id:
                raise NotFound("ticket of another customer", ticket_id=given.ticket_id)
        blob = getattr(customer, FIELDS[given.field])
        if blob is None:
            raise NothingStored(customer_id=customer.id, field=given.field)
        value = desk.cipher.decrypt(blob, field=given.field)
        audit.record(session, action=REVEALED, actor_type="agent", actor_id=agent.id,
                     target_type="customer", target_id=customer.id, ip=client_ip(request),
                     details={"field": given.field, "reason": given.reason,
                              "ticket_id": given.ticket_id},
                     now=desk.clock())
    if (is_htmx(request) or is_form(request)) and given.ticket_id is not None:
        return workspace(request, who, given.ticket_id, revealed={given.field: value},
                         full_page=not is_htmx(request))
    return JSONResponse(RevealOut(customer_id=customer_id, field=given.field,
                                  value=value).model_dump(),
                        headers={"Cache-Control": "no-store"})
