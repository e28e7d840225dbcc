"""`make shell`: chat with the assistant in the terminal as a demo customer.

Prepares the database like `make run` (migrate, demo data), starts the action server and the
Rasa server unless they already answer, and chats on the conversation of a verified demo
customer (`widget:demo-1`; `--as widget:demo-2`, or `--as widget:someone` for an anonymous
visitor). Every message goes to Rasa's REST channel the way the gateway sends it: with what
the shop knows of the speaker (verified or not, the stored language; ``bot.rasa_client``), so
the assistant answers here exactly as it does in the widget. Buttons are numbered: type the
number to tap one. `/stop` leaves.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot import assistant  # noqa: E402
from bot.gateway import payloads  # noqa: E402
from bot.rasa_client import RasaClient  # noqa: E402
from bot.rasa_config import AssistantSettings, server_token  # noqa: E402
from scripts.run_stack import prepare  # noqa: E402
from ticketing.core.db import make_engine, make_session_factory  # noqa: E402
from ticketing.core.i18n import language_of_text, normalize_language  # noqa: E402
from ticketing.core.settings import load_settings  # noqa: E402
from ticketing.shop import customers  # noqa: E402


NLU_MAX_CHARS = 1000  # the gateway's default KEFU_NLU_MAX_CHARS


def speaker(session_factory, conversation: str, text: str) -> tuple[str | None, bool]:
    """What the gateway would say of this speaker: the stored language for a message with
    none of its own, and whether a verified customer stands behind the conversation."""
    with session_factory.begin() as session:
        identity = customers.identity_by_conversation(session, conversation_id=conversation)
        verified = customers.customer_for_conversation(
            session, conversation_id=conversation) is not None
        stored = normalize_language(identity.language if identity is not None else None)
    return (None if language_of_text(text) else stored), verified


def show(answers: list[dict]) -> list[str]:
    """Print the bot's messages; return the payloads of its buttons, numbered from 1."""
    payloads: list[str] = []
    for answer in answers:
        if answer.get("text"):
            print(f"bot> {answer['text']}")
        for button in answer.get("buttons") or []:
            payloads.append(button["payload"])
            print(f"     [{len(payloads)}] {button.get('title')}")
    if not answers:
        print("bot> (nothing: a person owns this conversation now)")
    return payloads


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--as", dest="conversation", default="widget:demo-1",
                        help="conversation id (default widget:demo-1, a verified demo customer)")
    args = parser.parse_args()
    prepare()
    settings = AssistantSettings.from_environ()
    token = server_token(settings)
    started: list[subprocess.Popen[bytes]] = []
    health = f"http://127.0.0.1:{settings.action_port}/health"
    if not assistant.answers(health):
        started.append(subprocess.Popen(assistant.action_server_argv(settings), cwd=ROOT,
                                        env=assistant.action_env(), stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL))
        assistant.wait_until_up(health, timeout=60, process=started[-1])
    if not assistant.answers(f"{settings.rasa_url}/"):
        print("starting the assistant (Rasa loads its model: about a minute)", flush=True)
        started.append(subprocess.Popen(assistant.rasa_server_argv(settings), cwd=ROOT,
                                        env=assistant.rasa_env({"KEFU_RASA_TOKEN": token}),
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        assistant.wait_until_up(f"{settings.rasa_url}/", timeout=300, process=started[-1])
    engine = make_engine(load_settings().database_url)
    session_factory = make_session_factory(engine)
    client = RasaClient(settings.rasa_url, timeout=60, token=token)
    try:
        print(f"chatting as {args.conversation}; type /stop to leave", flush=True)
        buttons: list[str] = []
        while True:
            try:
                line = input("you> ").strip()
            except EOFError:
                break
            if line == "/stop":
                break
            if not line:
                continue
            # a number taps a button; typed words are words, never an intent (as in the widget)
            message = buttons[int(line) - 1] if line.isdigit() and 0 < int(line) <= len(
                buttons) else payloads.for_nlu(line, max_chars=NLU_MAX_CHARS)
            language, verified = speaker(session_factory, args.conversation, line)
            buttons = show(client.send(args.conversation, message, language=language,
                                       verified=verified))
        return 0
    finally:
        client.close()
        engine.dispose()
        for process in reversed(started):
            process.terminate()
            process.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
