import base64
from pathlib import Path

import pytest

from ticketing.core.errors import ConfigurationError
from ticketing.core.settings import load_settings


def test_defaults_use_sqlite_under_var_and_generate_a_dev_key(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("KEFU_VAR_DIR", str(tmp_path))
    s = load_settings({"KEFU_VAR_DIR": str(tmp_path)})
    assert s.database_url == f"sqlite:///{tmp_path / 'kefu.db'}"
    assert s.redis_url is None
    assert len(s.pii_key) == 32
    key_file = tmp_path / "pii.key"
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert load_settings({"KEFU_VAR_DIR": str(tmp_path)}).pii_key == s.pii_key  # stable across runs


def test_environment_overrides(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("KEFU_VAR_DIR", str(tmp_path))
    key = base64.b64encode(b"z" * 32).decode()
    s = load_settings({
        "KEFU_VAR_DIR": str(tmp_path),
        "KEFU_DATABASE_URL": "postgresql+psycopg://x@h/db",
        "KEFU_REDIS_URL": "redis://h:6379/1",
        "KEFU_PII_KEY": key,
        "KEFU_BUSINESS_HOURS": "mon-fri 09:00-18:00",
    })
    assert s.database_url.startswith("postgresql")
    assert s.redis_url == "redis://h:6379/1"
    assert s.pii_key == b"z" * 32
    assert s.business_hours == "mon-fri 09:00-18:00"
    assert not (tmp_path / "pii.key").exists()  # no dev key written when one is configured


@pytest.mark.parametrize("bad", ["not base64!!", base64.b64encode(b"short").decode()])
def test_bad_key_is_a_clear_error(bad: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("KEFU_VAR_DIR", str(tmp_path))
    with pytest.raises(ConfigurationError):
        load_settings({"KEFU_VAR_DIR": str(tmp_path), "KEFU_PII_KEY": bad})


def test_schedule_settings_need_no_pii_key_and_feed_the_services(engine, monkeypatch) -> None:
    from datetime import timedelta

    from ticketing.core.db import make_session_factory
    from ticketing.core.settings import load_schedule
    from ticketing.desk import lifecycle, sla

    env = {"KEFU_TIMEZONE": "Europe/Berlin", "KEFU_FOLLOWUP_AFTER_HOURS": "12",
           "KEFU_REOPEN_WINDOW_DAYS": "3", "KEFU_PII_KEY": "not base64!!"}
    schedule = load_schedule(env)
    assert (schedule.timezone, schedule.followup_after_hours, schedule.reopen_window_days) == (
        "Europe/Berlin", 12.0, 3.0)
    # loaded once at the edge, carried to the services by their sessions
    with make_session_factory(engine, schedule=schedule)() as session:
        assert sla.SlaConfig.for_session(session).followup_after == timedelta(hours=12)
        assert lifecycle.reopen_window(session) == timedelta(days=3)
    # services never read the environment: a session without a schedule has the defaults
    monkeypatch.setenv("KEFU_REOPEN_WINDOW_DAYS", "3")
    with make_session_factory(engine)() as session:
        assert lifecycle.reopen_window(session) == timedelta(days=7)


@pytest.mark.parametrize(("raw", "on"), [(None, False), ("on", True), ("off", False), ("0", False),
                                         ("false", False), ("no", False), ("yes", True)])
def test_demo_page_switch_is_read_with_the_other_settings(tmp_path, raw, on) -> None:
    env = {"KEFU_VAR_DIR": str(tmp_path)}
    if raw is not None:
        env["KEFU_DEMO_PAGE"] = raw
    assert load_settings(env).demo_page is on
