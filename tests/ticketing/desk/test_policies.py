"""What admins tune: SLA targets, business hours and canned replies change what the desk does
next, are audited once, and refuse bad input writing nothing (rules §SLA-1, §SLA-3, §SEC-6)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from tests.ticketing.desk_setup import NOW, new_ticket
from ticketing.core.errors import ValidationError
from ticketing.core.models import (
    AuditLog, CannedReplyRow, DeskSetting, Priority, Role, Segment, SlaPolicyRow, SlaTimer,
    Ticket, TimerKind,
)
from ticketing.core.settings import SCHEDULE_KEY, ScheduleSettings
from ticketing.desk import business_hours, canned_replies, policies, sla

H = timedelta(hours=1)
M = timedelta(minutes=1)


def audits(session) -> list[AuditLog]:
    return list(session.scalars(select(AuditLog).order_by(AuditLog.id)))


def rows(session) -> tuple[int, ...]:
    return tuple(session.scalar(select(func.count()).select_from(model))
                 for model in (SlaPolicyRow, DeskSetting, CannedReplyRow, AuditLog))


def deadline(session, ticket: Ticket, kind: TimerKind):
    return session.scalar(select(SlaTimer.deadline_at).where(
        SlaTimer.ticket_id == ticket.id, SlaTimer.kind == kind).order_by(SlaTimer.id.desc()))


@pytest.fixture
def admin(make):
    return make.agent(role=Role.ADMIN, name="Root")


# --- SLA targets ---------------------------------------------------------------------------------
def test_targets_list_every_priority_and_segment_with_the_built_in_defaults(session) -> None:
    found = {(t.priority, t.segment): t for t in policies.sla_targets(session)}
    assert len(found) == len(Priority) * len(Segment)
    normal = found[(Priority.NORMAL, Segment.REGULAR)]
    assert (normal.first_response_minutes, normal.next_response_minutes,
            normal.resolution_minutes, normal.custom) == (24 * 60, 24 * 60, 72 * 60, False)
    assert found[(Priority.URGENT, Segment.VIP)].first_response_minutes == 60


def test_a_policy_row_sets_the_deadlines_of_new_tickets_only(session, make, admin) -> None:
    customer = make.customer()
    before = new_ticket(session, make, customer=customer)
    assert before.priority is Priority.NORMAL  # what triage makes of the default subject
    target = policies.set_sla_target(
        session, by_agent_id=admin.id, priority="normal", segment="regular",
        first_response_minutes=90, next_response_minutes=30, resolution_minutes=600,
        ip="10.0.0.9", now=NOW)
    assert target.custom and target.first_response_minutes == 90
    after = new_ticket(session, make, customer=customer, subject="另一个问题")
    assert after.priority is Priority.NORMAL
    assert deadline(session, after, TimerKind.FIRST_RESPONSE) == NOW + 90 * M
    assert deadline(session, after, TimerKind.RESOLUTION) == NOW + 600 * M
    assert deadline(session, before, TimerKind.FIRST_RESPONSE) == NOW + 24 * H  # promise kept
    # next response has its own budget: answered, then the customer writes again
    sla.on_agent_response(session, ticket=after, now=NOW + M)
    sla.on_customer_message(session, ticket=after, now=NOW + 2 * M)
    assert deadline(session, after, TimerKind.NEXT_RESPONSE) == NOW + 32 * M
    [entry] = audits(session)
    assert (entry.action, entry.target_type, entry.target_id, entry.actor_id, entry.ip) == (
        policies.SLA_POLICY_CHANGED, "sla_policy", "normal/regular", admin.id, "10.0.0.9")
    assert entry.details["from"] == {"first_response_minutes": 1440,
                                     "next_response_minutes": 1440,
                                     "resolution_minutes": 4320, "custom": False}
    assert entry.details["to"] == {"first_response_minutes": 90, "next_response_minutes": 30,
                                   "resolution_minutes": 600}
    # the row applies to its segment only: a VIP keeps the built-in halves
    vip = new_ticket(session, make, customer=make.customer(segment=Segment.VIP))
    expected = sla.policy_for(priority=vip.priority, segment=Segment.VIP).first_response
    assert deadline(session, vip, TimerKind.FIRST_RESPONSE) == NOW + expected


def test_policy_in_falls_back_to_the_table_and_policy_for_needs_no_session(session,
                                                                          admin) -> None:
    assert sla.policy_in(session, priority="high", segment=None) == sla.policy_for(
        priority="high", segment=None)
    policies.set_sla_target(session, by_agent_id=admin.id, priority="high", segment="regular",
                            first_response_minutes=60, next_response_minutes=45,
                            resolution_minutes=60)
    custom = sla.policy_in(session, priority="high", segment=None)  # no segment: regular
    assert (custom.first_response, custom.next_response, custom.resolution) == (H, 45 * M, H)
    assert sla.policy_for(priority="high", segment=None).first_response == 8 * H


def test_same_targets_again_and_a_reset(session, admin) -> None:
    values = dict(first_response_minutes=120, next_response_minutes=120, resolution_minutes=480)
    policies.set_sla_target(session, by_agent_id=admin.id, priority="urgent", segment="vip",
                            **values)
    policies.set_sla_target(session, by_agent_id=admin.id, priority="urgent", segment="vip",
                            **values)
    # the built-in values themselves are no change either
    policies.set_sla_target(session, by_agent_id=admin.id, priority="low", segment="regular",
                            first_response_minutes=48 * 60, next_response_minutes=48 * 60,
                            resolution_minutes=120 * 60)
    assert [e.action for e in audits(session)] == [policies.SLA_POLICY_CHANGED]
    back = policies.reset_sla_target(session, by_agent_id=admin.id, priority="urgent",
                                     segment="vip")
    assert (back.custom, back.first_response_minutes) == (False, 60)
    policies.reset_sla_target(session, by_agent_id=admin.id, priority="urgent", segment="vip")
    assert [e.action for e in audits(session)] == [policies.SLA_POLICY_CHANGED,
                                                   policies.SLA_POLICY_RESET]
    assert audits(session)[-1].details["from"]["first_response_minutes"] == 120


@pytest.mark.parametrize("field, changes", [
    ("first_response_minutes", {"first_response_minutes": 0}),
    ("next_response_minutes", {"next_response_minutes": -5}),
    ("resolution_minutes", {"resolution_minutes": policies.MAX_MINUTES + 1}),
    ("resolution_minutes", {"first_response_minutes": 600, "resolution_minutes": 599}),
    ("first_response_minutes", {"first_response_minutes": True}),
    ("priority", {"priority": "asap"}),
    ("segment", {"segment": "gold"}),
])
def test_bad_targets_change_nothing(session, admin, field, changes) -> None:
    values = {"priority": "normal", "segment": "regular", "first_response_minutes": 60,
              "next_response_minutes": 60, "resolution_minutes": 600, **changes}
    with pytest.raises(ValidationError) as refused:
        policies.set_sla_target(session, by_agent_id=admin.id, **values)
    assert refused.value.context["field"] == field
    assert rows(session) == (0, 0, 0, 0)


# --- business hours ------------------------------------------------------------------------------
def test_business_hours_setting_changes_the_calendar(session, make, admin) -> None:
    session.info[SCHEDULE_KEY] = ScheduleSettings(timezone="Asia/Shanghai", business_hours=None)
    assert policies.business_hours_of(session).spec is None  # round the clock
    round_the_clock = new_ticket(session, make)
    assert deadline(session, round_the_clock, TimerKind.FIRST_RESPONSE) == NOW + 24 * H
    hours = policies.set_business_hours(session, by_agent_id=admin.id,
                                        spec="  mon-fri   09:00-18:00 ", now=NOW)
    assert (hours.spec, hours.custom, hours.default_spec) == ("mon-fri 09:00-18:00", True, None)
    staffed = new_ticket(session, make)
    # 24 staffed hours from Monday 10:00 at 9 a day: Mon 8h, Tue 9h, Wed 7h -> Wed 16:00
    assert deadline(session, staffed, TimerKind.FIRST_RESPONSE) == NOW + 2 * 24 * H + 6 * H
    [entry] = audits(session)
    assert (entry.action, entry.target_id, entry.details["from"], entry.details["to"]) == (
        policies.BUSINESS_HOURS_CHANGED, "business_hours", None, "mon-fri 09:00-18:00")
    # blank goes back to the deployment's
    policies.set_business_hours(session, by_agent_id=admin.id, spec="", now=NOW)
    assert policies.business_hours_of(session).custom is False
    assert isinstance(sla.SlaConfig.for_session(session).calendar, business_hours.RoundTheClock)
    assert len(audits(session)) == 2 and rows(session)[1] == 0


def test_the_config_is_cached_by_the_spec(session, admin) -> None:
    session.info[SCHEDULE_KEY] = ScheduleSettings(timezone="UTC",
                                                  business_hours="mon-fri 09:00-17:00")
    first = sla.SlaConfig.for_session(session)
    assert sla.SlaConfig.for_session(session) is first
    policies.set_business_hours(session, by_agent_id=admin.id, spec="mon-sun 00:00-24:00")
    assert sla.SlaConfig.for_session(session) is not first


@pytest.mark.parametrize("spec", ["whenever", "mon-fri 18:00-09:00",
                                  "mon 09:00-12:00; mon 11:00-13:00", "funday 09:00-10:00",
                                  "mon-fri 09:00-18:00;" * 20])
def test_bad_business_hours_change_nothing(session, admin, spec) -> None:
    with pytest.raises(ValidationError) as refused:
        policies.set_business_hours(session, by_agent_id=admin.id, spec=spec)
    assert refused.value.context["field"] == "spec"
    assert "mon-fri 09:00-18:00" in refused.value.text("zh")
    assert rows(session) == (0, 0, 0, 0)


# --- canned replies ------------------------------------------------------------------------------
def ticket_in(language: str) -> Ticket:
    return Ticket(language=language)


def test_rows_override_extend_and_hide_the_built_ins(session, admin) -> None:
    policies.save_canned_reply(session, by_agent_id=admin.id, key="greeting",
                               title_zh="问好", title_en="Hi", body_zh="{customer_name}，您好！",
                               body_en="Hi {customer_name}!", now=NOW)
    policies.save_canned_reply(session, by_agent_id=admin.id, key="coupon",
                               title_zh="优惠券", title_en="Coupon", body_zh="送您一张优惠券。",
                               body_en="Here is a coupon.", now=NOW)
    policies.save_canned_reply(session, by_agent_id=admin.id, key="closing",
                               title_zh="结束语", title_en="Closing", body_zh="再见",
                               body_en="Bye", active=False, now=NOW)
    replies = canned_replies.catalogue(session)
    keys = [key for key, _ in canned_replies.options("en", replies)]
    assert keys == ["greeting", "ask_order_number", "parcel_delayed", "refund_approved", "coupon"]
    assert canned_replies.render("greeting", ticket=ticket_in("en"), replies=replies) == "Hi there!"
    assert canned_replies.render("coupon", ticket=ticket_in("zh"), replies=replies) == "送您一张优惠券。"
    with pytest.raises(canned_replies.CannedReplyNotFound):
        canned_replies.render("closing", ticket=ticket_in("en"), replies=replies)
    # without a session, the built-ins as before
    assert "closing" in dict(canned_replies.options("en"))
    created, updated = [e.action for e in audits(session)][1], audits(session)[0].action
    assert (updated, created) == (policies.CANNED_REPLY_UPDATED, policies.CANNED_REPLY_CREATED)
    entry = audits(session)[0]
    assert entry.details["built_in"] is True and set(entry.details["changed"]) == {
        "title_zh", "title_en", "body_zh", "body_en"}
    listed = {e.key: e for e in policies.canned_entries(session)}
    assert (listed["closing"].active, listed["closing"].custom, listed["coupon"].built_in) == (
        False, True, False)


def test_saving_the_same_reply_again_and_deleting(session, admin) -> None:
    values = dict(key="coupon", title_zh="优惠券", title_en="Coupon", body_zh="送您一张优惠券。",
                  body_en="Here is a coupon.")
    policies.save_canned_reply(session, by_agent_id=admin.id, **values)
    policies.save_canned_reply(session, by_agent_id=admin.id, **values)
    assert len(audits(session)) == 1
    policies.delete_canned_reply(session, by_agent_id=admin.id, key="coupon")
    assert "coupon" not in canned_replies.catalogue(session)
    assert audits(session)[-1].action == policies.CANNED_REPLY_DELETED
    with pytest.raises(canned_replies.CannedReplyNotFound):
        policies.delete_canned_reply(session, by_agent_id=admin.id, key="coupon")
    assert len(audits(session)) == 2


@pytest.mark.parametrize("field, changes", [
    ("key", {"key": "Bad Key"}),
    ("title_en", {"title_en": " "}),
    ("body_zh", {"body_zh": "优惠码 {coupon_code}"}),
    ("body_en", {"body_en": "x" * 4001}),
])
def test_bad_canned_replies_change_nothing(session, admin, field, changes) -> None:
    values = {"key": "coupon", "title_zh": "优惠券", "title_en": "Coupon", "body_zh": "送您",
              "body_en": "For you", **changes}
    with pytest.raises(ValidationError) as refused:
        policies.save_canned_reply(session, by_agent_id=admin.id, **values)
    assert refused.value.context["field"] == field
    if field == "body_zh":
        assert "{customer_name}" in refused.value.text("en")
    assert rows(session) == (0, 0, 0, 0)
