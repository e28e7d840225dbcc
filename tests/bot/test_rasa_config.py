"""Rasa's endpoints follow the environment: SQL tracker store by default, Redis when set."""

from __future__ import annotations

import json
from pathlib import Path

from bot.rasa_config import AssistantSettings, endpoints, write_endpoints


def test_default_is_a_sqlite_tracker_store_under_var(tmp_path: Path) -> None:
    settings = AssistantSettings.from_environ({"KEFU_VAR_DIR": str(tmp_path)})
    config = endpoints(settings)
    assert config["tracker_store"] == {"type": "SQL", "dialect": "sqlite",
                                       "db": str(tmp_path / "rasa" / "tracker.db")}
    assert "lock_store" not in config
    assert config["action_endpoint"] == {"url": "http://127.0.0.1:5055/webhook"}


def test_redis_url_gives_redis_tracker_and_lock_store() -> None:
    settings = AssistantSettings.from_environ(
        {"KEFU_REDIS_URL": "redis://:s3cret@cache.local:6380/4", "KEFU_ACTION_PORT": "6000"})
    config = endpoints(settings)
    assert config["tracker_store"] == {
        "type": "bot.rasa_tracker_store.AppendingRedisTrackerStore", "url": "cache.local",
        "port": 6380, "db": 4, "key_prefix": "kefutracker", "password": "s3cret"}
    assert config["lock_store"]["type"] == "bot.rasa_lock_store.RedisMutexLockStore"
    assert config["lock_store"]["db"] == 4 and config["lock_store"]["url"] == "cache.local"
    assert config["action_endpoint"]["url"] == "http://127.0.0.1:6000/webhook"


def test_written_file_is_yaml_rasa_can_read(tmp_path: Path) -> None:
    path = write_endpoints(AssistantSettings.from_environ({"KEFU_VAR_DIR": str(tmp_path)}))
    assert path == tmp_path / "rasa" / "endpoints.yml"
    assert json.loads(path.read_text())["tracker_store"]["type"] == "SQL"  # JSON is YAML
