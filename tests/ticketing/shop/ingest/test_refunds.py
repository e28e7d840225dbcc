"""Refunds from the shop (rules §REF-1, §REF-2 as ingested): states move forward, money never
exceeds what was paid, one refund under way per order, and "done" is told once."""

from __future__ import annotations

from sqlalchemy import select

from tests.ticketing.shop.ingest.shop_rows import at, one, outbox, refund, run, seed, statuses
from ticketing.core.models import RefundKind, RefundRequest, RefundState
from ticketing.shop.refunds import flow


def _refund(session, external_id: str = "R-1") -> RefundRequest:
    return session.scalars(select(RefundRequest)
                           .where(RefundRequest.external_id == external_id)).one()


def test_review_then_done_is_told_once_with_the_refund_words(session, cipher) -> None:
    seed(session, cipher, order_state="delivered", delivered_at=at(20))
    assert one(session, cipher, "refunds", refund()).status.value == "created"
    stored = _refund(session)
    assert (stored.kind, stored.state, stored.idempotency_key) == \
        (RefundKind.RETURN_AND_REFUND, RefundState.UNDER_REVIEW, "shop:R-1")
    assert outbox(session, "refund_update") == []  # under review: the shop's own business
    done = refund(state="done", updated_at=at(1))
    assert one(session, cipher, "refunds", done).status.value == "updated"
    assert one(session, cipher, "refunds", done).status.value == "unchanged"
    [message] = outbox(session, "refund_update")
    assert message.language == "en"
    assert message.text == "¥199.00 has been refunded to your original payment method."
    # the bot explains it like any other refund of the customer
    [status] = flow.status(session, customer_id=stored.customer_id)
    assert (status.refund_id, status.state) == (stored.id, RefundState.DONE)


def test_states_and_versions(session, cipher) -> None:
    seed(session, cipher)
    one(session, cipher, "refunds", refund(state="done", updated_at=at(2)))
    report = run(session, cipher, "refunds",
                 refund(state="processing", updated_at=at(1)),
                 refund(state="under_review", amount_cents=1, updated_at=at(3)),
                 refund(state="lost", updated_at=at(1)))
    assert statuses(report) == ["state_backwards", "stale", "unknown_state"]
    assert _refund(session).state is RefundState.DONE
    assert _refund(session).kind is RefundKind.CANCEL_AND_REFUND  # paid, never shipped


def test_money_and_one_refund_under_way(session, cipher) -> None:
    seed(session, cipher)  # paid 398.00
    one(session, cipher, "refunds", refund(state="done", amount_cents=30000))
    report = run(session, cipher, "refunds",
                 refund(external_id="R-2", state="done", amount_cents=20000),
                 refund(external_id="R-3", amount_cents=50000),
                 refund(external_id="R-4", amount_cents=0),
                 refund(external_id="R-5", state="processing", amount_cents=100),
                 refund(external_id="R-6", state="under_review", amount_cents=100),
                 refund(external_id="R-7", state="rejected", amount_cents=100),
                 refund(external_id="R-8", reason="other", amount_cents=100),
                 refund(external_id="R-9", order="2026113099999999"))
    assert statuses(report) == ["refunded_exceeds_paid", "refunded_exceeds_paid",
                                "invalid_amount", "created", "refund_in_progress",
                                "invalid_input", "invalid_input", "order_not_found"]
    assert [r.error.field for r in report.results if r.error][4:6] == \
        ["rejection_reason", "reason_text"]
