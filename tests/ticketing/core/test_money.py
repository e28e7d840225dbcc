import pytest

from ticketing.core.errors import InvalidAmount
from ticketing.core.money import format_amount, parse_amount


@pytest.mark.parametrize("raw,cents", [("¥12.30", 1230), ("12.3元", 1230), (12, 1200), ("1,299", 129900)])
def test_parse(raw, cents) -> None:
    assert parse_amount(raw) == cents


@pytest.mark.parametrize("raw", ["-5", "0", "abc", "1.234", "NaN", True])
def test_parse_rejects(raw) -> None:
    with pytest.raises(InvalidAmount):
        parse_amount(raw)


def test_format() -> None:
    assert format_amount(1230) == "¥12.30"
    assert format_amount(5) == "¥0.05"
