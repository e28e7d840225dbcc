"""One ticket: the page ``/tickets/{id}``, ``/api/v1/tickets/{id}`` and every agent action on it.

Each action is ``POST /api/v1/tickets/{id}/<action>`` and accepts JSON (scripts, answered with
JSON) or a form (the page; answered with the updated ticket workspace for htmx, ``HX-Request``,
or a 303 back to the page without scripts). Every request runs one unit of work:

1. ``access.require_ticket`` — a ticket the person may not see is a 404, never a 403, so ids
   cannot be probed (rules §SEC-5);
2. ``access.require_worker_role`` — managers and admins read, they do not work tickets (403);
3. the service (``ownership``, ``tickets``, ``escalation``), which checks owner / assignee /
   supervisor and the state machine again and raises a typed error before writing anything.

Typed errors become HTTP statuses in ``app.py`` (404, 422, 409, 403). A lost claim is a 409
whose message names the owner in the agent's language (read after the losing transaction
ended, so the winner's commit is visible).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

import pydantic
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy.orm import Session

from ticketing.core.errors import AlreadyClaimed, OrderNotFound, TicketNotFound
from ticketing.core.models import Agent, Customer, Order, Ticket
from ticketing.core.settings import var_dir
from ticketing.desk import access, canned_replies, escalation, ownership, tickets
from ticketing.web.api import (
    Id,
    InvalidInput,
    Submitted,
    body_of,
    errors,
    is_form,
    is_htmx,
)
from ticketing.web.deps import Principal, desk_of, principal
from ticketing.web.queries import page_view, ticket_page
from ticketing.web.queries.ticket_models import CannedOut, TicketDetail, TicketOut
from ticketing.web.texts import ui

router = APIRouter()
API = "/api/v1"
Model = TypeVar("Model", bound=BaseModel)
PARTS = ("thread", "header", "timers", "events")  # the panels that refresh themselves

Line = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
Body = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]


# --- errors ---------------------------------------------------------------------------------------
class ClaimedBy(AlreadyClaimed):
    """Somebody else claimed first; the message says who (rules §OWN-1)."""

    def __init__(self, owner: str | None, **context: object) -> None:
        super().__init__(f"already claimed by {owner}", owner=owner, **context)
        self.owner = owner

    def text(self, language: str = "en") -> str:
        if not self.owner:
            return super().text(language)
        return ui("ticket.claimed_by", language).format(name=self.owner)




def parse(model: type[Model], data: dict[str, Any]) -> Model:
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        fields = sorted({".".join(str(p) for p in err["loc"]) or "body" for err in exc.errors()})
        raise InvalidInput(fields) from None


class Input(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ReplyIn(Input):
    body: Body = Field(description="What the customer will read (or, for a note, the team).")


class ReasonIn(Input):
    reason: Line


class OptionalReasonIn(Input):
    reason: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)] = ""


class TransferIn(Input):
    to_agent_id: Id
    reason: Line


class SolveIn(Input):
    resolution: Body = Field(description="The resolution summary the customer is sent.")


class ActionOut(BaseModel):
    action: str
    ticket: TicketOut
    message_id: Id | None = None


# --- shared by the ticket, refund and customer routes ---------------------------------------------
def attachments_dir(request: Request) -> Any:
    """Where the gateway stores customers' photos: ``var/attachments/`` (``KEFU_VAR_DIR``),
    unless the process edge or a test put another directory in ``desk.extras``."""
    configured = desk_of(request).extras.get("attachments_dir")
    return configured if configured is not None else var_dir() / "attachments"


def detail_for(session: Session, request: Request, who: Principal, agent: Agent,
               ticket: Ticket) -> TicketDetail:
    desk = desk_of(request)
    return ticket_page.ticket_detail(session, ticket=ticket, viewer=agent, cipher=desk.cipher,
                                     language=who.language, timezone=desk.settings.timezone,
                                     now=desk.clock())


def page_context(session: Session, request: Request, who: Principal, agent: Agent,
                 ticket: Ticket, *, reply_text: str = "", order_id: Id | None = None,
                 revealed: dict[str, str] | None = None) -> dict[str, Any]:
    """Everything ``ticket.html`` and its partials render."""
    detail = detail_for(session, request, who, agent, ticket)
    return {
        "language": who.language, "who": who, "csrf_token": who.csrf_token, "detail": detail,
        "canned": canned_replies.options(who.language, canned_replies.catalogue(session)),
        "transfer_targets": ticket_page.transfer_targets(session, ticket=ticket,
                                                         language=who.language)
        if detail.permissions.transfer else [],
        "reply_text": reply_text, "canned_order_id": order_id or ticket.order_id,
        "revealed": revealed or {},
    }


def workspace(request: Request, who: Principal, ticket_id: Id, *,
              revealed: dict[str, str] | None = None, full_page: bool = False) -> Response:
    """The ticket's workspace (htmx) or whole page, read in a fresh unit of work."""
    desk = desk_of(request)
    try:
        with desk.unit_of_work() as session:
            agent = who.agent(session)
            ticket = access.require_ticket(session, agent, ticket_id)
            context = page_context(session, request, who, agent, ticket, revealed=revealed)
    except TicketNotFound:
        if full_page:
            raise
        # the action took the ticket out of the person's sight (e.g. transferred away)
        return Response(status_code=204, headers={"HX-Redirect": "/"})
    name = "ticket.html" if full_page else "partials/ticket_workspace.html"
    response = desk.templates.TemplateResponse(request, name, context)
    if revealed:
        response.headers["Cache-Control"] = "no-store"
    return response


def answer(request: Request, who: Principal, ticket_id: Id | None, result: BaseModel,
           *, fallback: str = "/") -> Any:
    """JSON for scripts; the updated workspace for htmx; a 303 back to the page for forms."""
    if is_htmx(request):
        if ticket_id is None:
            return Response(status_code=204, headers={"HX-Refresh": "true"})
        return workspace(request, who, ticket_id)
    if is_form(request):
        target = f"/tickets/{ticket_id}" if ticket_id is not None else fallback
        return RedirectResponse(target, status_code=303)
    return result


# --- reading --------------------------------------------------------------------------------------
@router.get("/tickets/{ticket_id}", include_in_schema=False)
def ticket_page_html(request: Request, ticket_id: Id,
                     who: Annotated[Principal, Depends(principal)],
                     canned: str | None = None, order_id: Id | None = None) -> Response:
    """The ticket page. ``?canned=<key>`` pre-fills the reply box (the select's no-script
    fallback; with htmx the select fetches ``/tickets/{id}/reply-box``)."""
    desk = desk_of(request)
    with desk.unit_of_work() as session:
        agent = who.agent(session)
        ticket = access.require_ticket(session, agent, ticket_id)
        order = _canned_order(session, agent, ticket, order_id)
        text = _canned_text(session, ticket, agent, canned, order)
        context = page_context(session, request, who, agent, ticket, reply_text=text,
                               order_id=order.id if order else None)
    return desk.templates.TemplateResponse(request, "ticket.html", context)


@router.get("/tickets/{ticket_id}/part/{part}", include_in_schema=False)
def ticket_part(request: Request, ticket_id: Id, part: Literal[PARTS],
                who: Annotated[Principal, Depends(principal)]) -> Response:
    """One panel of the page, re-read: each panel fetches itself when the desk's live stream
    reports a change to the ticket (``kefu:ticket-<id>``), leaving a draft reply untouched."""
    desk = desk_of(request)
    with desk.unit_of_work() as session:
        agent = who.agent(session)
        ticket = access.require_ticket(session, agent, ticket_id)
        context = page_context(session, request, who, agent, ticket)
    return desk.templates.TemplateResponse(request, f"partials/ticket_{part}.html", context)


@router.get("/tickets/{ticket_id}/reply-box", include_in_schema=False)
def reply_box(request: Request, ticket_id: Id, who: Annotated[Principal, Depends(principal)],
              canned: str = "", order_id: Id | None = None) -> Response:
    """The reply textarea filled with canned reply ``canned`` (htmx swaps it in place)."""
    desk = desk_of(request)
    with desk.unit_of_work() as session:
        agent = who.agent(session)
        ticket = access.require_ticket(session, agent, ticket_id)
        order = _canned_order(session, agent, ticket, order_id)
        text = _canned_text(session, ticket, agent, canned, order)
    return desk.templates.TemplateResponse(
        request, "partials/ticket_reply_box.html",
        {"language": who.language, "reply_text": text})


def _canned_order(session: Session, agent: Agent, ticket: Ticket,
                  order_id: Id | None) -> Order | None:
    """The order to name in a canned reply: one of this ticket's customer's, visible to the
    agent (else 404), or the ticket's own."""
    if order_id is None:
        return session.get(Order, ticket.order_id) if ticket.order_id else None
    order = access.require_order(session, agent, order_id)
    if order.customer_id != ticket.customer_id:
        raise OrderNotFound(order_id=order_id)
    return order


def _canned_text(session: Session, ticket: Ticket, agent: Agent, key: str | None,
                 order: Order | None) -> str:
    if not key:
        return ""
    return canned_replies.render(key, ticket=ticket,
                                 customer=session.get(Customer, ticket.customer_id),
                                 order=order, agent=agent,
                                 replies=canned_replies.catalogue(session))


@router.get("/tickets/{ticket_id}/attachments/{message_id}/{index}", include_in_schema=False)
def attachment(request: Request, ticket_id: Id, message_id: Id, index: int,
               who: Annotated[Principal, Depends(principal)]) -> Response:
    """A photo the customer sent, only to people who may see the ticket; the file is found by
    the stored content hash, never by a path from the request."""
    desk = desk_of(request)
    with desk.unit_of_work() as session:
        agent = who.agent(session)
        ticket = access.require_ticket(session, agent, ticket_id)
        path = ticket_page.attachment_file(session, ticket=ticket, message_id=message_id,
                                           index=index, root=attachments_dir(request))
    return FileResponse(path, media_type="image/jpeg", headers={
        "Cache-Control": "private, max-age=300",
        "Content-Disposition": "inline"})


@router.get(f"{API}/tickets/{{ticket_id}}", response_model=TicketDetail, tags=["tickets"],
            responses=errors(404))
def ticket_json(request: Request, ticket_id: Id,
                who: Annotated[Principal, Depends(principal)]) -> TicketDetail:
    """The ticket with its whole thread (reply delivery states included), event history, SLA
    timers, the customer card (masked contact) and what the caller may do."""
    with desk_of(request).unit_of_work() as session:
        agent = who.agent(session)
        ticket = access.require_ticket(session, agent, ticket_id)
        return detail_for(session, request, who, agent, ticket)


@router.get(f"{API}/canned-replies", response_model=list[CannedOut], tags=["tickets"],
            responses=errors(404))
def canned_json(request: Request, who: Annotated[Principal, Depends(principal)],
                ticket_id: Annotated[Id, Query()],
                order_id: Annotated[Id | None, Query()] = None) -> list[CannedOut]:
    """Every canned reply, titled in the agent's language and rendered in the ticket's, with
    the customer's name, the order number (``order_id``, else the ticket's order) and the
    agent's first name filled in."""
    with desk_of(request).unit_of_work() as session:
        agent = who.agent(session)
        ticket = access.require_ticket(session, agent, ticket_id)
        order = _canned_order(session, agent, ticket, order_id)
        return ticket_page.canned_options(session, ticket=ticket, viewer=agent,
                                          language=who.language, order=order)


# --- acting ---------------------------------------------------------------------------------------
Work = Callable[[Session, Agent, Ticket, datetime], "int | None"]


def act(request: Request, who: Principal, ticket_id: Id, action: str, work: Work) -> Any:
    """One action in one unit of work: visibility (404), role (403), then the service."""
    desk = desk_of(request)
    with desk.unit_of_work() as session:
        agent = who.agent(session)
        ticket = access.require_ticket(session, agent, ticket_id)
        access.require_worker_role(agent)
        message_id = work(session, agent, ticket, desk.clock())
        session.flush()
        view = page_view.View(session, viewer=agent, language=who.language,
                              timezone=desk.settings.timezone, cipher=desk.cipher,
                              now=desk.clock())
        result = ActionOut(action=action, message_id=message_id,
                           ticket=ticket_page.ticket_out(view, ticket, ticket_page.agent_names(
                               session, [ticket.owner_id, ticket.assignee_id])))
    return answer(request, who, ticket_id, result)


Who = Annotated[Principal, Depends(principal)]
ACTION = {"response_model": ActionOut, "tags": ["ticket actions"]}


@router.post(f"{API}/tickets/{{ticket_id}}/claim", **ACTION, responses=errors(404, 409))
def claim(request: Request, ticket_id: Id, who: Who) -> Any:
    """Take the ticket (首问负责制, rules §OWN-1). Of two agents claiming at once one wins; the
    other gets 409 with the owner's name."""
    def work(session: Session, agent: Agent, ticket: Ticket, now: datetime) -> None:
        ownership.claim(session, ticket_id=ticket.id, agent_id=agent.id, now=now)

    try:
        return act(request, who, ticket_id, "claim", work)
    except AlreadyClaimed:
        with desk_of(request).session_factory() as session:
            owner = ticket_page.owner_name(session, ticket_id)
        raise ClaimedBy(owner, ticket_id=ticket_id) from None


@router.post(f"{API}/tickets/{{ticket_id}}/reply", **ACTION, responses=errors(404, 409, 422),
             openapi_extra=body_of(ReplyIn))
def reply(request: Request, ticket_id: Id, who: Who, data: Submitted) -> Any:
    """Answer the customer: the reply goes through the outbox to the customer's channel (the
    thread shows pending / delivered / failed) and meets the response clock."""
    given = parse(ReplyIn, data)

    def work(session: Session, agent: Agent, ticket: Ticket, now: datetime) -> int:
        return tickets.agent_reply(session, ticket_id=ticket.id, agent_id=agent.id,
                                   body=given.body, now=now).id

    return act(request, who, ticket_id, "reply", work)


@router.post(f"{API}/tickets/{{ticket_id}}/note", **ACTION, responses=errors(404, 409, 422),
             openapi_extra=body_of(ReplyIn))
def note(request: Request, ticket_id: Id, who: Who, data: Submitted) -> Any:
    """An internal note: on the thread for the team, never sent to the customer."""
    given = parse(ReplyIn, data)

    def work(session: Session, agent: Agent, ticket: Ticket, now: datetime) -> int:
        return tickets.agent_reply(session, ticket_id=ticket.id, agent_id=agent.id,
                                   body=given.body, internal=True, now=now).id

    return act(request, who, ticket_id, "note", work)


@router.post(f"{API}/tickets/{{ticket_id}}/escalate", **ACTION, responses=errors(404, 409, 422),
             openapi_extra=body_of(ReasonIn))
def escalate(request: Request, ticket_id: Id, who: Who, data: Submitted) -> Any:
    """One tier up with a reason (rules §TIER-4); a higher-tier helper joins, the owner stays
    (§OWN-4). At L3: 409."""
    given = parse(ReasonIn, data)

    def work(session: Session, agent: Agent, ticket: Ticket, now: datetime) -> None:
        escalation.escalate(session, ticket_id=ticket.id, reason=given.reason, source="agent",
                            by_agent_id=agent.id, now=now)

    return act(request, who, ticket_id, "escalate", work)


@router.post(f"{API}/tickets/{{ticket_id}}/transfer", **ACTION,
             responses=errors(404, 409, 422), openapi_extra=body_of(TransferIn))
def transfer(request: Request, ticket_id: Id, who: Who, data: Submitted) -> Any:
    """Hand the ticket to another agent with a reason (owner or supervisor; rules §OWN-2);
    audited. The new owner must be someone who works tickets (not a manager or admin)."""
    given = parse(TransferIn, data)

    def work(session: Session, agent: Agent, ticket: Ticket, now: datetime) -> None:
        target = session.get(Agent, given.to_agent_id)
        if target is None or not access.works_tickets(target):
            raise InvalidInput(["to_agent_id"])
        ownership.transfer(session, ticket_id=ticket.id, to_agent_id=target.id,
                           by_agent_id=agent.id, reason=given.reason, now=now)

    return act(request, who, ticket_id, "transfer", work)


@router.post(f"{API}/tickets/{{ticket_id}}/wait", **ACTION, responses=errors(404, 409, 422),
             openapi_extra=body_of(OptionalReasonIn))
def wait(request: Request, ticket_id: Id, who: Who, data: Submitted) -> Any:
    """Waiting on the customer: the SLA clocks pause until they write (rules §SLA-4)."""
    given = parse(OptionalReasonIn, data)

    def work(session: Session, agent: Agent, ticket: Ticket, now: datetime) -> None:
        tickets.wait_for_customer(session, ticket_id=ticket.id, agent_id=agent.id,
                                  reason=given.reason or None, now=now)

    return act(request, who, ticket_id, "wait", work)


@router.post(f"{API}/tickets/{{ticket_id}}/solve", **ACTION, responses=errors(404, 409, 422),
             openapi_extra=body_of(SolveIn))
def solve(request: Request, ticket_id: Id, who: Who, data: Submitted) -> Any:
    """Solve with a resolution summary: the customer is sent it, the CSAT survey is queued and
    the follow-up (回访) and survey reminder are scheduled (``tickets.solve``).

    Handing the conversation back to the bot needs nothing more here, on purpose. The solved
    notice and the survey are outbox rows carrying the ticket id; when the gateway delivers
    the first of them it sees the handoff is over (``handoffs.is_over``), resumes Rasa and
    only then releases the handoff (``Gateway.hand_back``); a customer message arriving first
    triggers the same hand-back. Releasing it here (``handoffs.release``) would forget the
    handoff while Rasa is still paused for that conversation, so the customer's next message
    would go unanswered; only the gateway can resume Rasa.
    """
    given = parse(SolveIn, data)

    def work(session: Session, agent: Agent, ticket: Ticket, now: datetime) -> None:
        tickets.solve(session, ticket_id=ticket.id, agent_id=agent.id,
                      resolution=given.resolution, now=now)

    return act(request, who, ticket_id, "solve", work)


@router.post(f"{API}/tickets/{{ticket_id}}/reopen", **ACTION, responses=errors(404, 409, 422),
             openapi_extra=body_of(ReasonIn))
def reopen(request: Request, ticket_id: Id, who: Who, data: Submitted) -> Any:
    """Solved → open again, back to the same owner, with a reason; clocks restart."""
    given = parse(ReasonIn, data)

    def work(session: Session, agent: Agent, ticket: Ticket, now: datetime) -> None:
        tickets.reopen(session, ticket_id=ticket.id, actor_type="agent", actor_id=agent.id,
                       reason=given.reason, now=now)

    return act(request, who, ticket_id, "reopen", work)
