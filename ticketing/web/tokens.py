"""API tokens from the command line (admins also have ``/admin/tokens``).

    python -m ticketing.web.tokens create --login xiaomei --name "nightly report" --scope desk:read
    python -m ticketing.web.tokens list
    python -m ticketing.web.tokens revoke 7 --by admin

``create`` prints the secret once; only its SHA-256 is stored. Every creation and revocation
is audited (``desk.api_token_created`` / ``desk.api_token_revoked``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TextIO

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ticketing.core.db import make_engine, make_session_factory
from ticketing.core.errors import KefuError, ValidationError
from ticketing.core.models import Agent, ApiToken
from ticketing.core.settings import load_settings
from ticketing.desk import accounts


def _agent(session: Session, login: str) -> Agent:
    agent = session.scalar(select(Agent).where(Agent.login == login))
    if agent is None:
        raise ValidationError(f"no agent with login {login!r}")
    return agent


def run(argv: Sequence[str], session_factory: sessionmaker[Session], out: TextIO) -> int:
    parser = argparse.ArgumentParser(prog="python -m ticketing.web.tokens",
                                     description="API tokens for scripts (shown once, stored hashed)")
    verbs = parser.add_subparsers(dest="verb", required=True)
    create = verbs.add_parser("create", help="a new token acting as an agent")
    create.add_argument("--login", required=True, help="the agent the script acts as")
    create.add_argument("--name", required=True, help="what the token is for")
    create.add_argument("--scope", action="append", required=True,
                        choices=sorted(accounts.SCOPES), help="repeat for several")
    verbs.add_parser("list", help="every token (never the secrets)")
    revoke = verbs.add_parser("revoke", help="end a token at once")
    revoke.add_argument("token_id", type=int)
    revoke.add_argument("--by", required=True, help="login of the person revoking it")
    args = parser.parse_args(argv)
    try:
        with session_factory.begin() as session:
            if args.verb == "create":
                agent = _agent(session, args.login)
                token, secret = accounts.create_api_token(
                    session, agent_id=agent.id, name=args.name, scopes=args.scope)
                out.write(f"token {token.id} for {agent.login} ({', '.join(token.scopes)}):\n"
                          f"{secret}\n(shown once: store it now)\n")
            elif args.verb == "list":
                for token in session.scalars(select(ApiToken).order_by(ApiToken.id)):
                    state = "revoked" if token.revoked_at else "live"
                    out.write(f"{token.id}\t{token.prefix}…\tagent {token.agent_id}\t"
                              f"{','.join(token.scopes)}\t{state}\t{token.name}\n")
            else:
                by = _agent(session, args.by)
                accounts.revoke_api_token(session, token_id=args.token_id, by_agent_id=by.id)
                out.write(f"token {args.token_id} revoked\n")
    except KefuError as exc:
        out.write(f"error: {exc.detail}\n")
        return 2
    return 0


def main() -> int:
    settings = load_settings()
    factory = make_session_factory(make_engine(settings.database_url), schedule=settings.schedule)
    return run(sys.argv[1:], factory, sys.stdout)


if __name__ == "__main__":
    raise SystemExit(main())
