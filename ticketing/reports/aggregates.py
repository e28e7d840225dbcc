"""What the metric queries return: counts, satisfaction and conversations per group, and the
median and 90th percentile of durations (linear interpolation between ranks, as PostgreSQL's
``percentile_cont``). A rate with nothing to divide is None."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

SLA_TARGETS = ("first_response", "next_response", "resolution")
SATISFIED = (4, 5)


@dataclass(frozen=True)
class Distribution:
    n: int
    median: float | None
    p90: float | None


@dataclass
class TicketStats:
    """Ticket counts and durations of one group (a period, an agent, a day...)."""

    tickets: int = 0
    escalated: int = 0
    solved: int = 0
    reopened: int = 0
    handed_off: int = 0
    unanswered: int = 0
    sla: dict[str, list[int]] = field(
        default_factory=lambda: {t: [0, 0] for t in SLA_TARGETS})  # target -> [met, breached]
    durations: dict[str, Distribution] = field(default_factory=dict)

    def sla_pct(self, target: str) -> float | None:
        met, breached = self.sla[target]
        return _pct(met, met + breached)

    def sla_n(self, target: str) -> int:
        return sum(self.sla[target])

    @property
    def reopen_pct(self) -> float | None:
        return _pct(self.reopened, self.solved)

    @property
    def escalation_pct(self) -> float | None:
        return _pct(self.escalated, self.tickets)

    def duration(self, name: str) -> Distribution:
        return self.durations.get(name, Distribution(0, None, None))


@dataclass
class CsatStats:
    sent: int = 0
    distribution: dict[int, int] = field(default_factory=lambda: dict.fromkeys(range(1, 6), 0))

    @property
    def responses(self) -> int:
        return sum(self.distribution.values())

    @property
    def csat_pct(self) -> float | None:
        return _pct(sum(self.distribution[s] for s in SATISFIED), self.responses)

    @property
    def average(self) -> float | None:
        n = self.responses
        return None if n == 0 else sum(s * c for s, c in self.distribution.items()) / n

    @property
    def response_rate_pct(self) -> float | None:
        return _pct(self.responses, self.sent)

    def add(self, score: int | None, count: int) -> None:
        self.sent += count
        if score is not None and 1 <= score <= 5:
            self.distribution[int(score)] += count


@dataclass
class ConversationStats:
    conversations: int = 0
    contained: int = 0
    handed_off: int = 0

    @property
    def containment_pct(self) -> float | None:
        return _pct(self.contained, self.conversations)

    @property
    def handoff_pct(self) -> float | None:
        return _pct(self.handed_off, self.conversations)


def distribution(values: Sequence[float]) -> Distribution:
    """n, median and p90 by linear interpolation between ranks (``percentile_cont``)."""
    ordered = sorted(values)
    return Distribution(len(ordered), percentile(ordered, 0.5), percentile(ordered, 0.9))


def percentile(ordered: Sequence[float], fraction: float) -> float | None:
    if not ordered:
        return None
    position = fraction * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def merge(into: TicketStats, one: TicketStats) -> None:
    """Add ``one`` group's counts to ``into`` (weeks are summed from days)."""
    into.tickets += one.tickets
    into.escalated += one.escalated
    into.solved += one.solved
    into.reopened += one.reopened
    into.handed_off += one.handed_off
    into.unanswered += one.unanswered
    for target in SLA_TARGETS:
        into.sla[target] = [a + b for a, b in zip(into.sla[target], one.sla[target])]


def _pct(part: int, whole: int) -> float | None:
    return None if whole == 0 else 100.0 * part / whole
