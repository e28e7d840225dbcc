"""Kefu's ``rasa`` command: the stock CLI, minus a cost no turn should pay, plus its token.

Runs inside ``.venv-rasa`` (``python -m bot.rasa_server run ...`` takes every argument of
``rasa``). Two things happen before Rasa's own ``main``:

- **Action responses are validated with one compiled validator.** Rasa 3.6 checks every
  action server response with ``jsonschema.validate(result, spec)``, which re-checks the
  (large, event-by-event) schema against its meta-schema and builds a new validator on every
  call: about 29 ms of CPU per custom action on a 2-core machine, against 1.4 ms for the same
  check with a validator built once. Kefu's turns run one or two custom actions, so this was
  the biggest single piece of a turn's CPU (docs/performance.md). The schema, the check and the
  error Rasa raises are unchanged; only the validator is reused.
- **The SQLite tracker store (``make run`` without Redis) runs in WAL mode with
  ``synchronous=NORMAL``.** Rasa opens it with SQLite's defaults (a rollback journal, a full
  sync on every commit): every turn's save waited for several disk flushes, and 50
  conversations queued behind one another's. WAL keeps the file consistent after any crash;
  what a power cut may cost is the last turns' events, which the gateway's own database
  (the system of record) still holds.
- **The auth token comes from the environment** (``KEFU_RASA_TOKEN``, removed from it), never
  the command line that every local user can read with ``ps``.
"""

from __future__ import annotations

import os
import sys
from functools import lru_cache
from typing import Any

TOKEN_VARIABLE = "KEFU_RASA_TOKEN"


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


def install() -> None:
    """Cached action-response validation and SQLite pragmas, before Rasa builds anything."""
    from rasa.core.actions.action import RemoteAction
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    if hasattr(RemoteAction, "_validate_action_result"):  # a Rasa that changed: leave it
        RemoteAction._validate_action_result = _validate_action_result  # type: ignore[method-assign]
    if not event.contains(Engine, "connect", _sqlite_pragmas):
        event.listen(Engine, "connect", _sqlite_pragmas)


def argv_with_token(argv: list[str], environ: dict[str, str] | os._Environ[str]) -> list[str]:
    """``argv`` plus ``--auth-token`` from ``KEFU_RASA_TOKEN`` (taken out of ``environ``)."""
    token = environ.pop(TOKEN_VARIABLE, None)
    return [*argv, "--auth-token", token] if token else list(argv)


def main() -> None:
    install()
    from rasa.__main__ import main as rasa_main

    sys.argv = ["rasa", *argv_with_token(sys.argv[1:], os.environ)]
    rasa_main()


if __name__ == "__main__":
    main()
