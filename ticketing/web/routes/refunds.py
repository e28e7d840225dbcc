"""Refund requests in review (rules §REF-1: apply → review → process): the after-sales queue
``GET /api/v1/refunds`` and the decision ``POST /api/v1/refunds/{id}/review``.

Who decides: agents of a team serving refunds by name (after-sales) and supervisors
(``customer_card.reviews_refunds``); managers and admins may read the list, nobody else sees it
(403: the role is refused whatever the id, so nothing can be probed). The decision goes
through ``refunds.review``, which audits it and tells the customer the result in their
language on their newest channel (rules §REF-2); a rejection needs a reason.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import Field, StringConstraints

from ticketing.core.errors import PermissionDenied
from ticketing.core.models import Order, RefundRequest, RefundState
from ticketing.shop.refunds import flow as refunds
from ticketing.web.deps import Principal, desk_of, principal
from ticketing.web.queries import customer_card, page_view
from ticketing.web.queries.ticket_models import RefundOut
from ticketing.web.api import Id, Submitted, body_of, errors
from ticketing.web.routes.tickets import Input, answer, parse

router = APIRouter()


class ReviewIn(Input):
    approve: bool
    note: Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000)] = Field(
        default="", description="Required to reject: the reason the customer reads.")
    ticket_id: Id | None = Field(default=None, description="The page to go back to (forms).")


def _view(session: Any, request: Request, who: Principal, agent: Any) -> page_view.View:
    desk = desk_of(request)
    return page_view.View(session, viewer=agent, language=who.language,
                          timezone=desk.settings.timezone, cipher=desk.cipher, now=desk.clock())


@router.get("/api/v1/refunds", response_model=list[RefundOut], tags=["refunds"],
            responses=errors())
def list_refunds(request: Request, who: Annotated[Principal, Depends(principal)],
                 state: Annotated[RefundState, Query()] = RefundState.UNDER_REVIEW,
                 ) -> list[RefundOut]:
    """Refund requests in ``state`` (default: waiting for a decision), oldest first."""
    with desk_of(request).unit_of_work() as session:
        agent = who.agent(session)
        if not customer_card.reads_refunds(session, agent):
            raise PermissionDenied("refunds are reviewed by after-sales and supervisors")
        return customer_card.refunds_in_state(session, view=_view(session, request, who, agent),
                                              state=state)


@router.post("/api/v1/refunds/{refund_id}/review", response_model=RefundOut, tags=["refunds"],
             responses=errors(404, 409, 422), openapi_extra=body_of(ReviewIn))
def review(request: Request, refund_id: Id, who: Annotated[Principal, Depends(principal)],
           data: Submitted) -> Any:
    """Approve (→ processing: the customer sends the goods back) or reject with a reason; the
    customer is told either way."""
    desk = desk_of(request)
    with desk.unit_of_work() as session:
        agent = who.agent(session)
        if not customer_card.reviews_refunds(session, agent):
            raise PermissionDenied("refunds are reviewed by after-sales and supervisors")
        given = parse(ReviewIn, data)
        refund: RefundRequest = refunds.review(session, refund_id=refund_id, agent_id=agent.id,
                                               approve=given.approve, note=given.note,
                                               now=desk.clock())
        number = session.get(Order, refund.order_id).number  # type: ignore[union-attr]
        result = customer_card.refund_out(_view(session, request, who, agent), refund, number)
    return answer(request, who, given.ticket_id, result)
