"""Every agent action on a ticket through the desk API, and who may do what (rules §SEC-5,
§OWN-1, §OWN-2, §TIER-4, §LOOP-1, §REF-1, §SEC-4, §SEC-6)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from tests.conftest import TEST_KEY
from tests.factories import Factory
from tests.ticketing.desk_setup import NOW, new_ticket, snapshot
from tests.ticketing.web.conftest import PASSWORD_HASH, sign_in
from ticketing.core.models import (
    Agent,
    AuditLog,
    OrderState,
    OutboxMessage,
    RefundRequest,
    RefundState,
    SlaTimer,
    Ticket,
    TicketMessage,
    TimerKind,
    TimerStatus,
)
from ticketing.core.pii import PiiCipher
from ticketing.desk import handoffs
from ticketing.shop import customers
from ticketing.shop.refunds import flow as refunds

PHONE = "13912345678"
ADDRESS = "上海市浦东新区世纪大道100号"


@dataclass
class World:
    ticket_id: int
    customer_id: int
    order_id: int
    conversation_id: str
    stranger_id: int  # another customer, seen through no ticket of the frontline
    stranger_order_id: int
    stranger_ticket_id: int  # unclaimed, tier 3: nobody of the frontline sees it
    after_sales: Agent
    refund_id: int


def build_world(session_factory, people, *, language: str = "zh") -> World:
    """A customer with a delivered order (refund under review), linked to Telegram and handed
    off to a new logistics ticket with the bot's transcript; a stranger with their own ticket;
    an after-sales team."""
    with session_factory.begin() as s:
        make = Factory(s, PiiCipher(TEST_KEY))
        customer = make.customer(name="张伟" if language == "zh" else "Alice", phone=PHONE,
                                 address=ADDRESS, language=language)
        conversation = customers.link_identity(
            s, channel="telegram", external_id=f"77{customer.id}", customer_id=customer.id,
            now=NOW).conversation_id
        order = make.order(customer=customer, state=OrderState.DELIVERED,
                           created_at=NOW - timedelta(days=3))
        make.shipment(order=order, delivered=True)
        ticket = new_ticket(
            s, make, customer=customer, order_id=order.id, conversation_id=conversation,
            language=language,
            transcript=[{"author_type": "customer", "body": "我的快递显示签收了但我没收到",
                         "at": NOW - timedelta(minutes=2)},
                        {"author_type": "bot", "body": "我帮您转人工客服。",
                         "at": NOW - timedelta(minutes=1)}])
        handoffs.mark(s, conversation_id=conversation, ticket_id=ticket.id, now=NOW)
        refund = refunds.request_refund(
            s, customer_id=customer.id, order_number=order.number, reason="changed_mind",
            amount_cents=None, method="original", idempotency_key=f"k-{order.id}", now=NOW)
        assert refund.state is RefundState.UNDER_REVIEW
        stranger = make.customer(name="李四")
        stranger_order = make.order(customer=stranger)
        stranger_ticket = new_ticket(s, make, customer=stranger, subject="有人盗刷我的账户")
        assert stranger_ticket.tier == 3
        team = make.team(code="after_sales", tier=2, categories=["refund", "quality"])
        after_sales = make.agent(team=team, name="Zhou")
        after_sales.password_hash = PASSWORD_HASH
        s.flush()
        s.expunge(after_sales)
        return World(ticket.id, customer.id, order.id, conversation, stranger.id,
                     stranger_order.id, stranger_ticket.id, after_sales, refund.id)


@pytest.fixture
def world(session_factory, people) -> World:
    return build_world(session_factory, people)


def ticket_row(session_factory, ticket_id: int) -> Ticket:
    with session_factory() as s:
        ticket = s.get(Ticket, ticket_id)
        s.expunge(ticket)
        return ticket


def outbox_rows(session_factory, ticket_id: int | None = None,
                kind: str | None = None) -> list[OutboxMessage]:
    with session_factory() as s:
        stmt = select(OutboxMessage).order_by(OutboxMessage.id)
        if ticket_id is not None:
            stmt = stmt.where(OutboxMessage.ticket_id == ticket_id)
        if kind is not None:
            stmt = stmt.where(OutboxMessage.kind == kind)
        return list(s.scalars(stmt))


def counts(session_factory) -> tuple:
    with session_factory() as s:
        return snapshot(s)


BODIES = {
    "claim": None,
    "reply": {"body": "您好，我来帮您查。"},
    "note": {"body": "先查快递员签收照片"},
    "escalate": {"reason": "需要物流组核实"},
    "transfer": {"reason": "换班"},  # to_agent_id added per test
    "wait": {"reason": "等客户提供照片"},
    "solve": {"resolution": "已补发"},
    "reopen": {"reason": "客户说还没收到"},
}


def post(client, ticket_id: int, action: str, to_agent_id: int | None = None, **extra):
    body = dict(BODIES[action] or {})
    if action == "transfer":
        body["to_agent_id"] = to_agent_id
    body.update(extra)
    return client.post(f"/api/v1/tickets/{ticket_id}/{action}", json=body)


# --- the happy path -------------------------------------------------------------------------------
def test_every_action_through_the_api(app, people, world, session_factory) -> None:
    desk = people.desk
    li, wang = sign_in(app, desk.l1), sign_in(app, desk.l1b)
    t = world.ticket_id

    claimed = post(li, t, "claim")
    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["ticket"]["owner"] == {"id": desk.l1.id, "name": "Li"}
    assert claimed.json()["ticket"]["state"] == "open"

    replied = post(li, t, "reply")
    assert replied.status_code == 200 and replied.json()["message_id"]
    noted = post(li, t, "note")
    assert noted.status_code == 200
    waited = post(li, t, "wait")
    assert waited.json()["ticket"]["state"] == "waiting_customer"
    escalated = post(li, t, "escalate")
    assert escalated.json()["ticket"]["tier"] == 2
    assert escalated.json()["ticket"]["assignee"]["id"] == desk.l2.id  # logistics helps
    assert escalated.json()["ticket"]["owner"]["id"] == desk.l1.id  # the owner stays
    transferred = post(li, t, "transfer", to_agent_id=desk.l1b.id)
    assert transferred.json()["ticket"]["owner"]["id"] == desk.l1b.id
    assert post(li, t, "solve").status_code == 403  # no longer the owner
    solved = post(wang, t, "solve")
    assert solved.status_code == 200 and solved.json()["ticket"]["state"] == "solved"
    assert solved.json()["ticket"]["resolution"] == "已补发"
    reopened = post(wang, t, "reopen")
    assert reopened.json()["ticket"]["state"] == "open"

    detail = wang.get(f"/api/v1/tickets/{t}").json()
    kinds = [e["kind"] for e in detail["events"]]
    for kind in ("created", "claimed", "state_changed", "escalated", "transferred", "solved",
                 "csat_sent", "reopened"):
        assert kind in kinds
    why = {e["kind"]: e["reason"] for e in detail["events"]}
    assert why["escalated"] == "需要物流组核实" and why["transferred"] == "换班"
    transfer_event = next(e for e in detail["events"] if e["kind"] == "transferred")
    assert transfer_event["actor"] == "Li" and transfer_event["change"] == "Li → Wang"
    thread = [(m["author_type"], m["internal"]) for m in detail["thread"]]
    assert thread == [("customer", False), ("bot", False), ("agent", False), ("agent", True)]
    with session_factory() as s:
        audit = s.scalars(select(AuditLog).where(AuditLog.action == "ticket.transfer")).one()
        assert audit.actor_id == desk.l1.id and audit.details["reason"] == "换班"


def test_reply_goes_to_the_customers_conversation_and_a_note_does_not(app, people, world,
                                                                      session_factory) -> None:
    li = sign_in(app, people.desk.l1)
    assert post(li, world.ticket_id, "claim").status_code == 200
    post(li, world.ticket_id, "reply")
    [row] = outbox_rows(session_factory, world.ticket_id, "agent_reply")
    assert row.conversation_id == world.conversation_id and row.customer_id == world.customer_id
    assert row.text == BODIES["reply"]["body"] and row.payload["agent"] == "Li"
    before = len(outbox_rows(session_factory))
    assert post(li, world.ticket_id, "note").status_code == 200
    assert len(outbox_rows(session_factory)) == before  # internal: never sent
    with session_factory() as s:
        note = s.scalars(select(TicketMessage).where(TicketMessage.internal.is_(True))).one()
        assert note.body == BODIES["note"]["body"]
        first = s.scalars(select(SlaTimer).where(
            SlaTimer.ticket_id == world.ticket_id,
            SlaTimer.kind == TimerKind.FIRST_RESPONSE)).one()
        assert first.status is TimerStatus.DONE  # the public reply met the response clock


def test_solve_sends_the_survey_schedules_aftercare_and_leaves_hand_back_to_the_gateway(
        app, people, world, session_factory) -> None:
    li = sign_in(app, people.desk.l1)
    post(li, world.ticket_id, "claim")
    assert post(li, world.ticket_id, "solve").status_code == 200
    kinds = [row.kind for row in outbox_rows(session_factory, world.ticket_id)]
    assert kinds == ["notice", "csat_request"]
    [survey] = outbox_rows(session_factory, world.ticket_id, "csat_request")
    assert survey.conversation_id == world.conversation_id
    with session_factory() as s:
        live = {t.kind for t in s.scalars(select(SlaTimer).where(
            SlaTimer.ticket_id == world.ticket_id, SlaTimer.status == TimerStatus.ACTIVE))}
        assert live == {TimerKind.FOLLOWUP, TimerKind.CSAT_REMINDER}
        # the handoff is over but still recorded: the gateway resumes Rasa, then releases it
        assert handoffs.is_over(s, conversation_id=world.conversation_id,
                                ticket_id=world.ticket_id)


def test_validation_errors_are_422_and_write_nothing(app, people, world,
                                                     session_factory) -> None:
    li = sign_in(app, people.desk.l1)
    post(li, world.ticket_id, "claim")
    before = counts(session_factory)
    for action, body in (("reply", {"body": "   "}), ("escalate", {}), ("solve", {}),
                         ("transfer", {"reason": "x", "to_agent_id": people.manager.id})):
        answer = li.post(f"/api/v1/tickets/{world.ticket_id}/{action}", json=body)
        assert answer.status_code == 422, (action, answer.text)
        assert answer.json()["error"]["code"] == "invalid_input"
    assert counts(session_factory) == before


def test_illegal_moves_are_409(app, people, world) -> None:
    li = sign_in(app, people.desk.l1)
    post(li, world.ticket_id, "claim")
    refused = post(li, world.ticket_id, "reopen")  # open, not solved
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "illegal_transition"


# --- claiming at once -----------------------------------------------------------------------------
def test_second_claim_is_409_naming_the_owner_in_the_agents_language(app, people, world,
                                                                      session_factory) -> None:
    with session_factory.begin() as s:
        s.get(Agent, people.desk.l1b.id).language = "en"
    li, wang = sign_in(app, people.desk.l1), sign_in(app, people.desk.l1b)
    assert post(li, world.ticket_id, "claim").status_code == 200
    lost = post(wang, world.ticket_id, "claim")
    assert lost.status_code == 409
    assert lost.json()["error"] == {"code": "already_claimed",
                                    "message": "Li has already claimed this ticket."}
    assert post(li, world.ticket_id, "claim").status_code == 200  # own ticket again: no-op
    assert ticket_row(session_factory, world.ticket_id).owner_id == people.desk.l1.id


# --- who may do what ------------------------------------------------------------------------------
def test_another_teams_agent_gets_404_for_every_id_and_action(app, people, world,
                                                              session_factory, tmp_path) -> None:
    li, zhao = sign_in(app, people.desk.l1), sign_in(app, people.desk.l2)  # l2: logistics
    post(li, world.ticket_id, "claim")
    before = counts(session_factory)
    t = world.ticket_id
    assert zhao.get(f"/api/v1/tickets/{t}").status_code == 404
    assert zhao.get(f"/tickets/{t}").status_code == 404
    for action in BODIES:
        answer = post(zhao, t, action, to_agent_id=people.desk.l2.id)
        assert answer.status_code == 404, (action, answer.text)
        assert answer.json()["error"]["code"] == "ticket_not_found"
    assert zhao.get(f"/api/v1/customers/{world.customer_id}").status_code == 404
    assert zhao.get(f"/api/v1/canned-replies?ticket_id={t}").status_code == 404
    assert zhao.get(f"/tickets/{t}/reply-box?canned=greeting").status_code == 404
    assert zhao.get(f"/tickets/{t}/attachments/1/0").status_code == 404
    # invisible and missing look the same
    assert zhao.get(f"/api/v1/tickets/{t}").json() == zhao.get("/api/v1/tickets/99999").json()
    # the frontline agent probing the stranger's ticket, customer and order
    assert li.get(f"/api/v1/tickets/{world.stranger_ticket_id}").status_code == 404
    assert post(li, world.stranger_ticket_id, "claim").status_code == 404
    assert li.get(f"/api/v1/customers/{world.stranger_id}").status_code == 404
    assert li.get(f"/api/v1/canned-replies?ticket_id={t}"
                  f"&order_id={world.stranger_order_id}").status_code == 404
    assert li.get(f"/tickets/{t}/reply-box?canned=greeting"
                  f"&order_id={world.stranger_order_id}").status_code == 404
    assert counts(session_factory) == before


def test_managers_and_admins_read_but_cannot_act(app, people, world, session_factory) -> None:
    bosses = [sign_in(app, boss) for boss in (people.manager, people.admin)]
    before = counts(session_factory)
    for c in bosses:
        assert c.get(f"/api/v1/tickets/{world.ticket_id}").status_code == 200
        assert c.get(f"/tickets/{world.ticket_id}").status_code == 200
        assert c.get(f"/api/v1/customers/{world.customer_id}").status_code == 200
        for action in BODIES:
            answer = post(c, world.ticket_id, action, to_agent_id=people.desk.l1.id)
            assert answer.status_code == 403, (action, answer.text)
    assert counts(session_factory) == before


def test_an_agent_who_does_not_work_the_ticket_is_refused_by_the_service(app, people,
                                                                          world) -> None:
    li, wang = sign_in(app, people.desk.l1), sign_in(app, people.desk.l1b)
    assert post(wang, world.ticket_id, "reply").status_code == 403  # unclaimed: claim first
    post(li, world.ticket_id, "claim")
    assert wang.get(f"/api/v1/tickets/{world.ticket_id}").status_code == 200  # same team
    for action in ("reply", "note", "escalate", "wait", "solve"):
        assert post(wang, world.ticket_id, action).status_code == 403, action
    assert post(wang, world.ticket_id, "transfer",
                to_agent_id=people.desk.l1b.id).status_code == 403


def test_writes_without_the_csrf_token_are_refused(app, people, world,
                                                   session_factory) -> None:
    li = sign_in(app, people.desk.l1)
    token = li.headers.pop("X-CSRF-Token")
    before = counts(session_factory)
    assert post(li, world.ticket_id, "claim").status_code == 403
    form = li.post(f"/api/v1/tickets/{world.ticket_id}/claim", data={"csrf_token": "forged"})
    assert form.status_code == 403
    assert counts(session_factory) == before
    ok = li.post(f"/api/v1/tickets/{world.ticket_id}/claim", data={"csrf_token": token},
                 follow_redirects=False)
    assert ok.status_code == 303 and ok.headers["location"] == f"/tickets/{world.ticket_id}"


# --- personal data --------------------------------------------------------------------------------
def supervised_ticket(session_factory, people, world) -> int:
    """A ticket of the world's customer that the supervisor entered at the desk (owns)."""
    with session_factory.begin() as s:
        make = Factory(s, PiiCipher(TEST_KEY))
        from ticketing.core.models import Customer
        ticket = new_ticket(s, make, customer=s.get(Customer, world.customer_id),
                            subject="电话投诉", channel="desk", conversation_id=None,
                            created_by_agent_id=people.desk.supervisor.id)
        return ticket.id


def test_reveal_is_a_supervisors_audited_action(app, people, world, session_factory) -> None:
    ticket_id = supervised_ticket(session_factory, people, world)
    url = f"/api/v1/customers/{world.customer_id}/reveal"
    li = sign_in(app, people.desk.l1)
    assert li.post(url, json={"field": "phone", "reason": "核实"}).status_code == 403
    assert li.post(url, json={}).status_code == 403  # the role first: nothing to learn
    assert sign_in(app, people.manager).post(
        url, json={"field": "phone", "reason": "核实"}).status_code == 403
    chen = sign_in(app, people.desk.supervisor)
    assert chen.post(url, json={"field": "phone"}).status_code == 422
    assert chen.post(url, json={"field": "phone", "reason": "  "}).status_code == 422
    assert chen.post(url, json={"field": "email", "reason": "x"}).status_code == 422
    shown = chen.post(url, json={"field": "phone", "reason": "客户要求回电",
                                 "ticket_id": ticket_id})
    assert shown.status_code == 200, shown.text
    assert shown.json() == {"customer_id": world.customer_id, "field": "phone", "value": PHONE}
    assert shown.headers["cache-control"] == "no-store"
    address = chen.post(url, json={"field": "address", "reason": "补发地址核对"})
    assert address.json()["value"] == ADDRESS
    with session_factory() as s:
        lines = list(s.scalars(select(AuditLog).where(AuditLog.action == "pii.revealed")
                               .order_by(AuditLog.id)))
    assert [line.details["field"] for line in lines] == ["phone", "address"]
    first = lines[0]
    assert first.actor_id == people.desk.supervisor.id and first.target_id == str(
        world.customer_id)
    assert first.details["reason"] == "客户要求回电" and first.details["ticket_id"] == ticket_id
    for line in lines:
        assert PHONE not in str(line.details) and ADDRESS not in str(line.details)
    # a customer the supervisor sees through no ticket is not found
    assert chen.post(f"/api/v1/customers/{world.stranger_id}/reveal",
                     json={"field": "phone", "reason": "x"}).status_code == 404


def test_the_clear_phone_appears_nowhere_else(app, people, world) -> None:
    li = sign_in(app, people.desk.l1)
    post(li, world.ticket_id, "claim")
    for path in (f"/api/v1/tickets/{world.ticket_id}", f"/api/v1/customers/{world.customer_id}",
                 f"/tickets/{world.ticket_id}"):
        text = li.get(path).text
        assert PHONE not in text and ADDRESS not in text
        assert "139****5678" in text


# --- refunds in review ----------------------------------------------------------------------------
def test_after_sales_reviews_refunds_and_the_customer_is_told(app, people, world,
                                                              session_factory) -> None:
    zhou = sign_in(app, world.after_sales)
    listed = zhou.get("/api/v1/refunds?state=under_review")
    assert listed.status_code == 200
    [item] = listed.json()
    assert item["id"] == world.refund_id and item["state"] == "under_review"
    url = f"/api/v1/refunds/{world.refund_id}/review"
    assert zhou.post(url, json={"approve": False}).status_code == 422  # a rejection needs a why
    approved = zhou.post(url, json={"approve": True})
    assert approved.status_code == 200 and approved.json()["state"] == "processing"
    [told] = outbox_rows(session_factory, kind="refund_update")[-1:]
    assert told.conversation_id == world.conversation_id
    assert told.payload["state"] == "processing"
    assert zhou.post(url, json={"approve": True}).status_code == 409  # decided already
    assert zhou.get("/api/v1/refunds").json() == []
    with session_factory() as s:
        refund = s.get(RefundRequest, world.refund_id)
        assert refund.reviewed_by == world.after_sales.id
        assert s.scalar(select(func.count()).select_from(AuditLog)
                        .where(AuditLog.action == "refund.reviewed")) == 1


def test_a_rejection_tells_the_customer_why(app, people, world, session_factory) -> None:
    chen = sign_in(app, people.desk.supervisor)  # supervisors decide too
    rejected = chen.post(f"/api/v1/refunds/{world.refund_id}/review",
                         json={"approve": False, "note": "商品已使用，不支持无理由退货"})
    assert rejected.status_code == 200 and rejected.json()["state"] == "rejected"
    told = outbox_rows(session_factory, kind="refund_update")[-1]
    assert "商品已使用" in told.text


def test_others_may_not_review_refunds(app, people, world, session_factory) -> None:
    url = f"/api/v1/refunds/{world.refund_id}/review"
    li, zhao, boss, root = (sign_in(app, a) for a in (people.desk.l1, people.desk.l2,
                                                      people.manager, people.admin))
    before = counts(session_factory)
    for c in (li, zhao, boss, root):
        assert c.post(url, json={"approve": True}).status_code == 403
    for c in (li, zhao):
        assert c.get("/api/v1/refunds").status_code == 403
    assert boss.get("/api/v1/refunds").status_code == 200  # managers read
    assert counts(session_factory) == before
    with session_factory() as s:
        assert s.get(RefundRequest, world.refund_id).state is RefundState.UNDER_REVIEW


def test_review_of_a_missing_refund_is_404(app, people, world) -> None:
    zhou = sign_in(app, world.after_sales)
    assert zhou.post("/api/v1/refunds/99999/review", json={"approve": True}).status_code == 404


# --- canned replies -------------------------------------------------------------------------------
def test_canned_replies_are_rendered_for_the_ticket(app, people, world) -> None:
    li = sign_in(app, people.desk.l1)
    post(li, world.ticket_id, "claim")
    answer = li.get(f"/api/v1/canned-replies?ticket_id={world.ticket_id}")
    assert answer.status_code == 200
    replies = {r["key"]: r for r in answer.json()}
    assert set(replies) == {"greeting", "ask_order_number", "parcel_delayed", "refund_approved",
                            "closing"}
    assert replies["greeting"]["title"] == "问候"
    assert replies["greeting"]["body"].startswith("张伟，您好！我是客服Li")
    assert li.get(f"/api/v1/tickets/{world.ticket_id}").json()["ticket"]["order_id"] == \
        world.order_id
    number = li.get(f"/api/v1/customers/{world.customer_id}").json()["orders"][0]["number"]
    assert number in replies["parcel_delayed"]["body"]


def test_canned_replies_in_english_for_an_english_ticket(app, people, session_factory) -> None:
    world = build_world(session_factory, people, language="en")
    li = sign_in(app, people.desk.l1)
    replies = {r["key"]: r["body"] for r in
               li.get(f"/api/v1/canned-replies?ticket_id={world.ticket_id}").json()}
    assert replies["greeting"] == ("Hello Alice, this is Li from customer service. "
                                   "How can I help you today?")
    assert "{" not in "".join(replies.values())


def test_openapi_lists_every_route_with_models_and_errors(app, people) -> None:
    spec = sign_in(app, people.desk.l1).get("/api/v1/openapi.json").json()
    paths = spec["paths"]
    for action in BODIES:
        operation = paths[f"/api/v1/tickets/{{ticket_id}}/{action}"]["post"]
        assert {"403", "404"} <= set(operation["responses"])
        assert "ActionOut" in str(operation["responses"]["200"])
    reply = paths["/api/v1/tickets/{ticket_id}/reply"]["post"]["requestBody"]["content"]
    assert {"application/json", "application/x-www-form-urlencoded"} <= set(reply)
    for path in ("/api/v1/tickets/{ticket_id}", "/api/v1/refunds",
                 "/api/v1/refunds/{refund_id}/review", "/api/v1/customers/{customer_id}",
                 "/api/v1/customers/{customer_id}/reveal", "/api/v1/canned-replies"):
        assert path in paths
    assert {"TicketDetail", "CustomerCard", "RefundOut", "ErrorOut"} <= set(
        spec["components"]["schemas"])
