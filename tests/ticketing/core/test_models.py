from datetime import timezone

from ticketing.core.models import Customer, OrderState


def test_timestamps_are_aware_utc_on_every_backend(make, session) -> None:
    c = make.customer()
    o = make.order(customer=c, state=OrderState.SHIPPED)
    session.commit()
    session.expire_all()
    again = session.get(type(o), o.id)
    assert again.created_at.tzinfo is not None
    assert again.created_at.utcoffset() == timezone.utc.utcoffset(None)
    assert session.get(Customer, c.id).phone_enc != b""
