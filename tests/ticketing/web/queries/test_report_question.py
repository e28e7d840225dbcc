"""The dashboard's drill links: built from parts encoded once, they must say exactly what the
question itself says (the list behind a number has that number's tickets)."""

from __future__ import annotations

from datetime import date
from urllib.parse import parse_qsl, urlsplit

import pytest

from ticketing.core.errors import ValidationError
from ticketing.reports.scope import Filters, Period
from ticketing.web.queries.report_question import Question

ZONE = "Asia/Shanghai"
MONTH = Period.of_days(date(2026, 11, 2), date(2026, 12, 1), ZONE)
DAY = Period.of_days(date(2026, 11, 5), date(2026, 11, 5), ZONE)
FILTERS = [Filters(), Filters(agents=(3, None)),
           Filters(teams=(1, 2), categories=("refund",), channels=("web",)),
           Filters(segments=("vip",), priorities=("high", "low"), tiers=(2,))]
NARROWS = [None, ("agent", 5), ("agent", None), ("team", "7"), ("category", "order"),
           ("tier", 3), ("priority", "urgent"), ("segment", "a b&c")]


def _slow_drill(question: Question, metric: str, period: Period | None,
                narrow: tuple[str, object] | None) -> str:
    """The link as the question's own parts say it: a new question, then its link."""
    if period is not None:
        question = Question(period, question.filters, question.dimension, question.grain)
    if narrow is not None:
        question = Question(question.period, question.filters.narrowed(*narrow),
                            question.dimension, question.grain)
    return question.link("/reports/tickets", metric=metric)


@pytest.mark.parametrize("filters", FILTERS)
@pytest.mark.parametrize("narrow", NARROWS)
@pytest.mark.parametrize("period", [None, DAY])
def test_a_drill_link_says_what_its_question_says(
        filters: Filters, narrow: tuple[str, object] | None, period: Period | None) -> None:
    question = Question(MONTH, filters)
    drills = question.drills(period=period, narrow=narrow)
    for metric in ("tickets", "csat_low", "sla_first_response_late"):
        assert drills(metric) == _slow_drill(question, metric, period, narrow)


def test_a_narrowed_row_replaces_its_filter_and_keeps_the_others() -> None:
    question = Question(MONTH, Filters(agents=(3, 4), channels=("web",)))
    link = question.drill("tickets", narrow=("agent", 9))
    pairs = parse_qsl(urlsplit(link).query, keep_blank_values=True)
    assert pairs == [("since", "2026-11-02"), ("until", "2026-12-01"), ("agent", "9"),
                     ("channel", "web"), ("metric", "tickets")]
    unassigned = parse_qsl(urlsplit(question.drill("tickets", narrow=("agent", None))).query,
                           keep_blank_values=True)
    assert ("agent", "") in unassigned and ("agent", "3") not in unassigned


def test_an_unknown_dimension_is_refused() -> None:
    with pytest.raises(ValidationError):
        Question(MONTH, Filters()).drills(narrow=("colour", "red"))
