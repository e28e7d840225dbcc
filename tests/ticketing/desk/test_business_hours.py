from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from ticketing.desk import business_hours
from ticketing.desk.business_hours import BusinessCalendar, RoundTheClock
from ticketing.core.errors import ConfigurationError

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")


def local(tz: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=tz).astimezone(timezone.utc)


@pytest.fixture
def shop() -> BusinessCalendar:
    return business_hours.parse("mon-sat 09:00-21:00", "Asia/Shanghai")


def test_round_the_clock_counts_every_second() -> None:
    cal = business_hours.calendar_for(None)
    start = datetime(2026, 3, 6, 23, 0, tzinfo=timezone.utc)
    assert isinstance(cal, RoundTheClock)
    assert cal.add_business_seconds(start, 3600) == start + timedelta(hours=1)
    assert cal.business_seconds_between(start, start + timedelta(days=2)) == 2 * 86400
    assert cal.business_seconds_between(start, start - timedelta(hours=1)) == 0


def test_deadline_skips_the_night(shop: BusinessCalendar) -> None:
    friday_evening = local(SHANGHAI, 2026, 3, 6, 20, 0)  # a Friday, one hour before closing
    assert shop.add_business_seconds(friday_evening, 2 * 3600) == local(SHANGHAI, 2026, 3, 7, 10, 0)


def test_deadline_skips_sunday(shop: BusinessCalendar) -> None:
    saturday_evening = local(SHANGHAI, 2026, 3, 7, 20, 0)
    assert shop.add_business_seconds(saturday_evening, 2 * 3600) == local(SHANGHAI, 2026, 3, 9, 10, 0)


def test_zero_seconds_from_a_closed_moment_is_the_next_opening(shop: BusinessCalendar) -> None:
    sunday = local(SHANGHAI, 2026, 3, 8, 12, 0)
    assert shop.add_business_seconds(sunday, 0) == local(SHANGHAI, 2026, 3, 9, 9, 0)
    open_now = local(SHANGHAI, 2026, 3, 9, 12, 0)
    assert shop.add_business_seconds(open_now, 0) == open_now


def test_between_counts_only_opening_hours(shop: BusinessCalendar) -> None:
    # Saturday 20:00 -> Monday 10:00 = 1h Saturday + 0 Sunday + 1h Monday
    a, b = local(SHANGHAI, 2026, 3, 7, 20, 0), local(SHANGHAI, 2026, 3, 9, 10, 0)
    assert shop.business_seconds_between(a, b) == 2 * 3600
    assert shop.business_seconds_between(b, a) == 0
    full_week = shop.business_seconds_between(local(SHANGHAI, 2026, 3, 9, 0, 0),
                                              local(SHANGHAI, 2026, 3, 16, 0, 0))
    assert full_week == 6 * 12 * 3600


@pytest.mark.parametrize("seconds", [0, 1, 3599.5, 12 * 3600, 24 * 3600, 72 * 3600, 200 * 3600])
def test_add_and_between_agree(shop: BusinessCalendar, seconds: float) -> None:
    start = local(SHANGHAI, 2026, 3, 6, 15, 17)
    end = shop.add_business_seconds(start, seconds)
    assert shop.business_seconds_between(start, end) == pytest.approx(seconds)


def test_several_rules_and_wrapping_day_ranges() -> None:
    cal = business_hours.parse("mon-fri 09:00-18:00; sat,sun 10:00-12:00;", "Asia/Shanghai")
    assert cal.windows[5] == [(600, 720)] and cal.windows[6] == [(600, 720)]
    wrap = business_hours.parse("sat-mon 00:00-24:00", "UTC")
    assert sorted(wrap.windows) == [0, 5, 6]
    saturday = datetime(2026, 3, 7, 0, 0, tzinfo=timezone.utc)
    assert wrap.add_business_seconds(saturday, 3 * 86400) == datetime(2026, 3, 10, tzinfo=timezone.utc)


def test_daylight_saving_change_keeps_local_opening_time() -> None:
    cal = business_hours.parse("mon-fri 09:00-18:00", "Europe/Berlin")
    friday = local(BERLIN, 2026, 3, 27, 17, 0)  # CET (UTC+1); clocks go forward on Sunday 29th
    deadline = cal.add_business_seconds(friday, 2 * 3600)
    assert deadline == local(BERLIN, 2026, 3, 30, 10, 0)
    assert deadline.hour == 8  # CEST is UTC+2


@pytest.mark.parametrize("spec, tz", [
    ("funday 09:00-10:00", "UTC"),
    ("mon 10:00-09:00", "UTC"),
    ("mon 09:00-25:00", "UTC"),
    ("mon 9-17", "UTC"),
    ("mon 09:00-12:00; mon 11:00-13:00", "UTC"),
    ("mon-fri 09:00-18:00", "Mars/Olympus"),
    (";", "UTC"),
])
def test_malformed_calendars_are_configuration_errors(spec: str, tz: str) -> None:
    with pytest.raises(ConfigurationError):
        business_hours.parse(spec, tz)
