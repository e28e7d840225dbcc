"""Rasa's HTTP API runs with a token that only Kefu's processes hold.

`make run` starts Rasa with ``--auth-token`` (kept out of its command line), bound to 127.0.0.1
unless told otherwise, and never beyond it without a token someone chose; every client call
carries the token, and no error message shows it.
"""

from __future__ import annotations

import stat
from pathlib import Path

import httpx
import pytest

from bot import rasa_server
from bot.gateway.settings import GatewaySettings
from bot.rasa_client import RasaClient
from bot.rasa_config import (AssistantSettings, RasaAccess, client_token, is_loopback,
                             server_token)
from scripts import run_stack
from ticketing.core.errors import ConfigurationError

URL = "http://127.0.0.1:5005"


def _recording_client(seen: list[httpx.Request], status: int = 200) -> RasaClient:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = {"messages": []} if request.url.path.endswith("trigger_intent") else []
        return httpx.Response(status, json=body if status == 200 else {"status": "failure"})

    return RasaClient(URL, token="s3cret/+=", transport=httpx.MockTransport(handler))


# -- clients -------------------------------------------------------------------------------


def test_every_call_carries_the_token() -> None:
    seen: list[httpx.Request] = []
    with _recording_client(seen) as client:
        client.send("widget:v-1", "hi")
        client.resume("widget:v-1")
        client.trigger("widget:v-1", "EXTERNAL_csat_request")
        client.tracker("widget:v-1")
    assert [r.url.params.get("token") for r in seen] == ["s3cret/+="] * 4
    assert seen[2].url.params.get("output_channel") == "collector"  # merged, not replaced


def test_errors_do_not_show_the_token() -> None:
    seen: list[httpx.Request] = []
    with _recording_client(seen, status=401) as client, \
            pytest.raises(httpx.HTTPStatusError) as caught:
        client.resume("widget:v-1")
    assert caught.value.response.status_code == 401
    assert "s3cret" not in str(caught.value) and "s3cret" not in repr(caught.value)
    assert "/conversations/widget:v-1/tracker/events" in str(caught.value)


# -- where clients find Rasa ---------------------------------------------------------------


def test_urls_from_the_environment() -> None:
    assert RasaAccess.from_environ({}).urls == (URL,)
    assert RasaAccess.from_environ({"KEFU_RASA_PORT": "5999"}).urls == ("http://127.0.0.1:5999",)
    assert RasaAccess.from_environ({"KEFU_RASA_URL": "http://localhost:6000/"}).urls == (
        "http://localhost:6000",)
    many = RasaAccess.from_environ({
        "KEFU_RASA_URLS": " http://127.0.0.1:5005, http://127.0.0.1:5006/,,http://127.0.0.1:5005",
        "KEFU_RASA_URL": "http://127.0.0.1:7000"})  # the list wins
    assert many.urls == (URL, "http://127.0.0.1:5006") and many.token is None


def test_gateway_settings_carry_the_servers_and_the_token() -> None:
    settings = GatewaySettings.from_environ({
        "KEFU_RASA_URLS": "http://10.0.0.5:5005,http://10.0.0.6:5005", "KEFU_RASA_TOKEN": "t"})
    assert settings.rasa_urls == ("http://10.0.0.5:5005", "http://10.0.0.6:5005")
    assert settings.rasa_url == "http://10.0.0.5:5005" and settings.rasa_token == "t"


@pytest.mark.parametrize("env", [
    {"KEFU_RASA_URLS": "http://127.0.0.1:5005,ftp://x"},
    {"KEFU_RASA_URL": "not a url"},
    {"KEFU_RASA_URLS": "http://127.0.0.1:5005,http://rasa-2:5005"},  # beyond 127.0.0.1, no token
    {"KEFU_RASA_URL": "http://192.168.1.20:5005"},
])
def test_bad_or_exposed_urls_are_configuration_errors(env: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError):
        RasaAccess.from_environ(env)


def test_loopback() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "10.0.0.5", "rasa", "::"))


# -- the token -----------------------------------------------------------------------------


def test_development_token_is_generated_once_and_shared(tmp_path: Path) -> None:
    env = {"KEFU_VAR_DIR": str(tmp_path)}
    token = server_token(AssistantSettings.from_environ(env))
    assert len(token) >= 40 and token == server_token(AssistantSettings.from_environ(env))
    assert client_token(None, env) == token  # the gateway sends what Rasa started with
    assert stat.S_IMODE((tmp_path / "rasa.token").stat().st_mode) == 0o600
    assert client_token("chosen", env) == "chosen"


def test_rasa_beyond_loopback_needs_a_chosen_token(tmp_path: Path) -> None:
    env = {"KEFU_VAR_DIR": str(tmp_path), "KEFU_RASA_HOST": "0.0.0.0"}
    with pytest.raises(ConfigurationError, match="KEFU_RASA_TOKEN"):
        server_token(AssistantSettings.from_environ(env))
    assert not (tmp_path / "rasa.token").exists()
    env["KEFU_RASA_TOKEN"] = "chosen"
    assert server_token(AssistantSettings.from_environ(env)) == "chosen"


# -- how `make run` starts Rasa ------------------------------------------------------------


def _settings(tmp_path: Path, **env: str) -> AssistantSettings:
    models = tmp_path / "models"
    models.mkdir(exist_ok=True)
    (models / "kefu.tar.gz").write_bytes(b"")
    return AssistantSettings.from_environ({"KEFU_VAR_DIR": str(tmp_path / "var"),
                                           "KEFU_MODELS_DIR": str(models), **env})


def test_make_run_starts_rasa_on_loopback_with_the_token_out_of_its_command_line(
        tmp_path: Path) -> None:
    service = run_stack.rasa_service(_settings(tmp_path, KEFU_RASA_PORT="5077"))
    token = (tmp_path / "var" / "rasa.token").read_text().strip()
    argv = service.argv
    assert argv[1:5] == ["-m", "bot.rasa_server", "run", "--model"]
    assert argv[argv.index("--interface") + 1] == "127.0.0.1"
    assert "--enable-api" in argv and not any(token in part for part in argv)
    assert service.env is not None and service.env["KEFU_RASA_TOKEN"] == token
    assert service.ready_url is not None and "token=" in service.ready_url
    assert run_stack._shown(service.ready_url) == "http://127.0.0.1:5077/status"
    assert service.where == "http://127.0.0.1:5077/webhooks/rest/webhook"


def test_make_run_refuses_an_exposed_rasa_without_a_chosen_token(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        run_stack.rasa_service(_settings(tmp_path, KEFU_RASA_HOST="0.0.0.0"))
    service = run_stack.rasa_service(_settings(tmp_path, KEFU_RASA_HOST="0.0.0.0",
                                               KEFU_RASA_TOKEN="chosen"))
    assert service.argv[service.argv.index("--interface") + 1] == "0.0.0.0"
    assert service.env is not None and service.env["KEFU_RASA_TOKEN"] == "chosen"


def test_the_launcher_hands_the_token_to_rasa_and_hides_it_from_rasas_children() -> None:
    """bot/rasa_server.py moves the token from the environment to Rasa's own arguments."""
    environ = {"KEFU_RASA_TOKEN": "tok", "OTHER": "x"}
    argv = rasa_server.argv_with_token(["run", "--enable-api"], environ)
    assert argv == ["run", "--enable-api", "--auth-token", "tok"]
    assert environ == {"OTHER": "x"}  # Rasa's children (and /proc/<pid>/environ) never see it
    assert rasa_server.argv_with_token(["run"], {}) == ["run"]
