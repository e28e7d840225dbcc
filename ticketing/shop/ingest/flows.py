"""Which state changes the shop may report (rules §ORD-1, §REF-1 as Kefu stores them).

A record moves forward along its main line, possibly skipping steps (a shop may report only
every few hours); it never goes back. A side end (an order's ``cancelled``, a refund's
``rejected``) is reached only from the states that allow it, and nothing leaves an end.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

from ticketing.core.errors import IllegalTransition, StateGoesBackwards
from ticketing.core.models import OrderState, RefundState


@dataclass(frozen=True)
class Flow:
    line: Sequence[Enum]
    side_ends: Mapping[Enum, frozenset[Enum]]  # side end → the states it may be reached from

    def check(self, old: Enum, new: Enum) -> None:
        """Raise before anything is written when ``old`` → ``new`` is not allowed."""
        if old == new:
            return
        if old in self.side_ends or old == self.line[-1]:
            raise StateGoesBackwards(f"{old.value} is final; it cannot become {new.value}",
                                     field="state")
        if new in self.side_ends:
            if old not in self.side_ends[new]:
                raise IllegalTransition(f"{old.value} cannot become {new.value}", field="state")
            return
        if self.line.index(new) < self.line.index(old):
            raise StateGoesBackwards(f"{old.value} cannot go back to {new.value}",
                                     field="state")


ORDER_FLOW = Flow(
    line=(OrderState.PENDING_PAYMENT, OrderState.PAID, OrderState.SHIPPED, OrderState.DELIVERED,
          OrderState.COMPLETED),
    # a parcel intercepted on the way may still be cancelled; a delivered order is returned
    side_ends={OrderState.CANCELLED: frozenset({OrderState.PENDING_PAYMENT, OrderState.PAID,
                                                 OrderState.SHIPPED})},
)

REFUND_FLOW = Flow(
    line=(RefundState.APPLIED, RefundState.UNDER_REVIEW, RefundState.PROCESSING,
          RefundState.DONE),
    side_ends={RefundState.REJECTED: frozenset({RefundState.APPLIED, RefundState.UNDER_REVIEW,
                                                 RefundState.PROCESSING})},
)
