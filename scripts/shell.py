"""`make shell`: chat with the assistant in the terminal as a demo customer.

Prepares the database like `make run` (migrate, demo data), starts the action server unless
one already answers, and opens `rasa shell` on the conversation of a verified demo customer
(`widget:demo-1`; `--as widget:demo-2`, or `--as widget:someone` for an anonymous visitor).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot import assistant  # noqa: E402
from bot.rasa_config import AssistantSettings, write_endpoints  # noqa: E402
from scripts.run_stack import prepare  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--as", dest="conversation", default="widget:demo-1",
                        help="conversation id (default widget:demo-1, a verified demo customer)")
    args = parser.parse_args()
    prepare()
    settings = AssistantSettings.from_environ()
    health = f"http://127.0.0.1:{settings.action_port}/health"
    actions = None
    if not assistant.answers(health):
        actions = subprocess.Popen(assistant.action_server_argv(settings), cwd=ROOT,
                                   env=assistant.action_env(), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        assistant.wait_until_up(health, timeout=60, process=actions)
    try:
        print(f"chatting as {args.conversation}; type /stop to leave", flush=True)
        return subprocess.call(
            [str(assistant.RASA_BIN), "shell", "--model", str(assistant.model_path(settings)),
             "--endpoints", str(write_endpoints(settings)), "--conversation-id", args.conversation,
             "--port", str(settings.rasa_port + 1)],
            cwd=ROOT, env=assistant.rasa_env())
    finally:
        if actions is not None:
            actions.terminate()
            actions.wait(timeout=15)


if __name__ == "__main__":
    sys.exit(main())
