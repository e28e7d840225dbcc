"""refund_status and refund_policy against the real test databases, in both languages."""

from __future__ import annotations

import pytest

from actions.refunds import ActionRefundPolicy, ActionRefundStatus
from tests.actions.harness import run, tracker
from tests.actions.test_refunds import SENDER, verified
from ticketing.shop.refunds import flow as refunds
from ticketing.core.models import OrderState


# --- status and policy --------------------------------------------------------------------------
@pytest.mark.parametrize("language, state_word", [("zh", "已退款"), ("en", "refunded")])
def test_refund_status_in_plain_words(session, make, action_backend, language, state_word) -> None:
    customer = verified(session, make, language=language)
    done = make.order(customer=customer, state=OrderState.PAID)
    other = make.order(customer=customer, state=OrderState.DELIVERED)
    refunds.request_refund(session, customer_id=customer.id, order_number=done.number,
                           reason="changed_mind", amount_cents=None, method="original",
                           idempotency_key="k1")
    session.commit()
    everything = run(ActionRefundStatus(), tracker(sender_id=SENDER, slots={"language": language},
                                                   text="refund?", intent="refund_status"))
    assert done.number in everything.text and state_word in everything.text
    assert "¥199.00" in everything.text
    one = run(ActionRefundStatus(), tracker(sender_id=SENDER, slots={"language": language},
                                            text=other.number, intent="refund_status",
                                            entities=[{"entity": "order_id", "value": other.number}]))
    assert other.number in one.text and done.number not in one.text


@pytest.mark.parametrize("language", ["zh", "en"])
def test_refund_policy_general_product_and_order(session, make, action_backend, language) -> None:
    customer = verified(session, make, language=language)
    shirt = make.product(name_zh="定制印花T恤", name_en="Custom Print T-shirt",
                         no_reason_return_7d=False)
    order = make.order(customer=customer, state=OrderState.DELIVERED, product=shirt)
    session.commit()
    general = run(ActionRefundPolicy(), tracker(slots={"language": language},
                                                text="policy", intent="refund_policy"))
    assert ("7 天" in general.text) if language == "zh" else ("7 days" in general.text)
    product = run(ActionRefundPolicy(), tracker(
        slots={"language": language}, text="T恤能退吗", intent="refund_policy",
        entities=[{"entity": "product", "value": "定制印花T恤"}]))
    assert ("不支持 7 天无理由" in product.text) if language == "zh" else ("excluded" in product.text)
    mine = run(ActionRefundPolicy(), tracker(
        sender_id=SENDER, slots={"language": language}, text=order.number,
        intent="refund_policy", entities=[{"entity": "order_id", "value": order.number}]))
    assert order.number in mine.text
    assert ("售后工单" in mine.text) if language == "zh" else ("after-sales ticket" in mine.text)
