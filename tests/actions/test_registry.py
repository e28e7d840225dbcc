"""Every custom action the domain names is served by the action server, and nothing else."""

from __future__ import annotations

from rasa_sdk.executor import ActionExecutor

from tests.actions.harness import load_domain


def test_domain_actions_and_action_server_agree() -> None:
    executor = ActionExecutor()
    executor.register_package("actions")
    served = set(executor.actions)
    domain = load_domain()
    named = {a for a in domain.get("actions", []) if a.startswith(("action_", "validate_"))}
    assert named - served == set(), "in the domain but not served"
    assert served - named == set(), "served but not in the domain"
