"""Run a script in Rasa's own interpreter (``.venv-rasa``), for tests of code that runs inside
Rasa: its last line of output is the script's answer (JSON, by convention)."""

from __future__ import annotations

import subprocess

from bot.assistant import RASA_PYTHON, rasa_env
from bot.rasa_config import ROOT


def run_in_rasa(script: str, **env: str) -> str:
    """The last line the script printed; a failing script fails the test with its stderr."""
    result = subprocess.run([str(RASA_PYTHON), "-c", script], cwd=ROOT, env=rasa_env(env),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]
