"""Kefu's ``rasa`` command: the stock CLI, minus a cost no turn should pay, plus its token.

Runs inside ``.venv-rasa`` (``python -m bot.rasa_server run ...`` takes every argument of
``rasa``). These happen before Rasa's own ``main``:

- **Action responses are validated with one compiled validator.** Rasa 3.6 checks every
  action server response with ``jsonschema.validate(result, spec)``, which re-checks the
  (large, event-by-event) schema against its meta-schema and builds a new validator on every
  call: about 29 ms of CPU per custom action on a 2-core machine, against 1.4 ms for the same
  check with a validator built once. Kefu's turns run one or two custom actions, so this was
  the biggest single piece of a turn's CPU (docs/performance.md). The schema, the check and the
  error Rasa raises are unchanged; only the validator is reused.
- **The SQLite tracker store (``make run`` without Redis) keeps its connections and runs in
  WAL mode with ``synchronous=NORMAL``.** Rasa opens it with SQLAlchemy 1.4's defaults for a
  SQLite file: a new connection for every read and write (``NullPool``) and SQLite's rollback
  journal with a full sync on every commit, so every turn's save waited for several disk
  flushes and 50 conversations queued behind one another's. A pool of kept connections (WAL
  would otherwise be checkpointed and deleted whenever the last one closed) and WAL keep the
  file consistent after any crash; what a power cut may cost is the last turns' events, which
  the gateway's own database (the system of record) still holds.
- **Calls to the action server reuse their connections.** Rasa 3.6 opens a new aiohttp
  session, and so a new TCP connection, for every action call (``EndpointConfig.request``),
  which costs both Rasa and the action server a connection set-up per call. One session per
  event loop and endpoint settings is kept instead; its idle connections are dropped after
  :data:`ACTION_KEEPALIVE` seconds, before the action server's own keep-alive (Sanic: 5 s)
  closes them under a request. A killed action server fails the call either way (a refused
  connection or a dropped one), and the gateway answers with an apology and a ticket; but a
  call whose connection is refused (nothing was sent: the action server is starting again
  after a crash) is tried again for up to :data:`ACTION_CONNECT_RETRY` seconds, so only the
  turns that were inside the dead server pay for it.
- **A serving Rasa runs TensorFlow's kernels on the thread that asks** (one inter-op and one
  intra-op thread, unless the environment sets ``TF_INTER_OP_PARALLELISM_THREADS`` /
  ``TF_INTRA_OP_PARALLELISM_THREADS``): a turn's DIET call is a few small matrix products,
  and TensorFlow's default pools (a thread per core each) handed every op to another thread
  and back, CPU spent on waking threads rather than on the model, on cores the gateway and
  the action server need (docs/performance.md). Training keeps the defaults.
- **A serving RulePolicy tests only the rules that can match** (``bot/rasa_rules.py``: its
  rules indexed by the previous action and intent of their last state; the same rules found,
  ~1.1 ms of CPU a turn fewer), for ``rasa run`` only.
- **A serving Rasa runs its graphs in a fixed order and calls DIET's compiled function
  directly** (``bot/rasa_inference.py``: no dask scheduling per prediction, no re-checking
  of DIET's inputs against a signature that does not change), and parses a line in each
  language before it listens (the first parse's ~0.5 s of tracing falls on no customer), for
  ``rasa run`` only.
- **A serving Rasa walks a conversation's history once** (``bot/rasa_states.py``: the
  policies' asks for the states of the history resume the conversation's last walk instead
  of replaying every event again; the same states, ~0.9 ms of CPU a turn fewer in a
  twelve-turn conversation), for ``rasa run`` only.
- **The auth token comes from the environment** (``KEFU_RASA_TOKEN``, removed from it), never
  the command line that every local user can read with ``ps``; and it guards the REST
  webhook as well as Rasa's API (Rasa's token covers the API only, and the webhook speaks as
  any sender it is given).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from functools import lru_cache
from typing import Any

TOKEN_VARIABLE = "KEFU_RASA_TOKEN"
SERVING_TF_THREADS = {"TF_INTER_OP_PARALLELISM_THREADS": "1",
                      "TF_INTRA_OP_PARALLELISM_THREADS": "1"}  # read by Rasa's main
ACTION_KEEPALIVE = 2.0  # seconds an idle action-server connection is kept
ACTION_CONNECT_RETRY = 6.0  # seconds a refused action-server connection is tried again
_SESSIONS: dict[tuple[int, Any], Any] = {}  # (event loop, endpoint settings) -> ClientSession


@lru_cache(maxsize=1)
def _action_response_validator() -> Any:
    from jsonschema import validators
    from rasa.core.actions.action import RemoteAction

    schema = RemoteAction.action_response_format_spec()
    cls = validators.validator_for(schema)
    cls.check_schema(schema)  # what jsonschema.validate does first, once
    return cls(schema)


def _validate_action_result(self: Any, result: dict[str, Any]) -> bool:
    """``RemoteAction._validate_action_result`` with the validator built once."""
    from jsonschema import ValidationError, exceptions
    from rasa.shared.constants import DOCS_BASE_URL

    error = exceptions.best_match(_action_response_validator().iter_errors(result))
    if error is None:
        return True
    assert isinstance(error, ValidationError)
    error.message += (
        ". Failed to validate Action server response from API, make sure your response from "
        f"the Action endpoint is valid. For more information about the format visit "
        f"{DOCS_BASE_URL}/custom-actions")
    raise error


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()


def _with_kept_sqlite_connections(original: Callable[[Any], dict[str, Any]]
                                  ) -> Callable[[Any], dict[str, Any]]:
    """Rasa's ``create_engine_kwargs`` plus a connection pool for a SQLite file."""
    def create_engine_kwargs(url: Any) -> dict[str, Any]:
        from sqlalchemy.pool import QueuePool

        kwargs = dict(original(url))
        if str(url).startswith("sqlite") and ":memory:" not in str(url):
            kwargs.setdefault("poolclass", QueuePool)
            connect_args = dict(kwargs.get("connect_args") or {})
            connect_args.setdefault("check_same_thread", False)  # the pool hands one out at once
            kwargs["connect_args"] = connect_args
        return kwargs

    create_engine_kwargs.kefu_pooled = True  # type: ignore[attr-defined]
    return create_engine_kwargs


class _KeptSession:
    """``async with`` over a shared ``aiohttp.ClientSession`` that is not closed after it."""

    def __init__(self, session: Any) -> None:
        self.session = session

    async def __aenter__(self) -> Any:
        return self.session

    async def __aexit__(self, *_exc: object) -> None:
        return None


def _kept_session(self: Any) -> _KeptSession:
    """``EndpointConfig.session`` with one session per loop and headers/auth/timeout."""
    import asyncio

    import aiohttp
    from rasa.utils.endpoints import DEFAULT_REQUEST_TIMEOUT

    auth = (aiohttp.BasicAuth(self.basic_auth["username"], self.basic_auth["password"])
            if self.basic_auth else None)
    key = (id(asyncio.get_running_loop()),
           (tuple(sorted((self.headers or {}).items())), auth))
    session = _SESSIONS.get(key)
    if session is None or session.closed:
        session = aiohttp.ClientSession(
            headers=self.headers, auth=auth,
            timeout=aiohttp.ClientTimeout(total=DEFAULT_REQUEST_TIMEOUT),
            connector=aiohttp.TCPConnector(keepalive_timeout=ACTION_KEEPALIVE))
        _SESSIONS[key] = session
    return _KeptSession(session)


def _retrying_connect(original: Callable[..., Any]) -> Callable[..., Any]:
    """``EndpointConfig.request`` that tries a refused connection again (nothing was sent)."""
    async def request(self: Any, *args: Any, **kwargs: Any) -> Any:
        import asyncio

        import aiohttp

        loop = asyncio.get_running_loop()
        deadline, pause = loop.time() + ACTION_CONNECT_RETRY, 0.1
        while True:
            try:
                return await original(self, *args, **kwargs)
            except aiohttp.ClientConnectorError:
                if loop.time() + pause > deadline:
                    raise
                await asyncio.sleep(pause)
                pause = min(pause * 2, 1.0)

    request.kefu_retrying = True  # type: ignore[attr-defined]
    return request


def install() -> None:
    """Cached action-response validation and the SQLite tracker store's connections and
    pragmas, before Rasa builds anything."""
    from rasa.core import tracker_store
    from rasa.core.actions.action import RemoteAction
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    if hasattr(RemoteAction, "_validate_action_result"):  # a Rasa that changed: leave it
        RemoteAction._validate_action_result = _validate_action_result  # type: ignore[method-assign]
    original = getattr(tracker_store, "create_engine_kwargs", None)
    if original is not None and not getattr(original, "kefu_pooled", False):
        tracker_store.create_engine_kwargs = _with_kept_sqlite_connections(original)
    from rasa.utils.endpoints import EndpointConfig

    EndpointConfig.session = _kept_session  # type: ignore[method-assign]
    if not getattr(EndpointConfig.request, "kefu_retrying", False):
        EndpointConfig.request = _retrying_connect(EndpointConfig.request)  # type: ignore
    if not event.contains(Engine, "connect", _sqlite_pragmas):
        event.listen(Engine, "connect", _sqlite_pragmas)


def _webhook_with_token(original: Callable[..., Any], token: str) -> Callable[..., Any]:
    """``RestInput.blueprint`` whose ``POST …/webhook`` needs ``?token=``, as Rasa's HTTP API
    does: Rasa's ``--auth-token`` covers its API but not its input channels, and the REST
    webhook speaks as any sender it is given (``widget:c-7``: that customer's orders,
    refunds and address), with any metadata (the ``verified`` flag). The gateway sends the
    token on every call (``bot/rasa_client.py``)."""
    from sanic import response

    from ticketing.core.shared_tokens import same_token

    def blueprint(self: Any, on_new_message: Any) -> Any:
        found = original(self, on_new_message)

        @found.middleware("request")
        async def _needs_token(request: Any) -> Any:
            if request.method != "POST" or not request.path.endswith("/webhook"):
                return None
            if same_token(token, request.args.get("token")):
                return None
            return response.json({"error": "the REST webhook needs Rasa's token"}, status=401)

        return found

    blueprint.kefu_token = True  # type: ignore[attr-defined]
    return blueprint


def guard_rest_webhook(token: str | None) -> None:
    """Install :func:`_webhook_with_token` (nothing without a token: a bare ``rasa run``)."""
    from rasa.core.channels.rest import RestInput

    if token and not getattr(RestInput.blueprint, "kefu_token", False):
        RestInput.blueprint = _webhook_with_token(RestInput.blueprint, token)  # type: ignore


def argv_with_token(argv: list[str], environ: dict[str, str] | os._Environ[str]) -> list[str]:
    """``argv`` plus ``--auth-token`` from ``KEFU_RASA_TOKEN`` (taken out of ``environ``)."""
    token = environ.pop(TOKEN_VARIABLE, None)
    return [*argv, "--auth-token", token] if token else list(argv)


def serving_environment(argv: list[str], environ: dict[str, str] | os._Environ[str]) -> None:
    """TensorFlow on the asking thread for ``rasa run`` (see the module's docstring)."""
    if argv[:1] == ["run"]:
        for name, value in SERVING_TF_THREADS.items():
            environ.setdefault(name, value)


def main() -> None:
    install()
    serving_environment(sys.argv[1:], os.environ)
    if sys.argv[1:2] == ["run"]:
        from bot import rasa_inference, rasa_rules, rasa_states

        rasa_rules.install()
        rasa_inference.install()
        rasa_states.install()
    from rasa.__main__ import main as rasa_main

    guard_rest_webhook(os.environ.get(TOKEN_VARIABLE))
    sys.argv = ["rasa", *argv_with_token(sys.argv[1:], os.environ)]
    rasa_main()


if __name__ == "__main__":
    main()
